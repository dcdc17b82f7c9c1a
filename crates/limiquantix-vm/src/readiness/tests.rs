use super::*;

/// A real first boot of the test image (SeaBIOS with serial console, syslinux, Debian cloud
/// kernel, cloud-init 22.4 from a NoCloud seed on SATA), trimmed.
const BOOT_OK: &str = include_str!("../../tests/fixtures/readiness/bookworm-first-boot.log");
/// A real boot whose user-data `runcmd` exits 3.
const BOOT_RUNCMD_FAILS: &str =
    include_str!("../../tests/fixtures/readiness/bookworm-runcmd-fails.log");
/// `cloud-init status --format json` from the guest of `BOOT_RUNCMD_FAILS`.
const STATUS_ERROR: &str =
    include_str!("../../tests/fixtures/readiness/bookworm-runcmd-fails.status.json");
/// `cloud-init status --format json` from the guest of `BOOT_OK`.
const STATUS_DONE: &str =
    include_str!("../../tests/fixtures/readiness/bookworm-first-boot.status.json");
/// A real SeaBIOS run with an empty disk and no other boot device.
const NOTHING_BOOTABLE: &str =
    include_str!("../../tests/fixtures/readiness/seabios-blank-disk.log");

/// Feeds a whole log; returns every phase change in order.
fn run(tracker: &mut ReadinessTracker, log: &str) -> Vec<BootPhase> {
    log.lines().filter_map(|l| tracker.feed_line(l)).collect()
}

fn stage(stage: CloudInitStage) -> BootPhase {
    BootPhase::CloudInitRunning { stage }
}

#[test]
fn real_boot_walks_every_phase_in_order() {
    let mut t = ReadinessTracker::new();
    assert_eq!(t.phase(), &BootPhase::QemuStarted);
    let phases = run(&mut t, BOOT_OK);
    assert_eq!(
        phases,
        vec![
            BootPhase::Firmware,
            BootPhase::KernelRunning,
            stage(CloudInitStage::InitLocal),
            stage(CloudInitStage::Init),
            stage(CloudInitStage::ModulesConfig),
            stage(CloudInitStage::ModulesFinal),
            stage(CloudInitStage::Finished),
        ]
    );
    assert!(t.wants_agent_verdict());
    assert_eq!(t.cloud_init_version(), Some("22.4.2"));
    let ds = t.datasource().unwrap();
    assert!(ds.starts_with("DataSourceNoCloud [seed="), "{ds}");
    assert!(
        t.console_problems().is_empty(),
        "{:?}",
        t.console_problems()
    );
}

#[test]
fn agent_verdict_done_makes_ready() {
    let mut t = ReadinessTracker::new();
    run(&mut t, BOOT_OK);
    let status = CloudInitStatus::parse(STATUS_DONE.as_bytes()).unwrap();
    assert_eq!(status.state(), CloudInitState::Done);
    assert_eq!(t.apply_cloud_init_status(&status), Some(BootPhase::Ready));
    assert!(t.agent_answered());
    assert!(t.phase().is_terminal());
    assert!(!t.wants_agent_verdict());
}

#[test]
fn serial_alone_concludes_ready_for_a_clean_boot() {
    let mut t = ReadinessTracker::new();
    assert_eq!(
        t.conclude_from_serial(),
        None,
        "nothing to conclude before cloud-init finished"
    );
    run(&mut t, BOOT_OK);
    assert_eq!(t.conclude_from_serial(), Some(BootPhase::Ready));
}

#[test]
fn failing_runcmd_is_failed_with_cloud_inits_message() {
    let mut t = ReadinessTracker::new();
    run(&mut t, BOOT_RUNCMD_FAILS);
    assert!(t.wants_agent_verdict());
    assert!(!t.console_problems().is_empty());
    let status = CloudInitStatus::parse(STATUS_ERROR.as_bytes()).unwrap();
    assert_eq!(status.state(), CloudInitState::Error);
    let change = t.apply_cloud_init_status(&status);
    assert_scripts_user_failed(change);
}

#[test]
fn failing_runcmd_without_agent_fails_from_the_console() {
    let mut t = ReadinessTracker::new();
    run(&mut t, BOOT_RUNCMD_FAILS);
    let change = t.conclude_from_serial();
    assert_scripts_user_failed(change);
}

/// The phase change is a cloud-init failure naming the `scripts-user` module (runcmd).
fn assert_scripts_user_failed(change: Option<BootPhase>) {
    let Some(BootPhase::Failed {
        reason: BootFailure::CloudInit { errors },
    }) = change
    else {
        panic!("expected a cloud-init failure, got {change:?}");
    };
    assert!(
        errors.iter().any(|e| e.contains("scripts-user")),
        "{errors:?}"
    );
}

#[test]
fn empty_disk_is_nothing_bootable() {
    let mut t = ReadinessTracker::new();
    run(&mut t, NOTHING_BOOTABLE);
    let BootPhase::Failed {
        reason: BootFailure::NothingBootable { message },
    } = t.phase()
    else {
        panic!("expected nothing bootable, got {:?}", t.phase());
    };
    assert!(message.contains("No bootable device"), "{message}");
    assert!(t.phase().to_string().contains("nothing bootable"));
}

#[test]
fn ipxe_nothing_to_boot_and_ovmf_are_nothing_bootable() {
    for line in [
        "Nothing to boot: No such file or directory (http://ipxe.org/2d03e13b)",
        "BdsDxe: No bootable option or device was found.",
    ] {
        let mut t = ReadinessTracker::new();
        t.feed_line("Booting from ROM...");
        assert!(matches!(
            t.feed_line(line),
            Some(BootPhase::Failed {
                reason: BootFailure::NothingBootable { .. }
            })
        ));
    }
}

#[test]
fn a_failed_disk_before_a_good_one_is_not_fatal() {
    let mut t = ReadinessTracker::new();
    t.feed_line("Booting from Hard Disk...");
    t.feed_line("Boot failed: not a bootable disk");
    t.feed_line("Booting from DVD/CD...");
    assert_eq!(t.phase(), &BootPhase::Firmware);
}

#[test]
fn kernel_panic_and_missing_root_fail() {
    let mut t = ReadinessTracker::new();
    t.feed_line(
        "[    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)",
    );
    let p = t.feed_line(
        "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
    );
    assert!(matches!(
        p,
        Some(BootPhase::Failed {
            reason: BootFailure::KernelPanic { .. }
        })
    ));
    let mut t = ReadinessTracker::new();
    t.feed_line("Linux version 6.1.0");
    let p = t.feed_line("Gave up waiting for root file system device.  Common problems:");
    assert!(matches!(
        p,
        Some(BootPhase::Failed {
            reason: BootFailure::RootNotFound { .. }
        })
    ));
}

#[test]
fn reboot_starts_a_new_boot() {
    let mut t = ReadinessTracker::new();
    run(&mut t, BOOT_RUNCMD_FAILS);
    t.conclude_from_serial();
    assert!(t.phase().is_terminal());
    // The same log appended again (the serial log is opened in append mode): the last boot wins.
    run(&mut t, BOOT_OK);
    assert!(t.console_problems().is_empty());
    assert_eq!(t.phase(), &stage(CloudInitStage::Finished));
}

#[test]
fn phases_never_go_backwards_within_a_boot() {
    let mut t = ReadinessTracker::new();
    t.feed_line("Linux version 6.1.0");
    t.feed_line("cloud-init[321]: Cloud-init v. 22.4.2 running 'init' at Thu. Up 38.76 seconds.");
    assert_eq!(
        t.feed_line("cloud-init[254]: Cloud-init v. 22.4.2 running 'init-local' at Thu."),
        None
    );
    assert_eq!(t.feed_line("Booting from Hard Disk..."), None);
    assert_eq!(t.phase(), &stage(CloudInitStage::Init));
}

#[test]
fn agent_answer_proves_the_kernel_runs() {
    let mut t = ReadinessTracker::new();
    assert_eq!(t.agent_responded(), Some(BootPhase::KernelRunning));
    let running = CloudInitStatus::parse(br#"{"status": "running", "errors": []}"#).unwrap();
    assert_eq!(t.apply_cloud_init_status(&running), None);
    assert_eq!(t.phase(), &BootPhase::KernelRunning);
}

#[test]
fn status_json_of_newer_cloud_init_and_garbage() {
    let s = CloudInitStatus::parse(
        br#"{"status":"done","extended_status":"degraded done","errors":[],"recoverable_errors":{"WARNING":["x"]}}"#,
    )
    .unwrap();
    assert_eq!(s.state(), CloudInitState::Done);
    assert_eq!(s.extended_status.as_deref(), Some("degraded done"));
    let s = CloudInitStatus::parse(br#"{"status":"something new"}"#).unwrap();
    assert_eq!(s.state(), CloudInitState::Unknown);
    assert!(matches!(
        CloudInitStatus::parse(b"status: done"),
        Err(StatusJsonError { .. })
    ));
}

#[test]
fn datasource_none_is_reported() {
    let mut t = ReadinessTracker::new();
    t.feed_line("Linux version 6.1.0");
    t.feed_line(
        "[   40.9] cloud-init[440]: Cloud-init v. 22.4.2 finished at Thu, 26 Nov 2026 18:23:56 \
         +0000. Datasource DataSourceNone.  Up 40.71 seconds",
    );
    assert_eq!(t.datasource(), Some("DataSourceNone"));
}

#[test]
fn escapes_and_control_characters_are_ignored() {
    assert_eq!(
        clean_console_line("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1.16.2)\r"),
        "SeaBIOS (version 1.16.2)"
    );
    assert_eq!(
        classify_console_line("\u{1b}[0;32m  OK  \u{1b}[0m] Started ssh.service"),
        None
    );
    assert_eq!(
        classify_console_line("\u{1b}c\u{1b}[2JSeaBIOS (version 1.16.2)"),
        Some(ConsoleEvent::FirmwareBanner)
    );
}

#[test]
fn benign_cloud_init_warnings_are_not_problems() {
    assert_eq!(
        classify_console_line(
            "2026-11-26 18:23:56,1 - schema.py[WARNING]: Deprecated cloud-config key"
        ),
        None
    );
    assert_eq!(
        classify_console_line("2026-11-26 18:23:56,1 - util.py[WARNING]: Failed running /x [1]"),
        Some(ConsoleEvent::CloudInitProblem(
            "Failed running /x [1]".into()
        ))
    );
    assert_eq!(
        classify_console_line("2026 - cc_foo.py[ERROR]: something broke"),
        Some(ConsoleEvent::CloudInitProblem("something broke".into()))
    );
}

#[test]
fn phases_serialize_for_status_reporting() {
    let json = serde_json::to_value(stage(CloudInitStage::ModulesConfig)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"phase": "cloud_init_running", "stage": "modules_config"})
    );
    let failed = BootPhase::Failed {
        reason: BootFailure::CloudInit {
            errors: vec!["boom".into()],
        },
    };
    let back: BootPhase = serde_json::from_value(serde_json::to_value(&failed).unwrap()).unwrap();
    assert_eq!(back, failed);
    assert_eq!(
        failed.to_string(),
        "failed: cloud-init reported errors: boom"
    );
}
