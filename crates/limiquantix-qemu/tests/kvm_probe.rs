//! The KVM probe against a real `qemu-system-x86_64`: the probe guest runs to its end under TCG
//! (the accelerator that works on every machine), the never-exiting program is killed within its
//! limit, and the decision of `auto` and `kvm` follows the real probe's outcome (TCG stands in
//! for KVM so that every machine fails the same way).

use std::path::Path;
use std::time::{Duration, Instant};

use limiquantix_qemu::probe::{
    ChooseError, KvmProbe, ProbeError, ProbeRom, choose_accel, run_probe,
};
use limiquantix_vm::accel::{Accel, AccelKind};

const QEMU: &str = "qemu-system-x86_64";

fn quick(rom: ProbeRom) -> KvmProbe {
    KvmProbe {
        timeout: Duration::from_millis(700),
        ..KvmProbe::stand_in(rom)
    }
}

#[tokio::test]
async fn the_probe_guest_runs_to_its_end_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_probe(
        Path::new(QEMU),
        AccelKind::Tcg,
        ProbeRom::Exits,
        Duration::from_secs(10),
        dir.path(),
    )
    .await
    .unwrap();
    assert!(run.elapsed < Duration::from_secs(10));
    // The firmware's directory went with the probe.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_probe_guest_that_never_exits_is_killed_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let limit = Duration::from_millis(700);
    let err = run_probe(
        Path::new(QEMU),
        AccelKind::Tcg,
        ProbeRom::NeverExits,
        limit,
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProbeError::Hung { .. }), "{err}");
    assert!(
        started.elapsed() < limit + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("did not finish within 700 ms"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn auto_falls_back_to_tcg_with_the_reason_and_kvm_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, scratch) = (Path::new(QEMU), dir.path());
    let hang = quick(ProbeRom::NeverExits);
    let choice = choose_accel(Accel::Auto, &hang, qemu, scratch)
        .await
        .unwrap();
    assert_eq!(choice.kind, AccelKind::Tcg);
    assert!(
        choice.reason.starts_with(
            "KVM does not run guests on this host (the probe guest did not finish within 700 ms"
        ) && choice.reason.ends_with("; using TCG"),
        "{}",
        choice.reason
    );
    assert_eq!(choice.probe_millis, None);
    let err = choose_accel(Accel::Kvm, &hang, qemu, scratch)
        .await
        .unwrap_err();
    assert!(matches!(err, ChooseError::Probe(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("accel kvm was requested but KVM does not run guests on this host: the probe guest did not finish"),
        "{err}"
    );
    // The probe that runs gives KVM (TCG standing in for it), with its time.
    let ok = KvmProbe {
        timeout: Duration::from_secs(10),
        ..KvmProbe::stand_in(ProbeRom::Exits)
    };
    let choice = choose_accel(Accel::Auto, &ok, qemu, scratch).await.unwrap();
    assert_eq!(choice.kind, AccelKind::Kvm);
    assert!(choice.probe_millis.is_some(), "{choice:?}");
    // tcg probes nothing.
    let choice = choose_accel(Accel::Tcg, &hang, qemu, scratch)
        .await
        .unwrap();
    assert_eq!(
        (choice.kind, choice.reason.as_str()),
        (AccelKind::Tcg, "configured (accel tcg)")
    );
}

#[tokio::test]
async fn an_unusable_kvm_device_is_tcg_for_auto_and_an_error_for_kvm() {
    let dir = tempfile::tempdir().unwrap();
    let probe = KvmProbe {
        kvm_device: dir.path().join("no-kvm"),
        ..KvmProbe::default()
    };
    let (qemu, scratch) = (Path::new(QEMU), dir.path());
    let choice = choose_accel(Accel::Auto, &probe, qemu, scratch)
        .await
        .unwrap();
    assert_eq!(choice.kind, AccelKind::Tcg);
    assert!(
        choice.reason.contains("no-kvm cannot be opened read-write"),
        "{}",
        choice.reason
    );
    let err = choose_accel(Accel::Kvm, &probe, qemu, scratch)
        .await
        .unwrap_err();
    assert!(matches!(err, ChooseError::Device(_)), "{err}");
}

#[tokio::test]
async fn qemu_refusing_the_accelerator_is_a_failed_probe_with_qemus_words() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_probe(
        Path::new("false"),
        AccelKind::Tcg,
        ProbeRom::Exits,
        Duration::from_secs(5),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProbeError::Exited { .. }), "{err}");
    assert!(
        err.to_string().contains("exit status: 1 instead of 85"),
        "{err}"
    );
}
