//! The default user-data against `cloud-init schema`, and our validator against cloud-init's
//! installed schema.

mod common;

use common::{put, run_text};
use limiquantix_cloudinit::DefaultUserData;
use limiquantix_cloudinit::password::hash_password_with_salt;
use limiquantix_cloudinit::validate::schema::locate_schema;
use limiquantix_cloudinit::validate::{SchemaSource, ValidateOptions, validate_user_data};

fn installed_schema() -> ValidateOptions {
    let path = locate_schema().expect(
        "required tool `cloud-init` is not installed: its JSON schema was not found \
         (apt-get install cloud-init)",
    );
    ValidateOptions {
        schema: SchemaSource::Path(path),
    }
}

fn samples() -> Vec<Vec<u8>> {
    vec![
        DefaultUserData::new("web1").to_yaml().unwrap(),
        DefaultUserData::new("web1")
            .fqdn("web1.example.com")
            .ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8x user@host")
            .password_hash(hash_password_with_salt("pw", "0123456789abcdef"))
            .timezone("Europe/Paris")
            .to_yaml()
            .unwrap(),
        DefaultUserData::new("db")
            .user("ops")
            .packages(Vec::<String>::new())
            .to_yaml()
            .unwrap(),
    ]
}

#[test]
fn cloud_init_schema_accepts_the_default_user_data() {
    let dir = tempfile::tempdir().unwrap();
    for (i, yaml) in samples().iter().enumerate() {
        let path = put(dir.path(), &format!("user-data-{i}"), yaml);
        // Exit status 0 is the verdict; newer cloud-init words its message differently.
        let out = run_text("cloud-init", &["schema", "--config-file", &path]);
        assert!(out.contains("Valid"), "{out}");
        assert!(!out.contains("Invalid"), "{out}");
        assert!(!out.to_lowercase().contains("deprecat"), "{out}");
    }
}

#[test]
fn our_validator_accepts_the_default_user_data_without_warnings() {
    let options = installed_schema();
    for yaml in samples() {
        let warnings = validate_user_data(&yaml, &options).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

#[test]
fn schema_errors_block_with_file_line_and_path() {
    let options = installed_schema();
    let doc = b"#cloud-config\nhostname: web1\nusers:\n  - name: admin\n    lock_passwd: maybe\n";
    let e = validate_user_data(doc, &options).unwrap_err();
    assert_eq!(e.file, "user-data");
    assert_eq!(e.line, Some(5), "{e}");
    assert_eq!(e.path.as_deref(), Some("users.0.lock_passwd"), "{e}");
    // An empty cloud-config is an empty mapping to cloud-init.
    assert!(validate_user_data(b"#cloud-config\n", &options).is_ok());
    // `ssh_pwauth: yes` is a YAML 1.1 boolean, as cloud-init reads it: valid.
    assert!(validate_user_data(b"#cloud-config\nssh_pwauth: yes\n", &options).is_ok());
    let e = validate_user_data(b"#cloud-config\nruncmd: 5\n", &options).unwrap_err();
    assert_eq!(
        (e.line, e.path.as_deref()),
        (Some(2), Some("runcmd")),
        "{e}"
    );
}

#[test]
fn deprecated_and_unknown_keys_warn() {
    let options = installed_schema();
    let doc = b"#cloud-config\nhostnme: typo\nusers:\n  - name: a\n    lock-passwd: true\n";
    let warnings = validate_user_data(doc, &options).unwrap();
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|w| w.contains("line 2 at hostnme") && w.contains("unknown top-level key")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|w| w.contains("line 5 at users.0.lock-passwd") && w.contains("deprecated")),
        "{text:?}"
    );
}

/// The cloud-config the LimiQuantix web UI builds for a cloud-image VM (deprecated
/// `chpasswd.list`, `write_files[].defer`, a block-scalar `runcmd`, `package_update`) passes
/// with warnings, never errors: a VM the UI creates is never refused for its user-data.
#[test]
fn the_control_plane_uis_cloud_config_passes_with_warnings() {
    let yaml = include_bytes!("fixtures/limiquantix-ui-user-data.yaml");
    let warnings = validate_user_data(yaml, &installed_schema()).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.path.as_deref() == Some("chpasswd.list")),
        "{warnings:?}"
    );
    // Warnings name the key and the line, never the password.
    assert!(
        warnings
            .iter()
            .all(|w| !w.to_string().contains("secret123"))
    );
}
