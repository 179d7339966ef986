//! `Timestamp`: UTC time with millisecond precision, written as RFC 3339 without allocating, and
//! the time texts vendors write: RFC 3339, RFC 2822 (`Tue, 21 Jan 2018 10:52:37 +0200`),
//! `YYYY-MM-DD HH:MM:SS` (UTC), and a strftime pattern ([`Pattern`]) for anything else
//! (Prisma Cloud Compute's `#time` renders `Jan 21, 2018 UTC`: `%b %d, %Y %Z`).
//!
//! The strftime subset is small and parsed by hand here rather than with a date crate: the
//! directives are listed on [`Pattern`]; every other directive is refused when the config is
//! loaded.

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
        *buf = self.rfc3339_bytes();
        // Only ASCII digits and separators were written.
        std::str::from_utf8(buf).unwrap_or("1970-01-01T00:00:00.000Z")
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` as ASCII bytes, two digits at a time from a table (the
    /// encoders write two of these per event).
    pub fn rfc3339_bytes(self) -> [u8; 24] {
        let secs = self.0.div_euclid(1000);
        // Both in range by construction: rem_euclid of a positive divisor.
        let millis = self.0.rem_euclid(1000) as usize;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as usize;
        let (y, m, d) = civil_from_days(days);
        // Years outside 0..=9999 cannot be written in RFC 3339; clamp rather than garble.
        let y = y.clamp(0, 9999) as usize;
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut two = |at: usize, v: usize| {
            let i = v % 100 * 2;
            b[at] = PAIRS[i];
            b[at + 1] = PAIRS[i + 1];
        };
        two(0, y / 100);
        two(2, y);
        two(5, m as usize);
        two(8, d as usize);
        two(11, sod / 3600);
        two(14, sod / 60 % 60);
        two(17, sod % 60);
        two(21, millis);
        // millis < 1000: one digit.
        b[20] = b'0' + (millis / 100) as u8;
        b
    }
}

/// "00" to "99", two bytes each.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Zone names with a fixed offset (seconds east of UTC): UTC and its aliases, and the US zones
/// RFC 2822 names. Other abbreviations are ambiguous (IST, CST elsewhere) and are refused.
const ZONES: &[(&str, i64)] = &[
    ("utc", 0),
    ("gmt", 0),
    ("ut", 0),
    ("z", 0),
    ("est", -5 * 3600),
    ("edt", -4 * 3600),
    ("cst", -6 * 3600),
    ("cdt", -5 * 3600),
    ("mst", -7 * 3600),
    ("mdt", -6 * 3600),
    ("pst", -8 * 3600),
    ("pdt", -7 * 3600),
];

/// One step of a strftime pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Literal text, compared case-insensitively.
    Lit(Box<str>),
    /// One or more whitespace characters (a space in the pattern).
    Space,
    Year,
    Year2,
    Month,
    MonthName,
    Day,
    DayOfYear,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    Fraction,
    WeekdayName,
    ZoneName,
    Offset,
    EpochSeconds,
}

/// A strftime pattern for parsing, compiled once at config load. Directives: `%Y` `%y` `%m`
/// `%d` `%e` `%j` `%b` `%h` `%B` (month names, any case, short or long) `%a` `%A` (weekday
/// names, read and ignored) `%H` `%I` `%p` `%M` `%S` `%f` (fraction of a second, digits)
/// `%z` (`+hhmm`, `+hh:mm`, `Z`) `%Z` (`UTC`, `GMT`, `UT`, `Z` and the US zones of RFC 2822)
/// `%s` (epoch seconds) `%T` (`%H:%M:%S`) `%F` (`%Y-%m-%d`) `%D` (`%m/%d/%y`) `%%`. A space
/// matches any run of whitespace. Without a zone the time is UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Item>);

impl Pattern {
    /// Compiles `text`; an unknown directive or a pattern with no date is an error naming it.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut items = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars();
        let flush = |lit: &mut String, items: &mut Vec<Item>| {
            if !lit.is_empty() {
                items.push(Item::Lit(std::mem::take(lit).into_boxed_str()));
            }
        };
        while let Some(c) = chars.next() {
            if c.is_whitespace() {
                flush(&mut lit, &mut items);
                if items.last() != Some(&Item::Space) {
                    items.push(Item::Space);
                }
                continue;
            }
            if c != '%' {
                lit.push(c);
                continue;
            }
            let d = chars
                .next()
                .ok_or_else(|| format!("{text:?} ends with a lone '%'"))?;
            if d == '%' {
                lit.push('%');
                continue;
            }
            flush(&mut lit, &mut items);
            let expand: &[Item] = match d {
                'Y' => &[Item::Year],
                'y' => &[Item::Year2],
                'm' => &[Item::Month],
                'b' | 'h' | 'B' => &[Item::MonthName],
                'd' | 'e' => &[Item::Day],
                'j' => &[Item::DayOfYear],
                'H' => &[Item::Hour],
                'I' => &[Item::Hour12],
                'p' => &[Item::AmPm],
                'M' => &[Item::Minute],
                'S' => &[Item::Second],
                'f' => &[Item::Fraction],
                'a' | 'A' => &[Item::WeekdayName],
                'Z' => &[Item::ZoneName],
                'z' => &[Item::Offset],
                's' => &[Item::EpochSeconds],
                'T' => &[
                    Item::Hour,
                    Item::Lit(Box::from(":")),
                    Item::Minute,
                    Item::Lit(Box::from(":")),
                    Item::Second,
                ],
                'F' => &[
                    Item::Year,
                    Item::Lit(Box::from("-")),
                    Item::Month,
                    Item::Lit(Box::from("-")),
                    Item::Day,
                ],
                'D' => &[
                    Item::Month,
                    Item::Lit(Box::from("/")),
                    Item::Day,
                    Item::Lit(Box::from("/")),
                    Item::Year2,
                ],
                other => {
                    return Err(format!(
                    "{text:?}: %{other} is not a supported directive (supported: %Y %y %m %d %e \
                         %j %b %h %B %a %A %H %I %p %M %S %f %z %Z %s %T %F %D %%)"
                ))
                }
            };
            items.extend_from_slice(expand);
        }
        flush(&mut lit, &mut items);
        let has = |i: &Item| items.contains(i);
        let dated = has(&Item::EpochSeconds)
            || ((has(&Item::Year) || has(&Item::Year2))
                && (has(&Item::DayOfYear)
                    || ((has(&Item::Month) || has(&Item::MonthName)) && has(&Item::Day))));
        if !dated {
            return Err(format!(
                "{text:?} names no full date: it needs %Y (or %y), a month and a day, %j, or %s"
            ));
        }
        Ok(Pattern(items))
    }

    /// Reads `s` with this pattern; the whole text must match.
    pub fn read(&self, s: &str) -> Option<Timestamp> {
        let mut p = Parts::default();
        let mut rest = s.trim();
        for item in &self.0 {
            rest = p.step(item, rest)?;
        }
        if !rest.trim().is_empty() {
            return None;
        }
        p.timestamp()
    }
}

/// What a pattern read so far.
#[derive(Default)]
struct Parts {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: i64,
    pm: Option<bool>,
    minute: i64,
    second: i64,
    millis: i64,
    offset: i64,
    epoch: Option<i64>,
}

/// Reads 1 to `max` ASCII digits.
fn digits(s: &str, max: usize) -> Option<(i64, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// Reads the longest word of `names` (whole names first, then 3-letter ones) at the start of
/// `s`, any case; returns its index.
fn name<'s>(s: &'s str, long: &[&str], short: &[&str]) -> Option<(usize, &'s str)> {
    for table in [long, short] {
        for (i, n) in table.iter().enumerate() {
            if s.get(..n.len()).is_some_and(|h| h.eq_ignore_ascii_case(n)) {
                return Some((i, &s[n.len()..]));
            }
        }
    }
    None
}

/// `+hhmm`, `+hh:mm`, `+hh`, `Z` as seconds east of UTC.
fn offset(s: &str) -> Option<(i64, &str)> {
    if let Some(r) = s.strip_prefix(['Z', 'z']) {
        return Some((0, r));
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let r = &s[1..];
    let (h, m, r) = match r.as_bytes() {
        [a, b, b':', c, d, ..] if [a, b, c, d].iter().all(|x| x.is_ascii_digit()) => {
            (&r[..2], &r[3..5], &r[5..])
        }
        [a, b, c, d, ..] if [a, b, c, d].iter().all(|x| x.is_ascii_digit()) => {
            (&r[..2], &r[2..4], &r[4..])
        }
        [a, b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => (&r[..2], "00", &r[2..]),
        _ => return None,
    };
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    Some((sign * (h * 3600 + m * 60), r))
}

/// A zone name of [`ZONES`], any case, not followed by another letter.
fn zone_name(s: &str) -> Option<(i64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    let word = &s[..n];
    ZONES
        .iter()
        .find(|(z, _)| z.eq_ignore_ascii_case(word))
        .map(|&(_, off)| (off, &s[n..]))
}

impl Parts {
    fn step<'s>(&mut self, item: &Item, s: &'s str) -> Option<&'s str> {
        Some(match item {
            Item::Lit(l) => {
                let head = s.get(..l.len())?;
                if !head.eq_ignore_ascii_case(l) {
                    return None;
                }
                &s[l.len()..]
            }
            Item::Space => {
                let r = s.trim_start();
                if r.len() == s.len() {
                    return None;
                }
                r
            }
            Item::Year => {
                let (sign, r) = match s.strip_prefix('-') {
                    Some(r) => (-1, r),
                    None => (1, s),
                };
                let (y, r) = digits(r, 4)?;
                self.year = Some(sign * y);
                r
            }
            Item::Year2 => {
                let (y, r) = digits(s, 2)?;
                // POSIX: 69-99 are 1969-1999, 00-68 are 2000-2068.
                self.year = Some(if y >= 69 { 1900 + y } else { 2000 + y });
                r
            }
            Item::Month => {
                let (m, r) = digits(s, 2)?;
                self.month = Some(u32::try_from(m).ok()?);
                r
            }
            Item::MonthName => {
                let (i, r) = name(s, &MONTH_NAMES, &MONTHS)?;
                self.month = Some(i as u32 + 1);
                r
            }
            Item::Day => {
                let (d, r) = digits(s.trim_start_matches(' '), 2)?;
                self.day = Some(u32::try_from(d).ok()?);
                r
            }
            Item::DayOfYear => {
                let (d, r) = digits(s, 3)?;
                self.yday = Some(u32::try_from(d).ok()?);
                r
            }
            Item::Hour | Item::Hour12 => {
                let (h, r) = digits(s, 2)?;
                self.hour = h;
                if *item == Item::Hour12 && !(1..=12).contains(&h) {
                    return None;
                }
                r
            }
            Item::AmPm => {
                let head = s.get(..2)?;
                self.pm = Some(if head.eq_ignore_ascii_case("pm") {
                    true
                } else if head.eq_ignore_ascii_case("am") {
                    false
                } else {
                    return None;
                });
                &s[2..]
            }
            Item::Minute => {
                let (m, r) = digits(s, 2)?;
                self.minute = m;
                r
            }
            Item::Second => {
                let (v, r) = digits(s, 2)?;
                self.second = v;
                r
            }
            Item::Fraction => {
                let n = s.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 {
                    return None;
                }
                // Milliseconds: the first three digits, padded; finer digits are dropped.
                let mut ms = 0;
                for i in 0..3 {
                    let d = if i < n {
                        i64::from(s.as_bytes()[i] - b'0')
                    } else {
                        0
                    };
                    ms = ms * 10 + d;
                }
                self.millis = ms;
                &s[n..]
            }
            Item::WeekdayName => name(s, &DAY_NAMES, &DAYS)?.1,
            Item::ZoneName => {
                let (off, r) = zone_name(s)?;
                self.offset = off;
                r
            }
            Item::Offset => {
                let (off, r) = offset(s)?;
                self.offset = off;
                r
            }
            Item::EpochSeconds => {
                let (neg, r) = match s.strip_prefix('-') {
                    Some(r) => (true, r),
                    None => (false, s),
                };
                let (v, r) = digits(r, 12)?;
                self.epoch = Some(if neg { -v } else { v });
                r
            }
        })
    }

    fn timestamp(&self) -> Option<Timestamp> {
        if let Some(e) = self.epoch {
            return e.checked_mul(1000).map(|ms| Timestamp(ms + self.millis));
        }
        let year = self.year?;
        let mut hour = self.hour;
        match self.pm {
            Some(true) if hour < 12 => hour += 12,
            Some(false) if hour == 12 => hour = 0,
            _ => {}
        }
        if hour > 23 || self.minute > 59 || self.second > 60 {
            return None;
        }
        let days = match (self.month, self.day, self.yday) {
            (Some(m), Some(d), _) => {
                if !(1..=12).contains(&m) || d < 1 || d > days_in_month(year, m) {
                    return None;
                }
                days_from_civil(year, m, d)
            }
            (_, _, Some(yd)) if (1..=366).contains(&yd) => {
                days_from_civil(year, 1, 1) + i64::from(yd) - 1
            }
            _ => return None,
        };
        let secs =
            days * 86_400 + hour * 3600 + self.minute * 60 + self.second.min(59) - self.offset;
        Some(Timestamp(secs * 1000 + self.millis))
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Timestamp {
    /// RFC 2822 (`Tue, 1 Jul 2003 10:52:37 +0200`; the weekday and the seconds are optional,
    /// the zone an offset, `UT`/`GMT`/`Z` or a US zone name).
    pub fn parse_rfc2822(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        let s = match name(s, &DAY_NAMES, &DAYS) {
            Some((_, r)) => r.strip_prefix(',')?.trim_start(),
            None => s,
        };
        let mut p = Parts::default();
        let mut r = p.step(&Item::Day, s)?;
        r = p.step(&Item::Space, r)?;
        r = p.step(&Item::MonthName, r)?;
        r = p.step(&Item::Space, r)?;
        let (y, after) = digits(r, 4)?;
        // Obsolete two-digit years (RFC 2822 4.3).
        p.year = Some(match r.len() - after.len() {
            2 if y < 50 => 2000 + y,
            2 => 1900 + y,
            _ => y,
        });
        r = p.step(&Item::Space, after)?;
        r = p.step(&Item::Hour, r)?;
        r = p.step(&Item::Lit(Box::from(":")), r)?;
        r = p.step(&Item::Minute, r)?;
        if let Some(sec) = r.strip_prefix(':') {
            r = p.step(&Item::Second, sec)?;
        }
        r = p.step(&Item::Space, r)?;
        let (off, rest) = offset(r).or_else(|| zone_name(r))?;
        p.offset = off;
        // A trailing comment such as `(PDT)` is allowed.
        let rest = rest.trim();
        if !(rest.is_empty() || (rest.starts_with('(') && rest.ends_with(')'))) {
            return None;
        }
        p.timestamp()
    }

    /// A time as text in any form `auto` reads: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), RFC 2822.
    pub fn parse_auto(s: &str) -> Option<Timestamp> {
        Timestamp::parse_rfc3339(s)
            .or_else(|| Timestamp::parse_plain_utc(s))
            .or_else(|| Timestamp::parse_rfc2822(s))
    }

    /// `YYYY-MM-DD HH:MM:SS` with an optional fraction and no zone, read as UTC (SQL style).
    pub fn parse_plain_utc(s: &str) -> Option<Timestamp> {
        let b = s.trim().as_bytes();
        if b.len() < 19 || b[10] != b' ' {
            return None;
        }
        let mut zoned = Vec::with_capacity(b.len() + 1);
        zoned.extend_from_slice(b);
        zoned.push(b'Z');
        Timestamp::parse_rfc3339(std::str::from_utf8(&zoned).ok()?)
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    proptest::proptest! {
        /// Every instant from year 0 to 9999 is written as RFC 3339 that reads back as itself,
        /// each field in its range.
        #[test]
        fn every_instant_is_written_as_rfc3339_that_reads_back(
            ms in -62_167_219_200_000i64..253_402_300_800_000,
        ) {
            let mut b = [0u8; 24];
            let text = Timestamp(ms).rfc3339(&mut b);
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(text), Some(Timestamp(ms)), "{}", text);
            let field = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap();
            proptest::prop_assert!((1..=12).contains(&field(5..7)), "{}", text);
            proptest::prop_assert!((1..=31).contains(&field(8..10)), "{}", text);
            proptest::prop_assert!(field(11..13) < 24 && field(14..16) < 60 && field(17..19) < 60, "{}", text);
        }
    }

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
    fn strftime_patterns_read_what_vendors_write() {
        let t = |pattern: &str, s: &str| Pattern::parse(pattern).unwrap().read(s);
        // 2018-01-21T00:00:00Z, Prisma Cloud Compute's `#time` as documented.
        let jan21 = Some(Timestamp(1_516_492_800_000));
        assert_eq!(t("%b %d, %Y %Z", "Jan 21, 2018 UTC"), jan21);
        assert_eq!(t("%b %d, %Y %Z", "jan  21,   2018 gmt"), jan21);
        assert_eq!(t("%B %e, %Y", "January 21, 2018"), jan21);
        // The XSIAM template's form: `Oct 14, 2023 09:16:04 UTC`.
        assert_eq!(
            t("%b %d, %Y %H:%M:%S %Z", "Oct 14, 2023 09:16:04 UTC"),
            Some(Timestamp(1_697_274_964_000))
        );
        // 9:16 pm at +02:00 is 19:16 UTC.
        assert_eq!(
            t("%d/%m/%Y %I:%M %p %z", "14/10/2023 09:16 pm +02:00"),
            Some(Timestamp(1_697_310_960_000))
        );
        assert_eq!(
            t("%F %T", "2023-10-14 19:16:00"),
            Some(Timestamp(1_697_310_960_000))
        );
        assert_eq!(
            t("%Y-%m-%dT%H:%M:%S.%f%z", "2023-10-14T09:16:04.5-0100"),
            Some(Timestamp(1_697_278_564_500))
        );
        assert_eq!(t("%s", "1516492800"), jan21);
        assert_eq!(t("%Y %j", "2018 021"), jan21);
        assert_eq!(t("%a, %d %b %Y", "Sun, 21 Jan 2018"), jan21);
        assert_eq!(t("%D", "01/21/18"), jan21);
        assert_eq!(t("%Y%%%m%%%d", "2018%01%21"), jan21);
        for (pattern, bad) in [
            ("%b %d, %Y %Z", "Jan 32, 2018 UTC"),
            ("%b %d, %Y %Z", "Feb 29, 2018 UTC"),
            ("%b %d, %Y %Z", "Jan 21, 2018 IST"),
            ("%b %d, %Y %Z", "Jan 21, 2018 UTC trailing"),
            ("%b %d, %Y", "Foo 21, 2018"),
            ("%F %T", "2018-01-21 25:00:00"),
            ("%I %p %F", "13 pm 2018-01-21"),
        ] {
            assert_eq!(t(pattern, bad), None, "{pattern} {bad}");
        }
        for bad in ["%Y-%m", "%H:%M", "%Y-%m-%d %Q", "%Y-%m-%d %"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any second of years 0-9999, written as a pattern, RFC 2822 and the SQL form would
        /// write it, reads back to itself.
        #[test]
        fn written_times_read_back(secs in -62_167_219_200i64..253_402_300_800) {
            let days = secs.div_euclid(86_400);
            let sod = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
            let mon = MONTHS[m as usize - 1];
            let want = Some(Timestamp(secs * 1000));
            let text = format!("{} {d:02}, {y:04} {h:02}:{mi:02}:{s:02} UTC", mon.to_uppercase());
            let p = Pattern::parse("%b %d, %Y %H:%M:%S %Z").unwrap();
            proptest::prop_assert_eq!(p.read(&text), want, "{}", text);
            let rfc2822 = format!("{d} {mon} {y:04} {h:02}:{mi:02}:{s:02} +0000");
            proptest::prop_assert_eq!(Timestamp::parse_rfc2822(&rfc2822), want, "{}", rfc2822);
            let plain = format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            proptest::prop_assert_eq!(Timestamp::parse_plain_utc(&plain), want, "{}", plain);
        }

        /// Any text through any supported pattern: no panic.
        #[test]
        fn any_text_any_pattern_never_panics(
            text in "\\PC{0,40}",
            pattern in proptest::sample::select(&["%b %d, %Y %Z", "%F %T%z", "%s.%f", "%a, %e %B %y %I:%M %p", "%Y %j"][..]),
        ) {
            let _ = Pattern::parse(pattern).unwrap().read(&text);
            let _ = Timestamp::parse_auto(&text);
        }
    }

    #[test]
    fn rfc2822_and_plain_utc() {
        let p = Timestamp::parse_rfc2822;
        // 2003-07-01T08:52:37Z.
        let t = Some(Timestamp(1_057_049_557_000));
        assert_eq!(p("Tue, 1 Jul 2003 10:52:37 +0200"), t);
        assert_eq!(p("1 Jul 2003 08:52:37 GMT"), t);
        assert_eq!(p("Tue, 01 Jul 2003 01:52:37 PDT"), t);
        assert_eq!(p("Tue, 1 Jul 2003 08:52:37 +0000 (UTC)"), t);
        assert_eq!(p("1 Jul 03 08:52 Z"), Some(Timestamp(1_057_049_520_000)));
        for bad in [
            "Tue 1 Jul 2003 10:52:37 +0200",
            "1 Jul 2003 10:52:37",
            "1 Jul 2003 10:52:37 IST",
            "x",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let q = Timestamp::parse_plain_utc;
        assert_eq!(q("2003-07-01 08:52:37"), t);
        assert_eq!(
            q("2003-07-01 08:52:37.250"),
            Some(Timestamp(1_057_049_557_250))
        );
        assert_eq!(q("2003-07-01T08:52:37"), None);
        assert_eq!(q("2003-07-01 08:52"), None);
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
