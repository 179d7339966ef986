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

/// Where the JSON value starting at `start` in `text` (after any whitespace) ends: one past
/// its last byte. `None` when the text from there is not one well-formed value, or nests
/// deeper than [`MAX_DEPTH`]. What follows the value is not looked at.
pub fn value_end(text: &str, start: usize) -> Option<usize> {
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
                if depth >= MAX_DEPTH || depth >= 64 {
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
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
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

/// The closing quote of the string whose contents start at `i`, every escape in it being one
/// of the RFC's (`\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t` `\uXXXX`) and no byte below 0x20 in it.
pub(super) fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = special(b, i)?;
        match b[i] {
            b'"' => return Some(i),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// The first `"`, `\` or control character (below 0x20) at or after `i`: 16 bytes at a time
/// with SSE2 compares while 16 are left, then byte by byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn special(b: &[u8], mut i: usize) -> Option<usize> {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, max_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let quote = set_splat_i8_m128i(b'"' as i8);
    let backslash = set_splat_i8_m128i(b'\\' as i8);
    let control = set_splat_i8_m128i(0x1f);
    while let Some(chunk) = b.get(i..i + 16).and_then(|c| <&[u8; 16]>::try_from(c).ok()) {
        let v = load_unaligned_m128i(chunk);
        let hits = bitor_m128i(
            bitor_m128i(
                cmp_eq_mask_i8_m128i(v, quote),
                cmp_eq_mask_i8_m128i(v, backslash),
            ),
            // A byte at most 0x1f (unsigned) is its own maximum with 0x1f.
            cmp_eq_mask_i8_m128i(max_u8_m128i(v, control), control),
        );
        let mask = move_mask_i8_m128i(hits);
        if mask != 0 {
            return Some(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    special_bytewise(b, i)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn special(b: &[u8], i: usize) -> Option<usize> {
    special_bytewise(b, i)
}

fn special_bytewise(b: &[u8], i: usize) -> Option<usize> {
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|n| i + n)
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
            assert_eq!(value_end(text, 0), Some(text.trim_end().len()), "{text}");
            assert_eq!(value_end(text, 0), serde_end(text), "{text}");
        }
        // What follows the value is not its concern.
        assert_eq!(value_end(r#"{"a":1} ,{"b":2}"#, 0), Some(7));
        assert_eq!(value_end(r#"[{"a":1},{"b":2}]"#, 9), Some(16));
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
            assert_eq!(value_end(text, 0), None, "{text:?}");
            // Where serde_json takes a value, it is one that ends before the text does.
            if let Some(end) = serde_end(text) {
                panic!("{text:?}: serde_json took {end} bytes");
            }
        }
        // What follows a value is the caller's to check, even right after a number.
        assert_eq!(value_end("0x", 0), Some(1));
        assert_eq!(value_end("truex", 0), Some(4));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(value_end(&deep(MAX_DEPTH), 0).is_some());
        assert_eq!(value_end(&deep(MAX_DEPTH + 1), 0), None);
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(value_end(&objects(MAX_DEPTH), 0).is_some());
        assert_eq!(value_end(&objects(MAX_DEPTH + 1), 0), None);
    }

    #[test]
    fn long_strings_are_searched_whole() {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 100] {
            let plain = format!("\"{}\"", "a".repeat(n));
            assert_eq!(value_end(&plain, 0), Some(n + 2));
            for at in 0..n {
                let mut with_escape = "a".repeat(n);
                with_escape.insert_str(at, "\\\"");
                let s = format!("\"{with_escape}\"");
                assert_eq!(value_end(&s, 0), Some(s.len()), "{s}");
                let mut with_control = "a".repeat(n);
                with_control.insert(at, '\u{1f}');
                assert_eq!(value_end(&format!("\"{with_control}\""), 0), None);
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
            if let Some(end) = value_end(&text, 0).filter(|_| container) {
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
            prop_assert_eq!(value_end(&text, 0), Some(text.len()));
        }
    }
}
