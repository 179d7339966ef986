//! JSON helpers every decoder shares: streaming the elements of a top-level array as borrowed
//! raw values, reading a string field without copying when it has no escapes, and turning a
//! serde_json error into a byte offset.

use std::borrow::Cow;

use memchr::memchr2;
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::DecodeError;
use crate::normalize::scan::special_in;

/// Checks that the body is UTF-8, reporting the first invalid byte's offset.
pub fn utf8(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|e| DecodeError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

/// Deepest nesting of arrays and objects a body may have. Real vendor payloads stay under 10;
/// the limit keeps hostile bodies from costing more than one linear scan.
pub const MAX_DEPTH: usize = 64;

/// What [`check_limits`] does with a byte outside strings. Whitespace, `,`, `:` and the letters
/// of `true`/`false`/`null` are [`PLAIN`] and passed over without a branch per kind.
const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;
const NUMBER: u8 = 4;

/// Eight bytes of 0x01, of 0x80 and of spaces, for searching a word at a time.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
const SPACES: u64 = u64::from_le_bytes([b' '; 8]);

/// [`check_limits`]'s byte classes, one entry per byte value.
static CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    class[b'"' as usize] = QUOTE;
    class[b'[' as usize] = OPEN;
    class[b'{' as usize] = OPEN;
    class[b']' as usize] = CLOSE;
    class[b'}' as usize] = CLOSE;
    class[b'-' as usize] = NUMBER;
    let mut d = b'0';
    while d <= b'9' {
        class[d as usize] = NUMBER;
        d += 1;
    }
    class
};

/// One pass over the body, skipping string contents, that refuses what downstream readers
/// cannot take: nesting deeper than [`MAX_DEPTH`], and numbers beyond the range of an f64
/// (`1e400` is valid JSON grammar, but serde_json, Go's encoding/json and most SIEM parsers
/// refuse the line that carries it).
///
/// It looks only at the bytes that matter: outside strings a table lookup passes over
/// whitespace and punctuation (indentation eight bytes at a time), and inside a string it jumps
/// from escape to escape to the closing quote, eight bytes at a time and then with memchr2.
///
/// Where the CPU has SSE2 (every x86_64), [`blocks::pass`] first reads the body 64 bytes at a
/// time and answers for the bodies it can prove pass; the others (a number with an exponent
/// or hundreds of digits, a surrogate escape that is not half of a pair, nesting near the
/// limit, a backslash outside a string) go through the byte-by-byte scan, which alone reports
/// errors and their offsets.
pub fn check_limits(body: &str) -> Result<(), DecodeError> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if blocks::pass(body.as_bytes()) {
        return Ok(());
    }
    scan_limits(body)
}

/// [`check_limits`]'s byte-by-byte scan, which every body can go through.
fn scan_limits(body: &str) -> Result<(), DecodeError> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        while let Some(&b) = bytes.get(i) {
            if CLASS[usize::from(b)] != PLAIN {
                break;
            }
            i += 1;
            if b == b'\n' {
                i += indentation(bytes, i);
            }
        }
        let Some(&b) = bytes.get(i) else {
            return Ok(());
        };
        match CLASS[usize::from(b)] {
            QUOTE => i = string_end(bytes, i + 1)?,
            OPEN => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::TooDeep {
                        offset: i,
                        limit: MAX_DEPTH,
                    });
                }
            }
            CLOSE => depth = depth.saturating_sub(1),
            _ => i = number_end(body, i)?,
        }
        i += 1;
    }
}

/// [`check_limits`]'s first pass, 64 bytes at a time: the byte classes it needs as one bit per
/// byte (SSE2 compares), string contents found from the quotes by a prefix XOR, escapes from the
/// backslashes (rare, walked one by one), and the nesting depth from the brackets outside
/// strings, counted per block. It never refuses a body: it answers `true` only for bodies the
/// byte-by-byte scan would pass, and `false` whenever that scan has something to look at (see
/// [`check_limits`]), so that scan's answer, with its offsets, stays the only one.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod blocks {
    use safe_arch::{
        add_i8_m128i, bitand_m128i, bitor_m128i, cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i,
        load_unaligned_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };

    use super::{unicode_escape, MAX_DEPTH};

    /// One bit per byte of a 64-byte block, bit `i` for byte `i`.
    #[derive(Default)]
    struct Classes {
        quote: u64,
        backslash: u64,
        open: u64,
        close: u64,
        /// `e` or `E`.
        exponent: u64,
    }

    /// The scan's state between blocks.
    struct State {
        depth: usize,
        /// All ones when the previous block ended inside a string.
        in_string: u64,
        /// The previous block ended with a backslash that escapes this block's first byte.
        escape_carry: bool,
        /// The backslash of a `\u` escape already read as the low half of a surrogate pair.
        paired: usize,
    }

    /// Whether the byte-by-byte scan would pass `bytes` (`false`: it has to decide).
    pub(super) fn pass(bytes: &[u8]) -> bool {
        let mut state = State {
            depth: 0,
            in_string: 0,
            escape_carry: false,
            paired: usize::MAX,
        };
        let mut chunks = bytes.chunks_exact(64);
        let mut base = 0;
        for chunk in &mut chunks {
            if !state.block(bytes, base, chunk) {
                return false;
            }
            base += 64;
        }
        let rest = chunks.remainder();
        if rest.is_empty() {
            return true;
        }
        // The last bytes, padded with spaces, which the scan passes over.
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        state.block(bytes, base, &last)
    }

    impl State {
        /// Reads the block of `bytes` at `base` (`block`, 64 bytes); `false` when the
        /// byte-by-byte scan has to decide.
        #[inline(always)]
        fn block(&mut self, bytes: &[u8], base: usize, block: &[u8]) -> bool {
            let c = classify(block);

            // Escaped bytes: the one after each backslash that is not itself escaped.
            let mut escaped = 0u64;
            let mut starts = c.backslash;
            if self.escape_carry {
                escaped |= 1;
                starts &= !1;
            }
            self.escape_carry = false;
            while starts != 0 {
                let i = starts.trailing_zeros();
                let at = base + i as usize;
                if bytes.get(at + 1) == Some(&b'u') && at != self.paired {
                    match unicode_escape(bytes, at) {
                        Ok(12) => self.paired = at + 6,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
                starts &= starts - 1;
                if i == 63 {
                    self.escape_carry = true;
                } else {
                    escaped |= 1 << (i + 1);
                    starts &= !(1 << (i + 1));
                }
            }

            let in_string = prefix_xor(c.quote & !escaped) ^ self.in_string;
            self.in_string = ((in_string as i64) >> 63) as u64;
            let outside = !in_string;
            // A backslash outside a string is plain to the byte-by-byte scan but an escape here.
            if c.backslash & outside != 0 {
                return false;
            }

            let open = c.open & outside;
            let close = c.close & outside;
            // Most blocks of a body have no bracket outside its strings: no counting then
            // (without a POPCNT instruction in the baseline x86_64, a count is a dozen).
            if open | close != 0 {
                let opens = open.count_ones() as usize;
                let closes = close.count_ones() as usize;
                if self.depth + opens <= MAX_DEPTH && closes <= self.depth {
                    self.depth = self.depth + opens - closes;
                } else if !self.walk_brackets(open, close) {
                    return false;
                }
            }

            // A number that may be beyond an f64: an exponent (after a digit or a point, as
            // in every number with one that parses), or a block of digits alone outside a
            // string (a number of hundreds of digits fills one).
            if outside == u64::MAX && all_digits(block) {
                return false;
            }
            let mut exponents = c.exponent & outside;
            while exponents != 0 {
                let at = base + exponents.trailing_zeros() as usize;
                if at > 0 && matches!(bytes.get(at - 1), Some(b'.' | b'0'..=b'9')) {
                    return false;
                }
                exponents &= exponents - 1;
            }
            true
        }
    }

    impl State {
        /// Counts the brackets of a block in order, as the byte-by-byte scan does; `false`
        /// once the depth passes the limit.
        fn walk_brackets(&mut self, open: u64, close: u64) -> bool {
            let mut brackets = open | close;
            while brackets != 0 {
                let bit = brackets & brackets.wrapping_neg();
                if open & bit != 0 {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return false;
                    }
                } else {
                    self.depth = self.depth.saturating_sub(1);
                }
                brackets ^= bit;
            }
            true
        }
    }

    /// Bit `i` set where an odd number of `quotes`' bits `0..=i` are set: inside a string
    /// (its opening quote included, its closing quote not).
    fn prefix_xor(quotes: u64) -> u64 {
        let mut x = quotes;
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        x
    }

    #[inline(always)]
    fn classify(block: &[u8]) -> Classes {
        let splat = |b: u8| set_splat_i8_m128i(b as i8);
        let mask = |v: m128i| u64::from(move_mask_i8_m128i(v) as u16);
        let mut c = Classes::default();
        for (k, v) in lanes(block).enumerate() {
            // `[`, `]` and `E` differ from `{`, `}` and `e` by 0x20 alone.
            let lower = bitor_m128i(v, splat(0x20));
            let at = 16 * k;
            c.quote |= mask(cmp_eq_mask_i8_m128i(v, splat(b'"'))) << at;
            c.backslash |= mask(cmp_eq_mask_i8_m128i(v, splat(b'\\'))) << at;
            c.open |= mask(cmp_eq_mask_i8_m128i(lower, splat(b'{'))) << at;
            c.close |= mask(cmp_eq_mask_i8_m128i(lower, splat(b'}'))) << at;
            c.exponent |= mask(cmp_eq_mask_i8_m128i(lower, splat(b'e'))) << at;
        }
        c
    }

    /// The 64-byte `block` as four 16-byte vectors.
    #[inline(always)]
    fn lanes(block: &[u8]) -> impl Iterator<Item = m128i> + '_ {
        block.chunks_exact(16).map(|lane| {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(lane);
            load_unaligned_m128i(&bytes)
        })
    }

    /// Whether every byte of the 64-byte `block` is a digit. Asked only of a block with no
    /// byte inside a string, which a body rarely has.
    fn all_digits(block: &[u8]) -> bool {
        let mut digits = set_splat_i8_m128i(-1);
        for v in lanes(block) {
            // Digits map to -128..=-119 and nothing else does.
            let shifted = add_i8_m128i(v, set_splat_i8_m128i((0x80 - b'0') as i8));
            digits = bitand_m128i(
                digits,
                cmp_lt_mask_i8_m128i(shifted, set_splat_i8_m128i((0x80 + 10) as i8)),
            );
        }
        move_mask_i8_m128i(digits) == 0xFFFF
    }
}

/// How many spaces start `bytes[from..]`: the indentation after a line break of a
/// pretty-printed body, counted eight bytes at a time.
#[inline]
pub(super) fn indentation(bytes: &[u8], from: usize) -> usize {
    let mut n = 0;
    for chunk in bytes.get(from..).unwrap_or_default().chunks_exact(8) {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default()) ^ SPACES;
        // High bit set in exactly the bytes that are not spaces.
        let other = (((x & !HIGH) + !HIGH) | x) & HIGH;
        if other != 0 {
            return n + other.trailing_zeros() as usize / 8;
        }
        n += 8;
    }
    n
}

/// Where the string whose contents start at `from` ends: its closing quote, or the end of the
/// body when it has none. Refuses a lone UTF-16 surrogate escape on the way.
fn string_end(bytes: &[u8], from: usize) -> Result<usize, DecodeError> {
    let mut i = from;
    while let Some(at) = quote_or_escape(bytes, i) {
        if bytes[at] == b'"' {
            return Ok(at);
        }
        i = at
            + if bytes.get(at + 1) == Some(&b'u') {
                unicode_escape(bytes, at)?
            } else {
                2
            };
    }
    Ok(bytes.len())
}

/// The first `"` or `\` at or after `from`, if any. Keys and short values end within a few
/// bytes: the first words are searched eight bytes at a time in plain integer arithmetic,
/// which finds their quote before a vector search would have started; longer strings go on
/// with memchr2.
#[inline]
fn quote_or_escape(bytes: &[u8], from: usize) -> Option<usize> {
    // High bit set in each byte of `word` equal to `byte`, and possibly in bytes above the
    // first such byte: the lowest one set is exact.
    let equal = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let rest = bytes.get(from..)?;
    let mut searched = 0;
    for chunk in rest.chunks_exact(8).take(4) {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let found = equal(word, b'"') | equal(word, b'\\');
        if found != 0 {
            return Some(from + searched + found.trailing_zeros() as usize / 8);
        }
        searched += 8;
    }
    let tail = rest.get(searched..)?;
    memchr2(b'"', b'\\', tail).map(|i| from + searched + i)
}

/// The last byte of the number starting at `start`, refusing one beyond the range of an f64.
fn number_end(body: &str, start: usize) -> Result<usize, DecodeError> {
    let bytes = body.as_bytes();
    let mut i = start;
    while i + 1 < bytes.len()
        && matches!(bytes[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
    {
        i += 1;
    }
    let number = &body[start..=i];
    // Only numbers with an exponent or hundreds of digits can overflow an f64.
    let may_overflow = number.len() > 300 || number.bytes().any(|b| b == b'e' || b == b'E');
    if may_overflow && number.parse::<f64>().is_ok_and(|n| n.is_infinite()) {
        return Err(DecodeError::Malformed {
            offset: start,
            message: "number out of range".to_owned(),
        });
    }
    Ok(i)
}

/// The length of the `\\uXXXX` escape at `at` (12 bytes for a surrogate pair). A UTF-16
/// surrogate that is not half of a pair is refused: it names no character, so no string can
/// hold it, and a record carrying it in `raw` would not parse downstream. Malformed hex is left
/// to the decoder, which reports it with its offset.
fn unicode_escape(bytes: &[u8], at: usize) -> Result<usize, DecodeError> {
    let unit = |from: usize| -> Option<u16> {
        let hex = std::str::from_utf8(bytes.get(from..from + 4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let lone = || DecodeError::Malformed {
        offset: at,
        message: "a \\u escape is half of a UTF-16 surrogate pair".to_owned(),
    };
    match unit(at + 2) {
        Some(0xD800..=0xDBFF) => {
            let pair = bytes.get(at + 6..at + 8) == Some(b"\\u".as_slice())
                && matches!(unit(at + 8), Some(0xDC00..=0xDFFF));
            if pair {
                Ok(12)
            } else {
                Err(lone())
            }
        }
        Some(0xDC00..=0xDFFF) => Err(lone()),
        _ => Ok(2),
    }
}

/// The byte offset of `inner` within `outer` (both from the same body).
pub fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// The first non-whitespace byte and its offset.
pub fn first_byte(body: &str) -> Option<(usize, u8)> {
    body.bytes()
        .enumerate()
        .find(|(_, b)| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Converts a serde_json error on `text` (which starts at `base` in the body) to a
/// `DecodeError::Malformed` with a byte offset instead of line and column.
pub fn malformed(text: &str, base: usize, e: &serde_json::Error) -> DecodeError {
    let line = e.line();
    let col = e.column();
    let mut offset = 0;
    if line > 0 {
        let mut seen = 1;
        for (i, b) in text.bytes().enumerate() {
            if seen == line {
                offset = i;
                break;
            }
            if b == b'\n' {
                seen += 1;
                offset = i + 1;
            }
        }
        offset = (offset + col.saturating_sub(1)).min(text.len());
    }
    let full = e.to_string();
    let message = match full.find(" at line ") {
        Some(cut) => full[..cut].to_owned(),
        None => full,
    };
    DecodeError::Malformed {
        offset: base + offset,
        message,
    }
}

/// Calls `each` with every element of the top-level JSON array `body`, as a borrowed raw value,
/// without collecting them. Stops at the first error from `each`.
pub fn for_each_element<'a, F>(body: &'a str, mut each: F) -> Result<(), DecodeError>
where
    F: FnMut(&'a RawValue) -> Result<(), DecodeError>,
{
    struct Elements<'f, F> {
        each: &'f mut F,
        failed: &'f mut Option<DecodeError>,
    }

    impl<'de, F> Visitor<'de> for Elements<'_, F>
    where
        F: FnMut(&'de RawValue) -> Result<(), DecodeError>,
    {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                if let Err(e) = (self.each)(raw) {
                    *self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }

    let mut failed = None;
    let mut de = serde_json::Deserializer::from_str(body);
    let result = de.deserialize_seq(Elements {
        each: &mut each,
        failed: &mut failed,
    });
    if let Some(e) = failed {
        return Err(e);
    }
    result
        .and_then(|()| de.end())
        .map_err(|e| malformed(body, 0, &e))
}

/// Deserializes one object of the body into a decoder's borrowed struct; an error carries its
/// offset in the body (`offset` is where the object starts).
///
/// The object is read by [`super::members`], which does not parse it again; where that does
/// not take it (a key given twice, a value of the wrong type) serde_json reads it and reports
/// why, so a body is only ever refused on serde_json's word.
pub fn parse_object<'a, T: serde::Deserialize<'a>>(
    raw: &'a RawValue,
    offset: usize,
) -> Result<T, DecodeError> {
    match super::members::read(raw) {
        Some(fields) => Ok(fields),
        None => serde_json::from_str(raw.get()).map_err(|e| malformed(raw.get(), offset, &e)),
    }
}

/// Calls `each` with every object of a body that is one JSON object or an array of objects,
/// as `(raw object, its byte offset)`. `what` names the expected shape in errors.
pub fn for_each_object<'a, F>(
    body: &'a str,
    what: &'static str,
    mut each: F,
) -> Result<(), DecodeError>
where
    F: FnMut(&'a RawValue, usize) -> Result<(), DecodeError>,
{
    let mut object = |raw: &'a RawValue| {
        let offset = offset_in(body, raw.get());
        if !raw.get().starts_with('{') {
            return Err(DecodeError::Shape {
                offset,
                expected: "a JSON object",
            });
        }
        each(raw, offset)
    };
    match first_byte(body) {
        Some((_, b'[')) => for_each_element(body, object),
        Some((_, b'{')) => {
            let raw: &RawValue = serde_json::from_str(body).map_err(|e| malformed(body, 0, &e))?;
            object(raw)
        }
        Some((offset, _)) => Err(DecodeError::Shape {
            offset,
            expected: what,
        }),
        None => Err(DecodeError::Shape {
            offset: 0,
            expected: what,
        }),
    }
}

/// How far [`for_each_read`] got.
pub enum Read {
    /// Every object was read in one pass and handed over, and the whole body was checked on the
    /// way: it is one JSON value (or a stream of them) within the body's limits, so the
    /// pre-pass ([`check_limits`]) would pass it.
    Checked,
    /// Every object was read and handed over, or `each` asked to stop, but not every byte of
    /// the body went through the one-pass reader's checks (serde_json read an object, or the
    /// rest was never looked at).
    Done,
    /// The object after the first `n` could not be read at all; the body's ordinary reading,
    /// from that object on, says why.
    Stopped(usize),
}

/// Every object of a body that is one JSON object or an array of objects, read by serde_json
/// straight into the decoder's struct `T`, in the same pass that validates it and finds where
/// it ends: `each` gets `(fields, raw object)`. Reading the body's objects as
/// raw values and then each into `T` passes over every byte twice.
///
/// Anything unusual (an element that is not an object, a key given twice, a member `T` cannot
/// take, malformed JSON) stops the walk at that object, so that the caller's ordinary reading
/// can go on from there and report it with the same error and offset as always.
///
/// With `stream`, a body of objects separated by whitespace (NDJSON) is read the same way;
/// without it, a body that starts with an object must be that one object alone.
pub fn for_each_read<'a, T, F>(body: &'a str, stream: bool, mut each: F) -> Read
where
    T: serde::Deserialize<'a>,
    F: FnMut(T, &'a RawValue) -> std::ops::ControlFlow<()>,
{
    let space =
        |from: usize| first_byte(body.get(from..).unwrap_or_default()).map(|(i, b)| (from + i, b));
    // Whether every object so far was read by the one-pass reader, which also checks the
    // body's limits (`Read::Checked`).
    let mut checked = true;
    // One object starting at `start`, inside `outer` containers: its fields, its raw text and
    // where it ends. Read member by member, each checked as it is passed over
    // (`members::read_unvalidated`); what that does not take (a key given twice, a member of
    // the wrong type, text it is not sure of) serde_json reads, validating as it goes, and
    // reports.
    let mut one = |start: usize, outer: usize| -> Option<(T, &'a RawValue, usize)> {
        let text = body.get(start..).filter(|t| t.starts_with('{'))?;
        if let Some((fields, end)) = super::members::read_unvalidated::<T>(text, outer) {
            if let Some(raw) = text.get(..end).and_then(super::members::validated) {
                return Some((fields, raw, start + end));
            }
        }
        checked = false;
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<T>();
        let fields = stream.next()?.ok()?;
        let end = start + stream.byte_offset();
        let raw = super::members::validated(body.get(start..end)?)?;
        Some((fields, raw, end))
    };
    let mut read = 0;
    let all = match space(0) {
        Some((first, b'{')) => 'objects: {
            let mut start = first;
            while let Some((fields, raw, end)) = one(start, 0) {
                match space(end) {
                    None => {
                        if each(fields, raw).is_break() {
                            return Read::Done;
                        }
                        break 'objects true;
                    }
                    Some((next, b'{')) if stream => {
                        if each(fields, raw).is_break() {
                            return Read::Done;
                        }
                        read += 1;
                        start = next;
                    }
                    Some(_) => break,
                }
            }
            false
        }
        Some((open, b'[')) => 'elements: {
            let mut next = space(open + 1);
            if let Some((close, b']')) = next {
                break 'elements space(close + 1).is_none();
            }
            while let Some((start, _)) = next {
                let Some((fields, raw, end)) = one(start, 1) else {
                    break;
                };
                if each(fields, raw).is_break() {
                    return Read::Done;
                }
                read += 1;
                match space(end) {
                    Some((comma, b',')) => next = space(comma + 1),
                    Some((close, b']')) if space(close + 1).is_none() => break 'elements true,
                    _ => break,
                }
            }
            false
        }
        _ => false,
    };
    match (all, checked) {
        (true, true) => Read::Checked,
        (true, false) => Read::Done,
        (false, _) => Read::Stopped(read),
    }
}

/// Reads a JSON string without copying unless it holds escapes; `None` if `raw` is not a string.
/// `raw` was validated when it was parsed, so a string without a backslash is its text between
/// the quotes; only escaped strings are decoded (into an owned copy).
pub fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    // A validated string's first quote, backslash or control byte between its quotes can only
    // be a backslash; with none, the text is the string.
    if special_in(inner.as_bytes(), 0).is_none() {
        return Some(Cow::Borrowed(inner));
    }
    unescape(inner).map(Cow::Owned)
}

/// The text of the JSON string whose contents (between its quotes) are `inner`, as serde_json
/// reads it into a `String`, and `None` where serde_json refuses it: an unknown escape, bad
/// hex, a UTF-16 surrogate that is not half of a pair, a control character, a bare quote.
///
/// One allocation the size of `inner`, filled piece by piece between escapes; serde_json's
/// own reading (`from_str::<String>`) grows a scratch buffer from empty and then copies it into
/// the `String`, which was most of the cost of an escaped field (a description with line
/// breaks).
fn unescape(inner: &str) -> Option<String> {
    let bytes = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    loop {
        // The next quote, backslash or control byte, sixteen bytes at a time.
        let at = special_in(bytes, i).unwrap_or(bytes.len());
        out.push_str(inner.get(i..at)?);
        match bytes.get(at) {
            None => return Some(out),
            Some(b'\\') => {}
            // A bare quote or a control byte.
            Some(_) => return None,
        }
        let (c, len) = match bytes.get(at + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => match hex4(bytes, at + 2)? {
                high @ 0xD800..=0xDBFF => {
                    if bytes.get(at + 6..at + 8) != Some(b"\\u".as_slice()) {
                        return None;
                    }
                    let low = hex4(bytes, at + 8).filter(|n| (0xDC00..=0xDFFF).contains(n))?;
                    let c =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    (char::from_u32(c)?, 12)
                }
                0xDC00..=0xDFFF => return None,
                n => (char::from_u32(u32::from(n))?, 6),
            },
            _ => return None,
        };
        out.push(c);
        i = at + len;
    }
}

/// The four hex digits (either case) at `from` as a number, `None` unless all four are hex.
fn hex4(bytes: &[u8], from: usize) -> Option<u16> {
    bytes.get(from..from + 4)?.iter().try_fold(0u16, |n, &d| {
        let digit = char::from(d).to_digit(16)?;
        Some(n << 4 | digit as u16)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The byte-at-a-time scan `check_limits` replaced, kept to check that they agree: one pass
    /// over the body, skipping string contents, that refuses what downstream readers
    /// cannot take: nesting deeper than [`MAX_DEPTH`], and numbers beyond the range of an f64
    /// (`1e400` is valid JSON grammar, but serde_json, Go's encoding/json and most SIEM parsers
    /// refuse the line that carries it).
    fn reference_check_limits(body: &str) -> Result<(), DecodeError> {
        let bytes = body.as_bytes();
        let mut depth = 0usize;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    // A string: jump from escape to escape to its closing quote. Most of a body's
                    // bytes are string contents, and memchr2 passes over them many at a time.
                    i += 1;
                    while let Some(at) = bytes.get(i..).and_then(|rest| memchr2(b'"', b'\\', rest))
                    {
                        i += at;
                        if bytes[i] == b'"' {
                            break;
                        }
                        i += if bytes.get(i + 1) == Some(&b'u') {
                            unicode_escape(bytes, i)?
                        } else {
                            2
                        };
                    }
                    if i < bytes.len() && bytes[i] != b'"' {
                        // No closing quote: the string runs to the end of the body.
                        i = bytes.len();
                    }
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(DecodeError::TooDeep {
                            offset: i,
                            limit: MAX_DEPTH,
                        });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while i + 1 < bytes.len()
                        && matches!(bytes[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                    {
                        i += 1;
                    }
                    let number = &body[start..=i];
                    // Only numbers with an exponent or hundreds of digits can overflow an f64.
                    let may_overflow =
                        number.len() > 300 || number.bytes().any(|b| b == b'e' || b == b'E');
                    if may_overflow && number.parse::<f64>().is_ok_and(|n| n.is_infinite()) {
                        return Err(DecodeError::Malformed {
                            offset: start,
                            message: "number out of range".to_owned(),
                        });
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    /// Bodies made of the bytes the scan treats differently (quotes, escapes, surrogate
    /// halves, brackets, number characters, runs of spaces) and some that it passes over.
    fn jsonish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "\"",
            "\\",
            "\\u",
            "\\uD83D",
            "\\uDE00",
            "\\u0041",
            "[",
            "]",
            "{",
            "}",
            "-",
            "0",
            "9",
            "1e400",
            "e",
            "E",
            ".",
            "+",
            " ",
            "        ",
            "\n",
            ",",
            ":",
            "a",
            "true",
            "null",
            "\u{e9}",
            "\u{1f600}",
            "x\"y",
            "\"k\":",
        ]);
        prop::collection::vec(piece, 0..120).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #[test]
        fn the_scan_agrees_with_the_byte_at_a_time_one(body in jsonish()) {
            proptest::prop_assert_eq!(check_limits(&body), reference_check_limits(&body));
        }

        #[test]
        fn the_scan_agrees_on_any_text(body in "\\PC{0,200}") {
            proptest::prop_assert_eq!(check_limits(&body), reference_check_limits(&body));
        }

        #[test]
        fn the_scan_agrees_on_deep_and_long_bodies(depth in 0..80usize, digits in 290..320usize, pad in 0..20usize) {
            let body = format!(
                "{}{}\"{}\"{}{}",
                "[ ".repeat(depth),
                " ".repeat(pad),
                "\\\"".repeat(pad),
                "9".repeat(digits),
                "]".repeat(depth)
            );
            proptest::prop_assert_eq!(check_limits(&body), reference_check_limits(&body));
        }
    }

    /// Bodies of several 64-byte blocks, so that strings, escapes (runs of backslashes
    /// included), surrogate pairs, numbers and brackets fall across block boundaries.
    fn long_jsonish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "\"",
            "\\",
            "\\\\",
            "\\\\\\",
            "\\u",
            "\\uD83D\\uDE00",
            "\\uD83D",
            "\\udc00",
            "[",
            "]",
            "{",
            "}",
            "[[[[[[[[",
            "]]]]]]]]",
            "1e400",
            "9.e400",
            "1.e308",
            "-2E-5",
            "12",
            "0.5",
            "true",
            "false",
            "null",
            "e",
            " ",
            "                ",
            "\n",
            ",",
            ":",
            "\"key\":",
            "\"value with \\\"quotes\\\" inside\"",
            "\u{e9}\u{1f600}",
        ]);
        prop::collection::vec(piece, 0..400).prop_map(|p| p.concat())
    }

    /// Bodies the block pass should answer for itself: objects nested `depth` deep (and an
    /// array in each, one level deeper) whose strings carry escapes, at every offset against
    /// the block boundaries.
    fn passing_body(depth: usize, pad: usize, escapes: usize) -> String {
        let mut body = " ".repeat(pad);
        for level in 0..depth {
            body.push_str(&format!(
                "{{\"k{level}\": \"a\\\"b{}\\u00e9\\uD83D\\uDE00\", \"n\": [1, -2.5, true, false, null],\"d\":",
                "\\\\".repeat(escapes)
            ));
        }
        body.push('0');
        body.push_str(&"}".repeat(depth));
        body
    }

    proptest::proptest! {
        #[test]
        fn the_scan_agrees_on_bodies_of_many_blocks(body in long_jsonish()) {
            proptest::prop_assert_eq!(check_limits(&body), reference_check_limits(&body));
        }

        #[test]
        fn bodies_within_the_limits_pass_block_by_block(depth in 1..MAX_DEPTH, pad in 0..64usize, escapes in 0..4usize) {
            let body = passing_body(depth, pad, escapes);
            proptest::prop_assert_eq!(reference_check_limits(&body), Ok(()));
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            proptest::prop_assert!(blocks::pass(body.as_bytes()), "{}", body);
        }
    }

    /// Brackets closed in blocks of their own count as they go: a body of many shallow
    /// objects, more brackets than the depth limit in all, is answered by the block pass.
    #[test]
    fn closing_brackets_alone_in_a_block_lower_the_depth() {
        let pad = " ".repeat(70);
        let object = format!(r#"{{"a":{{"b":"x"{pad}}}{pad}}}"#);
        let body = format!("[{}]", vec![object; 100].join(","));
        assert_eq!(check_limits(&body), Ok(()));
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        assert!(blocks::pass(body.as_bytes()));
    }

    /// The vendors' own payloads are answered by the block pass, not handed to the
    /// byte-by-byte scan, and pass.
    #[test]
    fn vendor_payloads_pass_block_by_block() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vendors");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.ends_with(".json") || name.ends_with(".ndjson")) {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap();
            assert_eq!(check_limits(&body), Ok(()), "{name}");
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            assert!(blocks::pass(body.as_bytes()), "{name}");
            read += 1;
        }
        assert!(read >= 10, "{read} fixtures in {}", dir.display());
    }

    #[test]
    fn a_lone_surrogate_escape_is_refused_and_a_pair_passes() {
        for body in [
            r#"{"k":"\uD83D\uDE00"}"#,
            r#"{"k":"\u00e9\u0041"}"#,
            r#"{"a\\u":1}"#,
        ] {
            assert_eq!(check_limits(body), Ok(()), "{body}");
        }
        for (body, at) in [
            (r#"{"clo\udAccount":1}"#, 5),
            (r#"{"k":"\uD83Dx"}"#, 6),
            (r#"{"k":"\uD83D\u0041"}"#, 6),
            (r#"{"k":"\uDE00"}"#, 6),
            (r#"{"k":"\uD83D"#, 6),
        ] {
            match check_limits(body) {
                Err(DecodeError::Malformed { offset, .. }) => assert_eq!(offset, at, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn streams_elements_and_reports_offsets() {
        let body = r#"[ {"a":1}, {"b":[2]} ]"#;
        let mut got = Vec::new();
        for_each_element(body, |r| {
            got.push((offset_in(body, r.get()), r.get()));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(2, r#"{"a":1}"#), (11, r#"{"b":[2]}"#)]);

        let bad = "[{\"a\":1},\n {\"b\" 2}]";
        match for_each_element(bad, |_| Ok(())).unwrap_err() {
            DecodeError::Malformed { offset, message } => {
                assert_eq!(&bad[offset..offset + 1], "2", "{message}");
                assert!(message.contains("expected `:`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            for_each_element("[1] x", |_| Ok(())),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let plain: &RawValue = serde_json::from_str(r#""abc""#).unwrap();
        assert!(matches!(string(plain), Some(Cow::Borrowed("abc"))));
        let esc: &RawValue = serde_json::from_str(r#""a\nb""#).unwrap();
        assert_eq!(string(esc).unwrap(), "a\nb");
        let num: &RawValue = serde_json::from_str("12").unwrap();
        assert!(string(num).is_none());
    }

    proptest::proptest! {
        /// `unescape` reads a string as serde_json does, and refuses what serde_json refuses:
        /// bodies drawn from the characters escapes are made of, with quotes, control
        /// characters and text beyond ASCII.
        #[test]
        fn unescape_reads_strings_as_serde_json_does(
            inner in proptest::strategy::Strategy::prop_map(proptest::collection::vec(proptest::sample::select(vec![
                "\\", "u", "n", "t", "\"", "/", "b", "f", "r", "x", "0", "9", "a", "F", "d", "D",
                "8", "c", "C", "e", "\u{1}", "\n", "é", "😀", " ", "\\u", "\\ud83d\\ude00",
                "\\ud800", "\\udc00", "\\u00e9", "\\u0000",
            ]), 0..24), |parts| parts.concat())
        ) {
            let text = format!("\"{inner}\"");
            let expected = serde_json::from_str::<String>(&text).ok();
            proptest::prop_assert_eq!(unescape(&inner), expected, "{}", text);
        }
    }

    #[test]
    fn escaped_strings_are_read_whole() {
        let long: &RawValue = serde_json::from_str(
            r#""ID: \nTitle: Test\tHost: \"example.com\" \u00e9\ud83d\ude00\/""#,
        )
        .unwrap();
        assert_eq!(
            string(long).unwrap(),
            "ID: \nTitle: Test\tHost: \"example.com\" \u{e9}\u{1f600}/"
        );
        let lone: &RawValue = serde_json::from_str(r#""a\ud800b""#).unwrap();
        assert_eq!(string(lone), None);
    }

    #[test]
    fn numbers_beyond_f64_are_refused_with_their_offset() {
        assert!(
            check_limits(r#"{"a":1e308,"b":-1.5e-400,"c":123456789012345678901234567890}"#).is_ok()
        );
        assert_eq!(
            check_limits(r#"{"a":"1e400","b": -1e400}"#),
            Err(DecodeError::Malformed {
                offset: 18,
                message: "number out of range".to_owned()
            })
        );
        let long = format!("[{}]", "9".repeat(400));
        assert!(matches!(
            check_limits(&long),
            Err(DecodeError::Malformed { offset: 1, .. })
        ));
        // A point before the exponent, at the end of a block and at the start of the next.
        for pad in [0, 57, 58, 59] {
            let body = format!("[{}9.e400]", " ".repeat(pad));
            assert!(
                matches!(check_limits(&body), Err(DecodeError::Malformed { offset, .. }) if offset == pad + 1),
                "{body}"
            );
        }
    }

    #[test]
    fn a_backslash_outside_strings_does_not_hide_brackets() {
        // The backslash is no escape outside a string: the quote after it opens one, the next
        // closes it, and the brackets are counted.
        for pad in [0, 60, 62, 63] {
            let body = format!("{}\\\" \"{}", " ".repeat(pad), "[".repeat(MAX_DEPTH + 1));
            assert_eq!(
                check_limits(&body),
                Err(DecodeError::TooDeep {
                    offset: pad + 4 + MAX_DEPTH,
                    limit: MAX_DEPTH
                }),
                "{body}"
            );
        }
    }

    #[test]
    fn depth_limit_skips_strings() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check_limits(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            check_limits(&deep),
            Err(DecodeError::TooDeep {
                offset: MAX_DEPTH,
                limit: MAX_DEPTH
            })
        );
        let in_string = format!("{{\"a\":\"{}\\\"\"}}", "[".repeat(200));
        assert!(check_limits(&in_string).is_ok(), "{in_string}");
    }

    #[test]
    fn invalid_utf8_offset() {
        assert_eq!(
            utf8(b"{\"a\":\"\xff\"}").unwrap_err(),
            DecodeError::InvalidUtf8 { offset: 6 }
        );
    }
}
