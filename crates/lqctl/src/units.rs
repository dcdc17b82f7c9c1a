//! Parsing and printing of sizes (`512M`, `2G`, `20GiB`) and durations (`90s`, `10m`, `1h30m`).

use std::time::Duration;

const KIB: u64 = 1024;
/// Bytes in a MiB.
pub const MIB: u64 = KIB * 1024;
/// Bytes in a GiB.
pub const GIB: u64 = MIB * 1024;

/// Parses a size with a unit: `K`, `M`, `G`, `T`, optionally followed by `i`, `B` or `iB`
/// (`512M`, `2G`, `20GiB`, `1.5G`). Units are binary (1G = 1024 MiB), as in qemu-img. A bare
/// number is refused, because whether it would mean bytes or MiB is a guess.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let multiplier = match unit.to_ascii_uppercase().as_str() {
        "B" => 1,
        "K" | "KB" | "KI" | "KIB" => KIB,
        "M" | "MB" | "MI" | "MIB" => MIB,
        "G" | "GB" | "GI" | "GIB" => GIB,
        "T" | "TB" | "TI" | "TIB" => GIB * 1024,
        "" => {
            return Err(format!(
                "size {s:?} has no unit: write e.g. 512M, 2G or 20GiB"
            ));
        }
        _ => {
            return Err(format!(
                "size {s:?} has an unknown unit {unit:?}: use K, M, G or T (binary: 1G = 1024M)"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("size {s:?} is not a positive number with a unit, e.g. 2G"))?;
    let bytes = value * multiplier as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a memory size into whole MiB.
pub fn parse_memory_mib(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s)?;
    if bytes % MIB != 0 {
        return Err(format!("memory {s:?} is not a whole number of MiB"));
    }
    Ok(bytes / MIB)
}

/// Parses a disk size into whole GiB (the API's unit).
pub fn parse_disk_gib(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s)?;
    if bytes % GIB != 0 {
        return Err(format!(
            "disk size {s:?} is not a whole number of GiB: use e.g. {}G",
            bytes.div_ceil(GIB)
        ));
    }
    Ok(bytes / GIB)
}

/// Parses a duration: a number of seconds, or numbers with `s`, `m`, `h`, `d` (`90`, `10m`,
/// `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("duration {s:?} is not valid: write e.g. 90s, 10m or 1h30m");
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Formats a byte count for people: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Formats a duration for people with its two largest units: `45s`, `3m12s`, `2h05m`, `3d04h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 * MIB);
        assert_eq!(parse_size("2G").unwrap(), 2 * GIB);
        assert_eq!(parse_size("20GiB").unwrap(), 20 * GIB);
        assert_eq!(parse_size("1.5g").unwrap(), 3 * GIB / 2);
        assert_eq!(parse_size("4096 KiB").unwrap(), 4 * MIB);
        assert_eq!(parse_size("1T").unwrap(), 1024 * GIB);
        assert!(parse_size("2048").unwrap_err().contains("no unit"));
        assert!(parse_size("2X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("0G").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn memory_and_disk_units() {
        assert_eq!(parse_memory_mib("2G").unwrap(), 2048);
        assert_eq!(parse_memory_mib("512M").unwrap(), 512);
        assert!(parse_memory_mib("1000K").is_err());
        assert_eq!(parse_disk_gib("20G").unwrap(), 20);
        assert_eq!(parse_disk_gib("2048M").unwrap(), 2);
        assert!(parse_disk_gib("1500M").unwrap_err().contains("use e.g. 2G"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "m", "10x", "10m5", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_forms() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 * GIB), "2.0 GiB");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(192)), "3m12s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h05m");
        assert_eq!(human_duration(Duration::from_secs(273_600)), "3d04h");
    }
}
