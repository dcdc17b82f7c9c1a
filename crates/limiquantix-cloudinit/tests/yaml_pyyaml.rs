//! Generated YAML read back by PyYAML, our YAML 1.1 loader cross-checked against PyYAML, and
//! SHA-512 crypt checked against openssl.

mod common;

use common::{pyyaml_load, pyyaml_load_many, run_text};
use limiquantix_cloudinit::DefaultUserData;
use limiquantix_cloudinit::password::hash_password_with_salt;
use limiquantix_cloudinit::yaml11;
use serde_json::json;

/// Strings YAML 1.1 readers turn into something else unless they are quoted.
const TRICKY: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Yes",
    "NO",
    "true",
    "False",
    "null",
    "~",
    "",
    "0755",
    "0o755",
    "1e3",
    "1_000",
    "0x1F",
    "0b101",
    "1:20",
    "190:20:30",
    ".inf",
    "-.inf",
    ".nan",
    "1.5",
    "+1",
    "-0",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "=",
    "<<",
    "*",
    "&a",
    "!tag",
    "%x",
    "@x",
    "`x",
    "|",
    ">",
    "-",
    "- x",
    "? x",
    "a: b",
    ": ",
    "a #b",
    "#",
    "[x]",
    "{x}",
    ",",
    "'",
    "\"",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "line\nbreak",
    "trailing\n",
    "\ttab",
    " lead",
    "trail ",
    "ünïcode ✓",
    "日本語",
    "\u{85}nel",
    "\u{2028}ls",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8x user@host",
];

#[test]
fn every_operator_string_survives_pyyaml() {
    let docs: Vec<Vec<u8>> = TRICKY
        .iter()
        .map(|s| {
            DefaultUserData::new(*s)
                .fqdn(*s)
                .user(*s)
                .ssh_key(*s)
                .packages([*s, "qemu-guest-agent"])
                .timezone(*s)
                .to_yaml()
                .unwrap()
        })
        .collect();
    let refs: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
    for ((s, yaml), read) in TRICKY.iter().zip(&docs).zip(pyyaml_load_many(&refs)) {
        let text = String::from_utf8(yaml.clone()).unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        let v = read.unwrap_or_else(|e| panic!("{s:?}: PyYAML refused:\n{text}\n{e}"));
        let want = json!(s);
        assert_eq!(v["hostname"], want, "hostname {s:?}:\n{text}");
        assert_eq!(v["fqdn"], want, "fqdn {s:?}:\n{text}");
        assert_eq!(v["timezone"], want, "timezone {s:?}:\n{text}");
        assert_eq!(v["users"][0]["name"], want, "user {s:?}:\n{text}");
        assert_eq!(
            v["users"][0]["ssh_authorized_keys"][0], want,
            "key {s:?}:\n{text}"
        );
        assert_eq!(v["packages"][0], want, "package {s:?}:\n{text}");
        // Our own loader reads it the same way.
        assert_eq!(
            yaml11::load(&text).unwrap().value,
            v,
            "yaml11 {s:?}:\n{text}"
        );
    }
}

#[test]
fn default_user_data_reads_as_intended() {
    let hash = hash_password_with_salt("pw", "0123456789abcdef");
    let yaml = DefaultUserData::new("web1")
        .fqdn("web1.example.com")
        .ssh_key("ssh-ed25519 AAAA one")
        .ssh_key("ssh-rsa AAAB two")
        .password_hash(hash.clone())
        .timezone("Europe/Paris")
        .to_yaml()
        .unwrap();
    let v = pyyaml_load(&yaml).unwrap();
    assert_eq!(
        v,
        json!({
            "hostname": "web1",
            "fqdn": "web1.example.com",
            "manage_etc_hosts": true,
            "users": [{
                "name": "admin",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "lock_passwd": false,
                "hashed_passwd": hash,
                "ssh_authorized_keys": ["ssh-ed25519 AAAA one", "ssh-rsa AAAB two"],
            }],
            "ssh_pwauth": true,
            "disable_root": true,
            "package_upgrade": false,
            "packages": ["qemu-guest-agent"],
            "timezone": "Europe/Paris",
            "runcmd": [["sh", "-c",
                "systemctl enable --now qemu-guest-agent || systemctl start qemu-guest-agent"]],
        })
    );
    let locked = pyyaml_load(&DefaultUserData::new("web1").to_yaml().unwrap()).unwrap();
    assert_eq!(locked["users"][0]["lock_passwd"], json!(true));
    assert_eq!(locked["ssh_pwauth"], json!(false));
    assert!(locked["users"][0].get("hashed_passwd").is_none());
}

#[test]
fn sha512_crypt_matches_openssl() {
    for (password, salt) in [
        ("secret", "0123456789abcdef"),
        ("pässwörd with spaces", "ABCDEFGHIJKLMNOP"),
        ("x", "./abcdefghijklmn"),
        (
            "a very long password that goes on and on and on and on and on and on",
            "saltsaltsaltsalt",
        ),
    ] {
        let ours = hash_password_with_salt(password, salt);
        let theirs = run_text("openssl", &["passwd", "-6", "-salt", salt, password]);
        assert_eq!(ours, theirs.trim(), "{password:?}");
    }
}

#[test]
fn yaml11_loader_agrees_with_pyyaml() {
    let docs: &[&str] = &[
        "a: yes\nb: No\nc: on\nd: OFF\ne: 0755\nf: 1e3\ng: 1_000\nh: 0x1F\ni: 1:30\nj: 1.5\nk: ~\n",
        "l: '0755'\nm: 0b11\no: .5\np: -017\nq: +12\nr: 1.0e+3\ns: 6.8523015e+5\nt: 685_230.15\n",
        "u: 190:20:30.15\nv: 2001-12-14\nw: null\nx:\ny: \"yes\"\nz: 'on'\n",
        "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n",
        "a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n  z: 0\n",
        "s: !!str 12\nt: !!int '7'\nu: !!float 1\nv: !!bool yes\nw: ! 12\n",
        "block: |\n  line one\n  line two\nfolded: >\n  a\n  b\n\n  c\nstrip: |-\n  x\n",
        "2: two\ntrue: t\nnull: n\n1.5: f\n",
        "- [1, 2, {a: b}]\n- {c: [d, e]}\n- ? complex\n  : key\n",
        "ünï: ✓\n\"quoted key\": 'it''s'\nmulti: \"a\\nb\\t\\u00e9\"\n",
        "plain: a b c\nurl: http://x:8080/p?q=1#f\ncolon: a:b\ndash: -x\n",
        "",
        "# only a comment\n",
        "---\na: 1\n...\n",
        "a: =\n",
        "a: 1\n---\nb: 2\n",
        "a: !python/object:os.system x\n",
        "a: [1, 2\n",
        "a: *undefined\n",
        "? [1, 2]\n: x\n",
        "dup: 1\ndup: 2\n",
        "0o17: octal-in-1.2\n0x_1F: hex\n",
    ];
    let refs: Vec<&[u8]> = docs.iter().map(|d| d.as_bytes()).collect();
    for (doc, theirs) in docs.iter().zip(pyyaml_load_many(&refs)) {
        let ours = yaml11::load(doc);
        match theirs {
            Ok(theirs) => {
                let ours =
                    ours.unwrap_or_else(|e| panic!("{doc:?}: we refused, PyYAML read it: {e:?}"));
                assert_eq!(ours.value, theirs, "{doc:?}");
            }
            Err(message) => {
                assert!(
                    ours.is_err(),
                    "{doc:?}: PyYAML refused ({message}), we read {ours:?}"
                );
            }
        }
    }
}

#[test]
fn values_are_compared_exactly() {
    // Guard against a silent PyYAML helper: a value that differs must differ.
    assert_ne!(pyyaml_load(b"a: yes\n").unwrap(), json!({"a": "yes"}));
}
