//! Console lines as readiness sees them: cleaning and classifying one line of the serial log.

use super::phase::CloudInitStage;

/// What one console line says, as far as readiness is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// SeaBIOS printed its banner: a (re)boot starts.
    FirmwareBanner,
    /// Firmware or boot-loader progress (`Booting from Hard Disk`, syslinux, GRUB, OVMF's BdsDxe).
    BootLoader,
    /// The firmware gave up: nothing bootable.
    NothingBootable(String),
    /// `Linux version ...`: a kernel started.
    KernelStarted,
    /// `Kernel panic - not syncing: ...`.
    KernelPanic(String),
    /// The initramfs gave up waiting for the root device.
    RootNotFound(String),
    /// `Cloud-init v. X running '<stage>'`.
    CloudInitStage {
        /// cloud-init's version.
        version: String,
        /// The stage.
        stage: CloudInitStage,
    },
    /// `Cloud-init v. X finished at ... Datasource D.  Up N seconds`.
    CloudInitFinished {
        /// cloud-init's version.
        version: String,
        /// The datasource it used (`DataSourceNoCloud [seed=/dev/sr0][dsmode=net]`,
        /// `DataSourceNone` when no seed was found).
        datasource: String,
    },
    /// A cloud-init warning or error that reports a failure.
    CloudInitProblem(String),
}

/// Removes terminal escape sequences and control characters from a console line.
pub fn clean_console_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                // CSI: ESC [ parameters/intermediates, then one final byte in @..~.
                Some('[') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // Two-character sequences such as ESC c (reset).
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Classifies one console line (escapes and control characters are ignored).
pub fn classify_console_line(raw: &str) -> Option<ConsoleEvent> {
    let line = clean_console_line(raw);
    let line = line.as_str();
    if let Some(event) = classify_cloud_init(line) {
        return Some(event);
    }
    if line.contains("Linux version ") && !line.contains("cloud-init") {
        return Some(ConsoleEvent::KernelStarted);
    }
    if line.contains("SeaBIOS (version") {
        return Some(ConsoleEvent::FirmwareBanner);
    }
    const NOTHING_BOOTABLE: [&str; 3] = [
        "No bootable device",
        "Nothing to boot",
        "No bootable option or device was found",
    ];
    if NOTHING_BOOTABLE.iter().any(|m| line.contains(m)) {
        return Some(ConsoleEvent::NothingBootable(line.to_string()));
    }
    const BOOT_LOADER: [&str; 6] = [
        "Booting from ",
        "SYSLINUX ",
        "ISOLINUX ",
        "GRUB",
        "BdsDxe: loading",
        "BdsDxe: starting",
    ];
    if BOOT_LOADER.iter().any(|m| line.contains(m)) {
        return Some(ConsoleEvent::BootLoader);
    }
    if let Some(at) = line.find("Kernel panic - not syncing") {
        return Some(ConsoleEvent::KernelPanic(line[at..].to_string()));
    }
    if line.contains("Gave up waiting for root file system device")
        || line.contains("Unable to mount root fs")
    {
        return Some(ConsoleEvent::RootNotFound(line.to_string()));
    }
    None
}

/// cloud-init's console lines: stage banners, the final line, and failure reports.
fn classify_cloud_init(line: &str) -> Option<ConsoleEvent> {
    if let Some(at) = line.find("Cloud-init v. ") {
        let rest = &line[at + "Cloud-init v. ".len()..];
        let (version, rest) = rest.split_once(' ')?;
        let version = version.to_string();
        if let Some(rest) = rest.strip_prefix("running '") {
            let stage = CloudInitStage::from_console_name(rest.split('\'').next()?)?;
            return Some(ConsoleEvent::CloudInitStage { version, stage });
        }
        if rest.starts_with("finished at ") {
            let datasource = rest
                .split_once("Datasource ")
                .map(|(_, ds)| ds.split(".  Up ").next().unwrap_or(ds))
                .unwrap_or("")
                .trim_end_matches('.')
                .to_string();
            return Some(ConsoleEvent::CloudInitFinished {
                version,
                datasource,
            });
        }
        return None;
    }
    // Logged problems look like `2024-05-01 12:00:00,000 - util.py[WARNING]: Failed running ...`.
    for level in ["[ERROR]: ", "[CRITICAL]: ", "[WARNING]: "] {
        let Some(at) = line.find(level) else { continue };
        if !line[..at].ends_with(".py") {
            continue;
        }
        let message = line[at + level.len()..].trim();
        let is_failure = level != "[WARNING]: " || message.to_ascii_lowercase().contains("fail");
        return is_failure.then(|| ConsoleEvent::CloudInitProblem(message.to_string()));
    }
    None
}
