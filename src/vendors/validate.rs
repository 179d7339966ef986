//! A strict, allocation-free check that text holds one JSON value (RFC 8259 section 2-7) and
//! where that value ends, for the objects a decoder reads in one pass
//! ([`super::json::for_each_read`]).
//!
//! serde_json validates an object while reading it into a decoder's struct, but every member
//! it does not keep, and every member kept as raw text, is parsed as if its value were wanted:
//! on a Prisma Cloud alert that is most of the decoding time. Here the grammar is walked with
//! no more state than a bit per open container, strings are searched 16 bytes at a time for
//! the three bytes that can end or break them (`"`, `\`, control characters), and the struct is
//! then read from the validated text by [`super::members`], which only skips over values.
//!
//! It accepts nothing serde_json refuses: the grammar is the RFC's, with no extensions
//! (no comments, trailing commas, leading zeros, non-JSON whitespace or bare control
//! characters in strings). It may refuse what serde_json accepts, for instance nesting deeper
//! than [`MAX_DEPTH`], which the body's pre-pass refuses anyway; the caller then reads the
//! object with serde_json, which accepts it or reports why not. Text is `&str`, so it is valid
//! UTF-8 already.

use super::json::{indentation, MAX_DEPTH};
use crate::normalize::scan::special;

/// Where the JSON value starting at `start` in `text` (after any whitespace) ends: one past
/// its last byte. `None` when the text from there is not one well-formed value within the
/// body's limits: with the `outer` containers the value is inside, nesting deeper than
/// [`MAX_DEPTH`]; a number beyond the range of an f64; a `\u` escape that is half of a UTF-16
/// surrogate pair. What follows the value is not looked at.
pub fn value_end(text: &str, start: usize, outer: usize) -> Option<usize> {
    let b = text.as_bytes();
    // Most values a reader passes over are strings: no container state for them.
    if b.get(start) == Some(&b'"') {
        return string_end(b, start + 1).map(|quote| quote + 1);
    }
    // Bit `d` set: the container at depth `d + 1` is an object (else an array).
    let mut objects: u64 = 0;
    let mut depth = 0usize;
    let mut i = start;
    'value: loop {
        i = space(b, i);
        match *b.get(i)? {
            open @ (b'{' | b'[') => {
                if outer + depth >= MAX_DEPTH || depth >= 64 {
                    return None;
                }
                i = space(b, i + 1);
                let close = if open == b'{' { b'}' } else { b']' };
                if *b.get(i)? == close {
                    i += 1;
                } else {
                    if open == b'{' {
                        objects |= 1 << depth;
                        i = member_key(b, i)?;
                    } else {
                        objects &= !(1 << depth);
                    }
                    depth += 1;
                    continue 'value;
                }
            }
            b'"' => i = string_end(b, i + 1)? + 1,
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(b, i)?,
            _ => return None,
        }
        // After a value: the end, or what its container allows next.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = space(b, i);
            let in_object = (objects >> (depth - 1)) & 1 == 1;
            match (*b.get(i)?, in_object) {
                (b',', true) => {
                    i = member_key(b, space(b, i + 1))?;
                    continue 'value;
                }
                (b',', false) => {
                    i += 1;
                    continue 'value;
                }
                (b'}', true) | (b']', false) => {
                    depth -= 1;
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// A member's key at `i` and its colon: where its value may start.
fn member_key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = space(b, string_end(b, i + 1)? + 1);
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

/// The first byte at or after `i` that is not JSON whitespace (space, tab, LF, CR).
#[inline]
pub(super) fn space(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        match c {
            b'\n' => i += 1 + indentation(b, i + 1),
            b' ' | b'\t' | b'\r' => i += 1,
            _ => break,
        }
    }
    i
}

/// `word` at `i`: where it ends.
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len()) == Some(word)).then_some(i + word.len())
}

/// The number at `i` (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`): where it ends.
/// One beyond the range of an f64 is refused, as the body's pre-pass refuses it.
fn number_end(b: &[u8], start: usize) -> Option<usize> {
    let end = number_grammar(b, start)?;
    let number = b.get(start..end)?;
    // Only numbers with an exponent or hundreds of digits can overflow an f64.
    let may_overflow = number.len() > 300 || number.iter().any(|&c| c == b'e' || c == b'E');
    if may_overflow {
        let n: f64 = std::str::from_utf8(number).ok()?.parse().ok()?;
        if n.is_infinite() {
            return None;
        }
    }
    Some(end)
}

fn number_grammar(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

fn digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// [`string_end`], and whether the string holds an escape (a key without one is its text).
pub(super) fn string_end_escaped(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let first = special(b, i)?;
    if b[first] == b'"' {
        return Some((first, false));
    }
    string_end(b, first).map(|quote| (quote, true))
}

/// The closing quote of the string whose contents start at `i`, every escape in it being one
/// of the RFC's (`\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t` `\uXXXX`) and no byte below 0x20 in it.
/// A `\u` escape of half a UTF-16 surrogate pair must be followed by the other half: the body's
/// pre-pass refuses a lone one (it names no character).
pub(super) fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = special(b, i)?;
        match b[i] {
            b'"' => return Some(i),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => i = unicode_escape_end(b, i)?,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// Where the `\uXXXX` escape at `i` ends: past the other half too for half of a surrogate
/// pair, `None` for a lone half. Out of line: rare, and inlined it would cost every string
/// (most have no such escape) its own register saves.
#[cold]
#[inline(never)]
fn unicode_escape_end(b: &[u8], i: usize) -> Option<usize> {
    match utf16_unit(b, i + 2)? {
        0xD800..=0xDBFF => {
            if *b.get(i + 6)? != b'\\' || *b.get(i + 7)? != b'u' {
                return None;
            }
            (0xDC00..=0xDFFF)
                .contains(&utf16_unit(b, i + 8)?)
                .then_some(i + 12)
        }
        0xDC00..=0xDFFF => None,
        _ => Some(i + 6),
    }
}

/// The four hex digits at `i` as a UTF-16 code unit.
fn utf16_unit(b: &[u8], i: usize) -> Option<u16> {
    let mut unit = 0u16;
    for &c in b.get(i..i + 4)? {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        unit = unit << 4 | u16::from(digit);
    }
    Some(unit)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    /// serde_json's answer: the end of the one value at the start of `text`, if it takes one.
    fn serde_end(text: &str) -> Option<usize> {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        stream.next()?.ok()?;
        Some(stream.byte_offset())
    }

    #[test]
    fn takes_well_formed_values_and_finds_their_end() {
        for text in [
            "{}",
            "[]",
            r#"{"a":1}"#,
            " {\n  \"a\" : [ 1 , -0.5e+3 , true , false , null , \"x\\\"\\u00e9\\n\" ] \r\n}",
            r#"{"":{"":{"":[[[]]]}},"k":"é€😀","z":-0,"e":1E9,"f":0.0}"#,
            r#""just a string""#,
            "12345",
            "[1,{\"a\":[]},\"\"]",
        ] {
            assert_eq!(value_end(text, 0, 0), Some(text.trim_end().len()), "{text}");
            assert_eq!(value_end(text, 0, 0), serde_end(text), "{text}");
        }
        // What follows the value is not its concern.
        assert_eq!(value_end(r#"{"a":1} ,{"b":2}"#, 0, 0), Some(7));
        assert_eq!(value_end(r#"[{"a":1},{"b":2}]"#, 9, 0), Some(16));
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in [
            "",
            " ",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\" 1}",
            "{a:1}",
            "{'a':1}",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\":1]",
            "[1}",
            "[01]",
            "[-]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e]",
            "[1e+]",
            "[tru]",
            "[nul]",
            "[True]",
            "\"abc",
            "\"a\tb\"",
            "\"a\nb\"",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"\\u12\"",
            "[\u{c}1]",
            "{\"a\":1/*c*/}",
        ] {
            assert_eq!(value_end(text, 0, 0), None, "{text:?}");
            // Where serde_json takes a value, it is one that ends before the text does.
            if let Some(end) = serde_end(text) {
                panic!("{text:?}: serde_json took {end} bytes");
            }
        }
        // What follows a value is the caller's to check, even right after a number.
        assert_eq!(value_end("0x", 0, 0), Some(1));
        assert_eq!(value_end("truex", 0, 0), Some(4));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(value_end(&deep(MAX_DEPTH), 0, 0).is_some());
        assert_eq!(value_end(&deep(MAX_DEPTH + 1), 0, 0), None);
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(value_end(&objects(MAX_DEPTH), 0, 0).is_some());
        assert_eq!(value_end(&objects(MAX_DEPTH + 1), 0, 0), None);
    }

    #[test]
    fn the_bodys_limits_are_checked_as_the_limits_pass_checks_them() {
        use super::super::json::check_limits;
        // Beyond an f64, half a surrogate pair: refused here and by the separate pass alike.
        for text in [
            "1e400",
            "-1e309",
            "[1, 2E+999]",
            &format!("1{}", "0".repeat(400)),
            r#""\ud800""#,
            r#""\udfff""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
            r#""\udc00\ud800""#,
            r#"{"\ud800":1}"#,
        ] {
            assert_eq!(value_end(text, 0, 0), None, "{text}");
            assert!(check_limits(text).is_err(), "{text}");
        }
        for text in [
            "1e308",
            "1.5e-400",
            &format!("1{}", "0".repeat(300)),
            r#""\ud83d\ude00""#,
            r#""\uD83D\uDE00 \u00e9""#,
            r#""\ufffd""#,
        ] {
            assert_eq!(value_end(text, 0, 0), Some(text.len()), "{text}");
            assert!(check_limits(text).is_ok(), "{text}");
        }
        // Nesting counts the containers the value is inside.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(value_end(&deep(MAX_DEPTH - 1), 0, 1).is_some());
        assert_eq!(value_end(&deep(MAX_DEPTH), 0, 1), None);
        assert_eq!(value_end("[]", 0, MAX_DEPTH), None);
        assert_eq!(value_end("1", 0, MAX_DEPTH), Some(1));
    }

    #[test]
    fn long_strings_are_searched_whole() {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 100] {
            let plain = format!("\"{}\"", "a".repeat(n));
            assert_eq!(value_end(&plain, 0, 0), Some(n + 2));
            for at in 0..n {
                let mut with_escape = "a".repeat(n);
                with_escape.insert_str(at, "\\\"");
                let s = format!("\"{with_escape}\"");
                assert_eq!(value_end(&s, 0, 0), Some(s.len()), "{s}");
                let mut with_control = "a".repeat(n);
                with_control.insert(at, '\u{1f}');
                assert_eq!(value_end(&format!("\"{with_control}\""), 0, 0), None);
            }
        }
    }

    /// Text near JSON: up to 40 tokens of every kind, well-formed or not, in any order.
    fn almost_json() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n  ",
            "\t",
            "\"k\"",
            "\"\\u00e9\\\"\"",
            "\"é\"",
            "0",
            "-1",
            "12.5e-3",
            "01",
            "1.",
            "true",
            "false",
            "null",
            "nul",
            "\"",
            "\\",
            "\u{1}",
            "\"a\u{1}\"",
            "\"\\q\"",
        ]);
        prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        /// Never takes text serde_json refuses, and where it takes a value it ends where
        /// serde_json's does.
        #[test]
        fn never_takes_more_than_serde_json(text in almost_json()) {
            // Containers only: a number or literal at the top is followed by whatever comes.
            let container = text.trim_start().starts_with(['{', '[']);
            if let Some(end) = value_end(&text, 0, 0).filter(|_| container) {
                prop_assert_eq!(Some(end), serde_end(&text), "{:?}", text);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Takes whatever serde_json writes, pretty-printed, whole.
        #[test]
        fn takes_what_serde_json_writes(value in any::<Vec<(String, Option<i64>, bool, f32)>>()) {
            let text = serde_json::to_string_pretty(&value).unwrap();
            prop_assert_eq!(value_end(&text, 0, 0), Some(text.len()));
        }
    }
}
