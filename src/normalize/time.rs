//! `Timestamp`: UTC time with millisecond precision, written as RFC 3339 without allocating.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` into a fixed buffer and returns it as text.
    pub fn rfc3339(self, buf: &mut [u8; 24]) -> &str {
        let secs = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        // Years outside 0..=9999 cannot be written in RFC 3339; clamp rather than garble.
        let y = y.clamp(0, 9999) as u32;
        let fields = [
            (0, 4, y),
            (5, 2, m),
            (8, 2, d),
            (11, 2, sod / 3600),
            (14, 2, sod / 60 % 60),
            (17, 2, sod % 60),
            (20, 3, millis),
        ];
        *buf = *b"0000-00-00T00:00:00.000Z";
        for (at, width, mut v) in fields {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        // Only ASCII digits and separators were written.
        std::str::from_utf8(buf).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        s.serialize_str(self.rfc3339(&mut buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let mut b = [0u8; 24];
        assert_eq!(Timestamp(0).rfc3339(&mut b), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(
            Timestamp(1_709_210_096_789).rfc3339(&mut b),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(Timestamp(-1).rfc3339(&mut b), "1969-12-31T23:59:59.999Z");
        // Prisma's alertTs from the fixtures: 1679308800000 = 2023-03-20T10:40:00Z.
        assert_eq!(
            Timestamp(1_679_308_800_000).rfc3339(&mut b),
            "2023-03-20T10:40:00.000Z"
        );
    }
}
