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

    /// Parses RFC 3339 (`2024-05-01T12:00:00Z`, `...T12:00:00.123456+02:00`; a space may stand
    /// for `T`). Fractions beyond milliseconds are truncated. `None` if malformed.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            let mut n = 0i64;
            for &c in &b[from..to] {
                if !c.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + i64::from(c - b'0');
            }
            Some(n)
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut i = 19;
        let mut millis = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..3 {
                millis *= 10;
            }
        }
        let offset_secs = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let off = oh * 3600 + om * 60;
                if *sign == b'+' {
                    off
                } else {
                    -off
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month as u32, day as u32);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
        Some(Timestamp(secs * 1000 + millis))
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

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn parses_rfc3339_and_round_trips() {
        let p = Timestamp::parse_rfc3339;
        assert_eq!(
            p("2024-02-29T12:34:56.789Z"),
            Some(Timestamp(1_709_210_096_789))
        );
        assert_eq!(
            p("2024-02-29T14:34:56.789123+02:00"),
            Some(Timestamp(1_709_210_096_789))
        );
        assert_eq!(
            p("2024-02-29 12:34:56Z"),
            Some(Timestamp(1_709_210_096_000))
        );
        assert_eq!(
            p("2024-02-29T07:34:56.7-05:00"),
            Some(Timestamp(1_709_210_096_700))
        );
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(Timestamp(0)));
        for bad in [
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:34:56",
            "2024-02-29T12:34:56+2",
            "x024-02-29T12:34:56Z",
            "2024-02-29T12:34:56.Z",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let mut b = [0u8; 24];
        for ms in [0i64, 1, 86_399_999, 951_782_400_000, 4_102_444_800_123] {
            assert_eq!(p(Timestamp(ms).rfc3339(&mut b)), Some(Timestamp(ms)));
        }
    }
}
