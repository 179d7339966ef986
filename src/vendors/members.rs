//! Reads a decoder's borrowed field struct from one JSON object without serde_json's parse:
//! from an object already split off the body ([`read`]), or straight from the body's text
//! ([`read_unvalidated`], the one-pass reading of `json::for_each_read`).
//!
//! serde_json reads every member's value as if it were wanted, only for most of them to be
//! handed over as raw text (the decoders' fields are `Option<&RawValue>`, read later by
//! [`super::fields`]) or ignored. Here a member's value is passed over with
//! [`super::validate::value_end`], which checks it against JSON's grammar on the way and finds
//! exactly the span serde_json would have borrowed; the commas and colons between members are
//! checked here. Text that is not JSON is never handed out: the reading fails and the caller
//! leaves the object to serde_json, which reports why.
//!
//! [`read`] is a serde `Deserializer`, so the decoders' `#[derive(Deserialize)]` structs keep
//! their meaning: renamed and unknown fields, a key given twice (an error, as with serde_json),
//! nested structs, `null` as `None`. Member values are handed out as `&RawValue` the way
//! serde_json itself hands them out to a deserializer that is not its own; any other type is
//! read from the value's text by serde_json. That hand-over is named by serde_json rather than
//! promised by its API: were the name to change, [`read`] and [`validated`] would take nothing
//! and serde_json would read every object as before, more slowly (the property test below
//! would fail first).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::json::MAX_DEPTH;

/// serde_json's name for [`RawValue`] in serde's data model. A `&RawValue` deserializes by
/// asking for a newtype struct of this name and taking a one-member map: this name as the key,
/// the value's JSON text, borrowed, as the value (serde_json `raw.rs`).
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// Reads `T` from the object `raw`; `None` where `T` does not take it (a key given twice, a
/// member whose value is not of `T`'s type for it), which [`super::json::parse_object`] then
/// leaves to serde_json to report.
pub fn read<'a, T: de::Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    with_value(raw, |value| T::deserialize(value))
}

/// Reads `T` from the object at the start of `text`, which nothing has validated yet: every
/// byte of the object is checked on the way, as [`super::validate`] checks it, so that text
/// serde_json would refuse, or that is beyond the body's limits with the object inside `outer`
/// containers, is never read. With `T`, the object's length. `None` where the text does not
/// start with one well-formed object within those limits, or where `T` does not take it.
pub fn read_unvalidated<'a, T: de::Deserialize<'a>>(
    text: &'a str,
    outer: usize,
) -> Option<(T, usize)> {
    let cursor = Cursor {
        text,
        end: Cell::new(0),
    };
    if cursor.byte(0) != Some(b'{') {
        return None;
    }
    let fields = T::deserialize(Value {
        start: 0,
        cursor: &cursor,
        depth: outer,
    })
    .ok()?;
    Some((fields, cursor.end.get()))
}

/// Hands the members of the object `raw` (one serde_json has validated) to `visitor`, keys
/// borrowed unless escaped and values skipped over as in [`read`]; `None` where the visitor
/// refuses them.
pub fn visit_map<'a, V: Visitor<'a>>(raw: &'a RawValue, visitor: V) -> Option<V::Value> {
    with_value(raw, |value| value.deserialize_map(visitor))
}

/// Hands the elements of the array `raw` (one serde_json has validated) to `visitor`, each
/// read as in [`read`]; `None` where the visitor refuses them.
pub fn visit_seq<'a, V: Visitor<'a>>(raw: &'a RawValue, visitor: V) -> Option<V::Value> {
    with_value(raw, |value| value.deserialize_seq(visitor))
}

/// Runs `read` on `raw` as a [`Value`] deserializer.
fn with_value<'a, R>(
    raw: &'a RawValue,
    read: impl FnOnce(Value<'a, '_>) -> Result<R, Error>,
) -> Option<R> {
    let cursor = Cursor {
        text: raw.get(),
        end: Cell::new(0),
    };
    read(Value {
        start: 0,
        cursor: &cursor,
        depth: 0,
    })
    .ok()
}

/// Why [`read`] failed, for serde's `Error` trait; only the failing matters.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// The object being read and where reading it has got to.
struct Cursor<'a> {
    /// The whole object; every offset is within it.
    text: &'a str,
    /// One past the last byte of the value read last. A value's end is only looked for when
    /// the value is taken whole (raw or ignored); a nested object read member by member ends
    /// where its members end, so its bytes are passed over once, not once per level.
    end: Cell<usize>,
}

impl Cursor<'_> {
    fn byte(&self, i: usize) -> Option<u8> {
        self.text.as_bytes().get(i).copied()
    }

    /// The first byte at or after `i` that is not whitespace.
    fn skip_space(&self, i: usize) -> usize {
        super::validate::space(self.text.as_bytes(), i)
    }

    /// Where the value starting at `start`, inside `outer` containers, ends (one past its last
    /// byte), the value being checked on the way ([`super::validate`]): text that is not JSON,
    /// or beyond the body's limits, is never handed out.
    fn value_end(&self, start: usize, outer: usize) -> Result<usize, Error> {
        super::validate::value_end(self.text, start, outer).ok_or_else(unvalidated)
    }
}

/// The error for text serde_json would not have accepted, which [`read`] is never given.
fn unvalidated() -> Error {
    Error("invalid JSON object".to_owned())
}

/// One JSON value, starting at `start` (never at whitespace) in the cursor's object.
struct Value<'a, 'c> {
    start: usize,
    cursor: &'c Cursor<'a>,
    /// How many containers the value is inside, counted from the body's top level.
    depth: usize,
}

impl<'a> Value<'a, '_> {
    /// The value's whole text; the cursor moves past it.
    fn text(&self) -> Result<&'a str, Error> {
        let end = self.cursor.value_end(self.start, self.depth)?;
        self.cursor.end.set(end);
        self.cursor
            .text
            .get(self.start..end)
            .ok_or_else(unvalidated)
    }

    fn is_object(&self) -> bool {
        self.cursor.byte(self.start) == Some(b'{')
    }

    /// Hands the value to serde_json, for any type that is neither raw text nor a struct.
    fn by_serde_json<V, F>(self, read: F) -> Result<V, Error>
    where
        F: FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
        ) -> serde_json::Result<V>,
    {
        let text = self.text()?;
        read(&mut serde_json::Deserializer::from_str(text)).map_err(|e| Error(e.to_string()))
    }

    /// Reads the value, an object, member by member.
    fn members<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.items(b'}', |items| visitor.visit_map(items))
    }

    /// Reads the value, an array, element by element.
    fn elements<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.items(b']', |items| visitor.visit_seq(items))
    }

    /// Hands the value's members or elements, up to `close`, to `visit`. A visitor that stops
    /// before the last one fails the reading, as it does with serde_json.
    fn items<R>(
        self,
        close: u8,
        visit: impl FnOnce(&mut Items<'a, '_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(unvalidated());
        }
        let mut items = Items {
            pos: self.start + 1,
            cursor: self.cursor,
            close,
            done: false,
            first: true,
            depth: self.depth + 1,
        };
        let read = visit(&mut items)?;
        if items.done {
            Ok(read)
        } else {
            Err(Error("value not read to its end".to_owned()))
        }
    }
}

macro_rules! by_serde_json {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
                self.by_serde_json(|de| de.$method(visitor))
            }
        )*
    };
}

impl<'a> Deserializer<'a> for Value<'a, '_> {
    type Error = Error;

    by_serde_json! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_identifier
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.cursor.byte(self.start) == Some(b'[') {
            self.elements(visitor)
        } else {
            self.by_serde_json(|de| de.deserialize_seq(visitor))
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let rest = self.cursor.text.get(self.start..).unwrap_or_default();
        if rest.starts_with("null") {
            self.cursor.end.set(self.start + 4);
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.by_serde_json(|de| de.deserialize_unit_struct(name, visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == RAW_VALUE {
            visitor.visit_map(RawEntry {
                text: Some(self.text()?),
            })
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.by_serde_json(|de| de.deserialize_tuple(len, visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.by_serde_json(|de| de.deserialize_tuple_struct(name, len, visitor))
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_object() {
            self.members(visitor)
        } else {
            self.by_serde_json(|de| de.deserialize_map(visitor))
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.is_object() {
            self.members(visitor)
        } else {
            self.by_serde_json(|de| de.deserialize_struct(name, fields, visitor))
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.by_serde_json(|de| de.deserialize_enum(name, variants, visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.text()?;
        visitor.visit_unit()
    }
}

/// The members of an object or the elements of an array, from `pos` (just after its `{` or
/// `[`, or after a member or element) on; `done` once its `close` is reached.
struct Items<'a, 'c> {
    pos: usize,
    cursor: &'c Cursor<'a>,
    close: u8,
    done: bool,
    /// No member or element read yet: the next is not preceded by a comma.
    first: bool,
    /// How many containers the items are inside, this one included.
    depth: usize,
}

impl Items<'_, '_> {
    /// Moves to the next member or element: `false` at the end, where the cursor's end is
    /// set past `close`.
    fn advance(&mut self) -> Result<bool, Error> {
        let c = self.cursor;
        self.pos = c.skip_space(self.pos);
        let first = std::mem::replace(&mut self.first, false);
        match c.byte(self.pos) {
            Some(b) if b == self.close => {
                self.pos += 1;
                c.end.set(self.pos);
                self.done = true;
                return Ok(false);
            }
            // A comma between two items only: not before the first, nor before the close
            // (the item after it must start a value, which `[1,]` and `{"a":1,}` do not).
            Some(b',') if !first => self.pos = c.skip_space(self.pos + 1),
            Some(_) if first => {}
            _ => return Err(unvalidated()),
        }
        Ok(true)
    }
}

impl<'a> MapAccess<'a> for Items<'a, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if !self.advance()? {
            return Ok(None);
        }
        let c = self.cursor;
        if c.byte(self.pos) != Some(b'"') {
            return Err(unvalidated());
        }
        let (quote, escaped) = super::validate::string_end_escaped(c.text.as_bytes(), self.pos + 1)
            .ok_or_else(unvalidated)?;
        let key = c.text.get(self.pos + 1..quote).ok_or_else(unvalidated)?;
        let start = self.pos;
        self.pos = c.skip_space(quote + 1);
        seed.deserialize(Key {
            key,
            escaped,
            start,
            cursor: c,
            depth: self.depth,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let c = self.cursor;
        if c.byte(self.pos) != Some(b':') {
            return Err(unvalidated());
        }
        let start = c.skip_space(self.pos + 1);
        let value = seed.deserialize(Value {
            start,
            cursor: c,
            depth: self.depth,
        })?;
        self.pos = c.end.get();
        Ok(value)
    }
}

impl<'a> SeqAccess<'a> for Items<'a, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if !self.advance()? {
            return Ok(None);
        }
        let value = seed.deserialize(Value {
            start: self.pos,
            cursor: self.cursor,
            depth: self.depth,
        })?;
        self.pos = self.cursor.end.get();
        Ok(Some(value))
    }
}

/// A member's key, between its quotes: borrowed when it has no escapes.
struct Key<'a, 'c> {
    key: &'a str,
    /// Whether the key holds an escape, which serde_json then decodes.
    escaped: bool,
    start: usize,
    cursor: &'c Cursor<'a>,
    depth: usize,
}

impl<'a> Deserializer<'a> for Key<'a, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if !self.escaped {
            return visitor.visit_borrowed_str(self.key);
        }
        Value {
            start: self.start,
            cursor: self.cursor,
            depth: self.depth,
        }
        .by_serde_json(|de| de.deserialize_string(visitor))
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The one-member map a `&RawValue` is read from (see [`RAW_VALUE`]).
struct RawEntry<'a> {
    text: Option<&'a str>,
}

impl<'a> MapAccess<'a> for RawEntry<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.text.is_none() {
            return Ok(None);
        }
        seed.deserialize(de::value::BorrowedStrDeserializer::new(RAW_VALUE))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let text = self.text.take().ok_or_else(unvalidated)?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(text))
    }
}

/// `text` as a borrowed [`RawValue`]. Only for text serde_json has accepted as one JSON value
/// with no whitespace around it (such as a value it has just parsed from the body), or that
/// [`super::validate::value_end`] has (it accepts nothing serde_json refuses); anything else
/// would break what `RawValue` promises its readers.
pub fn validated(text: &str) -> Option<&RawValue> {
    struct Validated<'a>(&'a str);

    impl<'a> Deserializer<'a> for Validated<'a> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'a>>(self, _: V) -> Result<V::Value, Error> {
            Err(unvalidated())
        }

        fn deserialize_newtype_struct<V: Visitor<'a>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            if name != RAW_VALUE {
                return Err(unvalidated());
            }
            visitor.visit_map(RawEntry { text: Some(self.0) })
        }

        serde::forward_to_deserialize_any! {
            <W: Visitor<'a>>
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    <&RawValue as de::Deserialize>::deserialize(Validated(text)).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    /// Raw, typed, nested and renamed fields, as the decoders' structs have them.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe<'a> {
        #[serde(borrow)]
        a: Option<&'a RawValue>,
        #[serde(borrow, rename = "b\"")]
        b: Option<&'a RawValue>,
        #[serde(borrow)]
        n: Option<Box<Probe<'a>>>,
        c: Option<i64>,
        #[serde(borrow)]
        s: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        list: Option<Vec<&'a RawValue>>,
        #[serde(borrow)]
        items: Option<Vec<Probe<'a>>>,
        words: Option<Vec<String>>,
    }

    /// What a [`Probe`] read: every field as text, for comparing two readings.
    fn seen(p: &Probe<'_>) -> String {
        format!(
            "a={:?} b={:?} c={:?} s={:?} list={:?} words={:?} items=[{}] n=({})",
            p.a.map(RawValue::get),
            p.b.map(RawValue::get),
            p.c,
            p.s,
            p.list
                .as_ref()
                .map(|l| l.iter().map(|r| r.get()).collect::<Vec<_>>()),
            p.words,
            p.items
                .as_ref()
                .map(|l| l.iter().map(seen).collect::<Vec<_>>().join("; "))
                .unwrap_or_default(),
            p.n.as_deref().map(seen).unwrap_or_default(),
        )
    }

    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", " ", "\n    ", "\t", "\r\n"])
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "\"a\"",
            "\"b\\\"\"",
            "\"n\"",
            "\"c\"",
            "\"s\"",
            "\"list\"",
            "\"items\"",
            "\"words\"",
            "\"other\"",
            "\"\\u0061\"",
            "\"a \"",
            "\"\"",
            "\"}\"",
        ])
    }

    /// Valid JSON values: scalars of every kind (strings with escapes and brackets inside),
    /// arrays and objects with the [`Probe`] keys, given twice at times, in any spacing.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec![
            "null",
            "true",
            "false",
            "0",
            "12",
            "-1.5e3",
            "9007199254740993",
            "\"x\"",
            "\"a\\\"b\"",
            "\"\\u00e9\\\\\"",
            "\"}]{[,:\"",
            "\"\"",
            "\"caf\u{e9}\"",
        ])
        .prop_map(str::to_owned);
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec((space(), inner.clone(), space()), 0..4).prop_map(|v| {
                    let items: Vec<String> = v
                        .into_iter()
                        .map(|(a, x, b)| format!("{a}{x}{b}"))
                        .collect();
                    format!("[{}]", items.join(","))
                }),
                object(inner),
            ]
        })
    }

    fn object(inner: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        prop::collection::vec((space(), key(), space(), space(), inner, space()), 0..6).prop_map(
            |v| {
                let members: Vec<String> = v
                    .into_iter()
                    .map(|(a, k, b, c, x, d)| format!("{a}{k}{b}:{c}{x}{d}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        /// On every object serde_json accepts, the reader takes the same fields with the same
        /// text, and fails exactly where serde_json fails (a key twice, a value of the wrong
        /// type).
        #[test]
        fn reads_what_serde_json_reads(text in object(value())) {
            let raw: &RawValue = serde_json::from_str(&text).unwrap();
            let ours = read::<Probe<'_>>(raw);
            let theirs = serde_json::from_str::<Probe<'_>>(&text).ok();
            match (&ours, &theirs) {
                (Some(o), Some(t)) => prop_assert_eq!(seen(o), seen(t)),
                (None, None) => {}
                _ => prop_assert!(false, "{text}: ours {:?}, serde_json {:?}", ours.as_ref().map(seen), theirs.as_ref().map(seen)),
            }
            // Read without serde_json's check first: the same, and the object's whole length.
            let unvalidated = read_unvalidated::<Probe<'_>>(&text, 0);
            prop_assert_eq!(unvalidated.as_ref().map(|(p, _)| seen(p)), ours.as_ref().map(seen));
            if let Some((_, end)) = unvalidated {
                prop_assert_eq!(end, text.len());
            }
        }

        /// On objects spliced into text that may not be JSON, what the reader takes without
        /// serde_json's check first is always something serde_json takes, with the same fields.
        #[test]
        fn reads_nothing_serde_json_refuses(
            (text, at, cut, splice) in (
                object(value()),
                any::<prop::sample::Index>(),
                0..4usize,
                prop::sample::select(vec![
                    "", ",", ":", "\"", "}", "]", "{", "[", " ", "\\", "\u{1}", "1", "x", "null",
                    ",,", "\"k\":", "\"\\q\"", "01", "-", "1.", "tru", "\t",
                ]),
            )
        ) {
            let mut text = text;
            let mut from = at.index(text.len() + 1);
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            let mut to = (from + cut).min(text.len());
            while !text.is_char_boundary(to) {
                to += 1;
            }
            text.replace_range(from..to, splice);
            if let Some((ours, end)) = read_unvalidated::<Probe<'_>>(&text, 0) {
                let object = &text[..end];
                let theirs = serde_json::from_str::<Probe<'_>>(object);
                prop_assert!(theirs.is_ok(), "{text:?}: read {object:?}, serde_json: {theirs:?}", theirs = theirs.as_ref().err());
                if let Ok(theirs) = theirs {
                    prop_assert_eq!(seen(&ours), seen(&theirs));
                }
                prop_assert!(serde_json::from_str::<&RawValue>(object).is_ok());
            }
        }
    }
}
