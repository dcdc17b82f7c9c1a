//! Generated network-config read by PyYAML and rendered by cloud-init itself
//! (`cloud-init devel net-convert`; cloud-init 22.x has no network-config schema command).

mod common;

use common::{put, pyyaml_load, run_text};
use limiquantix_cloudinit::network::{NetworkConfig, NicConfig};
use serde_json::json;

fn nics() -> Vec<NicConfig> {
    vec![
        NicConfig::dhcp("52:54:00:12:34:56"),
        NicConfig {
            mac: "52:54:00:AB:CD:EF".into(),
            name: None,
            addresses: vec![
                "10.0.0.5/24".parse().unwrap(),
                "fd00::5/64".parse().unwrap(),
            ],
            gateway4: Some("10.0.0.1".parse().unwrap()),
            gateway6: Some("fd00::1".parse().unwrap()),
            nameservers: vec![
                "1.1.1.1".parse().unwrap(),
                "2606:4700::1111".parse().unwrap(),
            ],
            search: vec!["example.com".into(), "yes".into()],
            dhcp6: false,
        },
    ]
}

#[test]
fn pyyaml_reads_the_intended_document() {
    let yaml = NetworkConfig::from_nics(&nics())
        .unwrap()
        .to_yaml()
        .unwrap();
    assert_eq!(
        pyyaml_load(&yaml).unwrap(),
        json!({
            "version": 2,
            "ethernets": {
                "eth0": {"match": {"macaddress": "52:54:00:12:34:56"}, "set-name": "eth0",
                         "dhcp4": true},
                "eth1": {"match": {"macaddress": "52:54:00:ab:cd:ef"}, "set-name": "eth1",
                         "dhcp4": false,
                         "addresses": ["10.0.0.5/24", "fd00::5/64"],
                         "gateway4": "10.0.0.1", "gateway6": "fd00::1",
                         "nameservers": {"addresses": ["1.1.1.1", "2606:4700::1111"],
                                         "search": ["example.com", "yes"]}},
            }
        })
    );
}

#[test]
fn cloud_init_renders_it_for_networkd() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = NetworkConfig::from_nics(&nics())
        .unwrap()
        .to_yaml()
        .unwrap();
    let input = put(dir.path(), "network-config", &yaml);
    let out = dir.path().join("out");
    run_text(
        "cloud-init",
        &[
            "devel",
            "net-convert",
            "-p",
            &input,
            "-k",
            "yaml",
            "-D",
            "debian",
            "-O",
            "networkd",
            "-d",
            out.to_str().unwrap(),
        ],
    );
    let unit = |name: &str| {
        std::fs::read_to_string(
            out.join(format!("etc/systemd/network/10-cloud-init-{name}.network")),
        )
        .unwrap()
    };
    let eth0 = unit("eth0");
    assert!(eth0.contains("MACAddress=52:54:00:12:34:56"), "{eth0}");
    assert!(eth0.contains("DHCP=ipv4"), "{eth0}");
    let eth1 = unit("eth1");
    for want in [
        "MACAddress=52:54:00:ab:cd:ef",
        "Name=eth1",
        "Address=10.0.0.5/24",
        "Address=fd00::5/64",
        "Gateway=10.0.0.1",
        "Gateway=fd00::1",
        "DNS=1.1.1.1 2606:4700::1111",
        "Domains=example.com yes",
    ] {
        assert!(eth1.contains(want), "{want} missing:\n{eth1}");
    }
}
