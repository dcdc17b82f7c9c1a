//! The JSON shapes of the control plane's messages (`compute::v1`, `storage::v1`), as the
//! control plane's Connect API reads and writes them (protojson): lowerCamelCase names, 64-bit
//! integers as strings (read from strings or numbers), enums by name (read by name or number),
//! zero values omitted, unknown fields ignored. The upstream node's own bodies (sent as plain
//! JSON numbers) must decode into the same messages.

use limiquantix_proto::compute::v1 as compute;
use limiquantix_proto::storage::v1 as storage;
use serde_json::{Value, json};

fn to_json<T: serde::Serialize>(msg: &T) -> Value {
    serde_json::to_value(msg).unwrap()
}

fn register_request() -> compute::RegisterNodeRequest {
    compute::RegisterNodeRequest {
        hostname: "h1".into(),
        management_ip: "192.168.0.53:9090".into(),
        role: Some(compute::NodeRole {
            compute: true,
            ..Default::default()
        }),
        cpu_info: Some(compute::CpuInfo {
            model: "Xeon".into(),
            sockets: 1,
            cores_per_socket: 8,
            threads_per_core: 2,
            total_threads: 16,
            frequency_mhz: 2400,
            features: vec!["vmx".into()],
            ..Default::default()
        }),
        memory_info: Some(compute::MemoryInfo {
            total_bytes: 34_359_738_368,
            allocatable_bytes: 30_000_000_000,
            ..Default::default()
        }),
        storage_devices: vec![compute::StorageDevice {
            path: "/dev/sda".into(),
            model: "ext4".into(),
            size_bytes: 512_110_190_592,
            r#type: compute::storage_device::DeviceType::Ssd as i32,
            available: true,
            ..Default::default()
        }],
        network_devices: vec![compute::NetworkDevice {
            name: "eth0".into(),
            mac_address: "52:54:00:12:34:56".into(),
            speed_mbps: 1000,
            mtu: 1500,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The upstream node's RegisterNode body (contract §2.2), with its placeholders filled in.
const UPSTREAM_REGISTER: &str = r#"{ "hostname": "h1", "managementIp": "192.168.0.53:9090", "labels": {},
  "role": {"compute": true, "storage": false, "controlPlane": false},
  "cpuInfo": {"model": "Xeon", "sockets": 1, "coresPerSocket": 8, "threadsPerCore": 2, "totalThreads": 16,
              "frequencyMhz": 2400, "features": ["vmx"]},
  "memoryInfo": {"totalBytes": 34359738368, "allocatableBytes": 30000000000},
  "storageDevices": [{"path": "/dev/sda", "model": "ext4", "sizeBytes": 512110190592, "type": "SSD", "available": true}],
  "networkDevices": [{"name": "eth0", "macAddress": "52:54:00:12:34:56", "speedMbps": 1000, "mtu": 1500, "sriovCapable": false}] }"#;

#[test]
fn register_node_request_is_camel_case_with_int64_as_strings() {
    assert_eq!(
        to_json(&register_request()),
        json!({
            "hostname": "h1",
            "managementIp": "192.168.0.53:9090",
            "role": {"compute": true},
            "cpuInfo": {"model": "Xeon", "sockets": 1, "coresPerSocket": 8, "threadsPerCore": 2,
                        "totalThreads": 16, "frequencyMhz": "2400", "features": ["vmx"]},
            "memoryInfo": {"totalBytes": "34359738368", "allocatableBytes": "30000000000"},
            "storageDevices": [{"path": "/dev/sda", "model": "ext4", "sizeBytes": "512110190592",
                                "type": "SSD", "available": true}],
            "networkDevices": [{"name": "eth0", "macAddress": "52:54:00:12:34:56",
                                "speedMbps": "1000", "mtu": 1500}]
        })
    );
}

#[test]
fn the_upstream_nodes_register_body_is_the_same_message() {
    let upstream: compute::RegisterNodeRequest = serde_json::from_str(UPSTREAM_REGISTER).unwrap();
    assert_eq!(upstream, register_request());
}

#[test]
fn a_register_node_answer_with_int64_strings_and_unknown_fields_decodes() {
    let body = json!({
        "id": "6f1c2d3e-0000-4000-8000-000000000001",
        "hostname": "h1",
        "managementIp": "192.168.0.53",
        "labels": {"rack": "a1"},
        "spec": {"cpu": {"sockets": 1, "coresPerSocket": 8},
                 "memory": {"totalBytes": "34359738368", "allocatableBytes": 30_000_000_000_u64},
                 "role": {"compute": true}},
        "status": {"phase": "READY", "resources": {"memory": {"allocatableBytes": "1073741824"}}},
        "createdAt": "2026-01-02T03:04:05.123Z",
        "someFieldOfALaterControlPlane": {"x": 1}
    });
    let node: compute::Node = serde_json::from_value(body).unwrap();
    assert_eq!(node.id, "6f1c2d3e-0000-4000-8000-000000000001");
    assert_eq!(node.management_ip, "192.168.0.53");
    let spec = node.spec.unwrap();
    assert_eq!(spec.memory.unwrap().allocatable_bytes, 30_000_000_000);
    assert_eq!(
        node.status.unwrap().phase,
        compute::node_status::Phase::Ready as i32
    );
    assert_eq!(node.created_at.unwrap().seconds, 1_767_323_045);
}

#[test]
fn heartbeat_request_matches_the_upstream_nodes_body() {
    let ours = compute::UpdateHeartbeatRequest {
        node_id: "n1".into(),
        cpu_usage_percent: 12.5,
        memory_used_mib: 2048,
        memory_total_mib: 8192,
        storage_pools: vec![compute::StoragePoolStatusReport {
            pool_id: "pool".into(),
            health: compute::storage_pool_status_report::HealthStatus::HealthHealthy as i32,
            total_bytes: 1000,
            used_bytes: 400,
            available_bytes: 600,
            mount_path: "/srv/pool".into(),
            volume_count: 3,
            ..Default::default()
        }],
        ..Default::default()
    };
    let json = to_json(&ours);
    assert_eq!(
        json,
        json!({
            "nodeId": "n1", "cpuUsagePercent": 12.5, "memoryUsedMib": "2048",
            "memoryTotalMib": "8192",
            "storagePools": [{"poolId": "pool", "health": "HEALTH_HEALTHY", "totalBytes": "1000",
                              "usedBytes": "400", "availableBytes": "600",
                              "mountPath": "/srv/pool", "volumeCount": 3}]
        })
    );
    // The upstream node (contract §2.3) sends numbers, the health as a number, and empty strings.
    let upstream = r#"{"nodeId": "n1", "cpuUsagePercent": 12.5, "memoryUsedMib": 2048,
        "memoryTotalMib": 8192, "storagePools": [{"poolId": "pool", "health": 1,
        "totalBytes": 1000, "usedBytes": 400, "availableBytes": 600, "mountPath": "/srv/pool",
        "volumeCount": 3, "errorMessage": ""}], "stateHash": ""}"#;
    let decoded: compute::UpdateHeartbeatRequest = serde_json::from_str(upstream).unwrap();
    assert_eq!(decoded, ours);
}

#[test]
fn heartbeat_answer_decodes() {
    let answer = r#"{"acknowledged":true,"serverTimeUnix":"1767323045",
        "heartbeatIntervalSecs":30,"assignedPoolIds":["p1"]}"#;
    let r: compute::UpdateHeartbeatResponse = serde_json::from_str(answer).unwrap();
    assert!(r.acknowledged);
    assert_eq!(r.server_time_unix, 1_767_323_045);
    assert_eq!(r.heartbeat_interval_secs, 30);
    assert_eq!(r.assigned_pool_ids, ["p1"]);
    let numbers: compute::UpdateHeartbeatResponse =
        serde_json::from_str(r#"{"acknowledged":true,"serverTimeUnix":1767323045}"#).unwrap();
    assert_eq!(numbers.server_time_unix, 1_767_323_045);
}

#[test]
fn sync_node_vms_request_shape() {
    let req = compute::SyncNodeVMsRequest {
        node_id: "n1".into(),
        vms: vec![compute::NodeVmInfo {
            id: "3e2d1c0b-a987-4654-8321-0fedcba98765".into(),
            name: "web".into(),
            state: "Running".into(),
            cpu_cores: 2,
            memory_mib: 1024,
            disk_paths: vec!["/srv/pool/web.qcow2".into()],
        }],
    };
    assert_eq!(
        to_json(&req),
        json!({"nodeId": "n1", "vms": [{"id": "3e2d1c0b-a987-4654-8321-0fedcba98765",
            "name": "web", "state": "Running", "cpuCores": 2, "memoryMib": "1024",
            "diskPaths": ["/srv/pool/web.qcow2"]}]})
    );
    let answer: compute::SyncNodeVMsResponse =
        serde_json::from_str(r#"{"importedCount":1,"existingCount":2}"#).unwrap();
    assert_eq!((answer.imported_count, answer.existing_count), (1, 2));
}

#[test]
fn scan_local_images_request_shape() {
    let req = storage::ScanLocalImagesRequest {
        node_id: "n1".into(),
        images: vec![storage::LocalImageInfo {
            path: "/var/lib/limiquantix/images/noble.qcow2".into(),
            filename: "noble.qcow2".into(),
            size_bytes: 600,
            virtual_size_bytes: 3_758_096_384,
            format: "qcow2".into(),
            modified_at: "2026-01-02T03:04:05Z".into(),
            ..Default::default()
        }],
    };
    assert_eq!(
        to_json(&req),
        json!({"nodeId": "n1", "images": [{"path": "/var/lib/limiquantix/images/noble.qcow2",
            "filename": "noble.qcow2", "sizeBytes": "600", "virtualSizeBytes": "3758096384",
            "format": "qcow2", "modifiedAt": "2026-01-02T03:04:05Z"}]})
    );
    let answer: storage::ScanLocalImagesResponse =
        serde_json::from_str(r#"{"registeredCount":1,"errors":["x: exists"]}"#).unwrap();
    assert_eq!(answer.registered_count, 1);
}

#[test]
fn proto_field_names_are_accepted_too() {
    let r: compute::UpdateHeartbeatResponse =
        serde_json::from_str(r#"{"acknowledged":true,"heartbeat_interval_secs":15}"#).unwrap();
    assert_eq!(r.heartbeat_interval_secs, 15);
}
