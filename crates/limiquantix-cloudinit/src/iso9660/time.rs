//! ISO 9660 timestamps from Unix seconds (UTC, no time-zone offset).

/// A UTC calendar time broken into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl Civil {
    /// Converts Unix seconds to a UTC calendar time (proleptic Gregorian).
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The 7-byte directory-record form (ECMA-119 9.1.5); years outside 1900..=2155 are clamped.
    pub fn record_bytes(self) -> [u8; 7] {
        let c = self.clamped(1900, 2155);
        [
            (c.year - 1900) as u8,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            0,
        ]
    }

    /// The 17-byte volume-descriptor form (ECMA-119 8.4.26.1); years clamped to 1..=9999.
    pub fn descriptor_bytes(self) -> [u8; 17] {
        let c = self.clamped(1, 9999);
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(text.as_bytes());
        out
    }

    fn clamped(self, min_year: i64, max_year: i64) -> Self {
        if self.year < min_year {
            Self::first_of(min_year)
        } else if self.year > max_year {
            Self {
                year: max_year,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
            }
        } else {
            self
        }
    }

    fn first_of(year: i64) -> Self {
        Self {
            year,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        }
    }
}

/// The "not specified" volume-descriptor date: sixteen ASCII zeros and a zero offset.
pub(crate) const UNSPECIFIED_DATE: [u8; 17] = *b"0000000000000000\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let c = Civil::from_unix(0);
        assert_eq!((c.year, c.month, c.day, c.hour), (1970, 1, 1, 0));
        // 2024-02-29T12:34:56Z
        let c = Civil::from_unix(1_709_210_096);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2024, 2, 29, 12, 34, 56)
        );
        assert_eq!(&c.descriptor_bytes()[..16], b"2024022912345600");
        assert_eq!(c.record_bytes(), [124, 2, 29, 12, 34, 56, 0]);
        // Before 1900 clamps.
        assert_eq!(Civil::from_unix(-3_000_000_000).record_bytes()[0], 0);
    }
}
