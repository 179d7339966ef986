//! Field mapping for the `generic` decoder: for each Event field, a JSON pointer into the record
//! (`"/alert/severity"`) or a constant, plus a severity vocabulary, a time format, and where the
//! records sit in the body. This covers Prisma Cloud Compute's custom JSON bodies and any vendor
//! siemgate has no decoder for.
//!
//! Pointers (RFC 6901) are parsed once at config load. Looking one up walks the borrowed record
//! with serde visitors that compare keys in place, so a lookup allocates nothing.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::normalize::time::Pattern;
use crate::normalize::{Kind, Severity, Status};

/// A JSON pointer, split into reference tokens with `~1`/`~0` already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(Vec<String>);

impl Pointer {
    /// Parses `""` (the whole record) or `/a/b/0`.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer: it must start with '/'"
            ));
        };
        Ok(Pointer(
            rest.split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect(),
        ))
    }

    /// The reference tokens, unescaped.
    pub fn tokens(&self) -> &[String] {
        &self.0
    }

    /// The value at this pointer inside `raw`, if there is one.
    pub fn resolve<'a>(&self, raw: &'a RawValue) -> Option<&'a RawValue> {
        let mut at = raw;
        for token in &self.0 {
            let text = at.get();
            let mut de = serde_json::Deserializer::from_str(text);
            at = if text.starts_with('{') {
                de.deserialize_map(FindKey(token)).ok()??
            } else if text.starts_with('[') {
                let index: usize = token.parse().ok()?;
                de.deserialize_seq(FindIndex(index)).ok()??
            } else {
                return None;
            };
        }
        Some(at)
    }
}

/// Finds the value of one key in an object; the rest of the object is skipped, not kept.
struct FindKey<'k>(&'k str);

/// Tells whether a key equals the wanted one, without keeping the key.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = Option<&'de RawValue>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.0))? {
            if matches && found.is_none() {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Finds one element of an array.
struct FindIndex(usize);

impl<'de> Visitor<'de> for FindIndex {
    type Value = Option<&'de RawValue>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            if i == self.0 {
                found = Some(v);
            }
            i += 1;
        }
        Ok(found)
    }
}

/// Where an Event field comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pointer(Pointer),
    Const(String),
}

/// A field as written in the config: a pointer string, or `{ value = "..." }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldConfig {
    Pointer(String),
    Const { value: String },
}

/// How the mapped `time` is written: `time_format` = `auto`, `rfc3339`, `epoch_seconds`,
/// `epoch_millis`, or a strftime pattern (any text with a `%`, e.g. `"%b %d, %Y %Z"`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// A string is RFC 3339, RFC 2822 or `YYYY-MM-DD HH:MM:SS` (UTC); a number is epoch
    /// milliseconds above 10^11, else epoch seconds.
    #[default]
    Auto,
    Rfc3339,
    EpochSeconds,
    EpochMillis,
    Pattern(Pattern),
}

impl TimeFormat {
    /// The config word or pattern; `Err` says what is accepted.
    pub fn parse(text: &str) -> Result<TimeFormat, String> {
        Ok(match text {
            "auto" => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "epoch_seconds" => TimeFormat::EpochSeconds,
            "epoch_millis" => TimeFormat::EpochMillis,
            p if p.contains('%') => TimeFormat::Pattern(Pattern::parse(p)?),
            other => {
                return Err(format!(
                    "{other:?} is not auto, rfc3339, epoch_seconds, epoch_millis or a strftime \
                     pattern such as \"%b %d, %Y %Z\""
                ))
            }
        })
    }
}

/// `[sources.mapping]` as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Pointer to the array (or object) of records inside a body object; absent means the body
    /// is one record or an array of records.
    pub records: Option<String>,
    pub id: Option<FieldConfig>,
    pub time: Option<FieldConfig>,
    /// `auto` (the default), `rfc3339`, `epoch_seconds`, `epoch_millis`, or a strftime pattern.
    pub time_format: Option<String>,
    pub severity: Option<FieldConfig>,
    /// Vendor severity words (any case) to normalized severities, e.g. `P1 = "critical"`;
    /// checked before the common words.
    #[serde(default)]
    pub severity_map: std::collections::BTreeMap<String, Severity>,
    pub kind: Option<FieldConfig>,
    pub status: Option<FieldConfig>,
    pub title: Option<FieldConfig>,
    pub description: Option<FieldConfig>,
    pub url: Option<FieldConfig>,
    pub resource_id: Option<FieldConfig>,
    pub resource_name: Option<FieldConfig>,
    pub resource_type: Option<FieldConfig>,
    pub region: Option<FieldConfig>,
    pub account_id: Option<FieldConfig>,
    pub account_name: Option<FieldConfig>,
    pub cloud: Option<FieldConfig>,
    pub src_ip: Option<FieldConfig>,
    pub src_port: Option<FieldConfig>,
    pub domain: Option<FieldConfig>,
    pub path: Option<FieldConfig>,
    pub method: Option<FieldConfig>,
}

/// A validated mapping.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub records: Option<Pointer>,
    pub time_format: TimeFormat,
    pub severity_map: Vec<(String, Severity)>,
    pub fields: Fields,
}

/// One optional source per mappable Event field.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub id: Option<Source>,
    pub time: Option<Source>,
    pub severity: Option<Source>,
    pub kind: Option<Source>,
    pub status: Option<Source>,
    pub title: Option<Source>,
    pub description: Option<Source>,
    pub url: Option<Source>,
    pub resource_id: Option<Source>,
    pub resource_name: Option<Source>,
    pub resource_type: Option<Source>,
    pub region: Option<Source>,
    pub account_id: Option<Source>,
    pub account_name: Option<Source>,
    pub cloud: Option<Source>,
    pub src_ip: Option<Source>,
    pub src_port: Option<Source>,
    pub domain: Option<Source>,
    pub path: Option<Source>,
    pub method: Option<Source>,
}

impl Mapping {
    /// Whether any field mapped to a pointer finds a value in `record`; a mapping made only of
    /// constants matches everything.
    pub fn matches_any(&self, record: &RawValue) -> bool {
        let f = &self.fields;
        let all = [
            &f.id,
            &f.time,
            &f.severity,
            &f.kind,
            &f.status,
            &f.title,
            &f.description,
            &f.url,
            &f.resource_id,
            &f.resource_name,
            &f.resource_type,
            &f.region,
            &f.account_id,
            &f.account_name,
            &f.cloud,
            &f.src_ip,
            &f.src_port,
            &f.domain,
            &f.path,
            &f.method,
        ];
        let mut pointers = all.iter().filter_map(|s| match s {
            Some(Source::Pointer(p)) => Some(p),
            _ => None,
        });
        let mut any_pointer = false;
        let found = pointers.any(|p| {
            any_pointer = true;
            p.resolve(record).is_some_and(|v| v.get() != "null")
        });
        found || !any_pointer
    }

    /// Validates a mapping; problems come back as `(key, message)` pairs.
    pub fn build(cfg: &MappingConfig) -> Result<Mapping, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut field = |key: &str, f: &Option<FieldConfig>| -> Option<Source> {
            match f.as_ref()? {
                FieldConfig::Const { value } => Some(Source::Const(value.clone())),
                FieldConfig::Pointer(p) => match Pointer::parse(p) {
                    Ok(p) => Some(Source::Pointer(p)),
                    Err(m) => {
                        problems.push((key.to_owned(), m));
                        None
                    }
                },
            }
        };
        let fields = Fields {
            id: field("id", &cfg.id),
            time: field("time", &cfg.time),
            severity: field("severity", &cfg.severity),
            kind: field("kind", &cfg.kind),
            status: field("status", &cfg.status),
            title: field("title", &cfg.title),
            description: field("description", &cfg.description),
            url: field("url", &cfg.url),
            resource_id: field("resource_id", &cfg.resource_id),
            resource_name: field("resource_name", &cfg.resource_name),
            resource_type: field("resource_type", &cfg.resource_type),
            region: field("region", &cfg.region),
            account_id: field("account_id", &cfg.account_id),
            account_name: field("account_name", &cfg.account_name),
            cloud: field("cloud", &cfg.cloud),
            src_ip: field("src_ip", &cfg.src_ip),
            src_port: field("src_port", &cfg.src_port),
            domain: field("domain", &cfg.domain),
            path: field("path", &cfg.path),
            method: field("method", &cfg.method),
        };
        let mut check_const =
            |key: &str, src: &Option<Source>, ok: fn(&str) -> bool, expected: &str| {
                if let Some(Source::Const(v)) = src {
                    if !ok(v) {
                        problems.push((key.to_owned(), format!("{v:?} is not one of {expected}")));
                    }
                }
            };
        check_const(
            "kind",
            &fields.kind,
            |v| Kind::from_word(v).is_some(),
            "alert, vulnerability, attack, system, test",
        );
        check_const(
            "status",
            &fields.status,
            |v| Status::from_word(v).is_some(),
            "new, open, resolved, dismissed, snoozed",
        );
        check_const(
            "severity",
            &fields.severity,
            |v| Severity::from_word(v).is_some(),
            "informational, low, medium, high, critical",
        );
        let time_format = match cfg.time_format.as_deref().map(TimeFormat::parse) {
            None => TimeFormat::Auto,
            Some(Ok(f)) => f,
            Some(Err(m)) => {
                problems.push(("time_format".to_owned(), m));
                TimeFormat::Auto
            }
        };
        let records = match cfg.records.as_deref().map(Pointer::parse) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(m)) => {
                problems.push(("records".to_owned(), m));
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Mapping {
            records,
            time_format,
            severity_map: cfg
                .severity_map
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            fields,
        })
    }

    /// Maps a vendor severity word: the configured vocabulary first, then the common words.
    pub fn severity(&self, word: &str) -> Option<Severity> {
        let word = word.trim();
        self.severity_map
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|&(_, s)| s)
            .or_else(|| Severity::from_word(word))
    }
}

/// A mapped value: borrowed from the record, or the configured constant (as a JSON string).
pub enum Value<'a> {
    Raw(&'a RawValue),
    Const(&'a str),
}

impl<'a> Value<'a> {
    pub fn of(source: Option<&'a Source>, record: &'a RawValue) -> Option<Value<'a>> {
        match source? {
            Source::Pointer(p) => p.resolve(record).map(Value::Raw),
            Source::Const(c) => Some(Value::Const(c)),
        }
    }

    /// The value as text: a JSON string, or the text of a number.
    pub fn text(&self) -> Option<Cow<'a, str>> {
        match self {
            Value::Const(c) => Some(Cow::Borrowed(c)),
            Value::Raw(r) => {
                let t = r.get();
                if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                    Some(Cow::Borrowed(t))
                } else {
                    super::json::string(r)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn pointers_resolve_keys_indexes_and_escapes() {
        let doc = raw(r#"{"a":{"b":[10,{"c":"x"}]},"k/e~y":1,"esc\"aped":2,"a2":3}"#);
        let get = |p: &str| {
            Pointer::parse(p)
                .unwrap()
                .resolve(doc)
                .map(|r| r.get().to_owned())
        };
        assert_eq!(get("/a/b/1/c").as_deref(), Some(r#""x""#));
        assert_eq!(get("/a/b/0").as_deref(), Some("10"));
        assert_eq!(get("/k~1e~0y").as_deref(), Some("1"));
        assert_eq!(get("/esc\"aped").as_deref(), Some("2"));
        assert_eq!(get("/a2").as_deref(), Some("3"));
        assert_eq!(get("/a/b/2"), None);
        assert_eq!(get("/a/b/x"), None);
        assert_eq!(get("/nope"), None);
        assert_eq!(get("/a/b/0/deeper"), None);
        assert_eq!(get("").as_deref(), Some(doc.get()));
        assert!(Pointer::parse("a/b").is_err());
    }

    #[test]
    fn build_reports_bad_pointers_and_constants() {
        let cfg: MappingConfig = toml::from_str(
            r#"
            records = "alerts"
            title = "/rule"
            kind = { value = "weird" }
            status = { value = "open" }
            severity_map = { P1 = "critical" }
            time_format = "%Y-%m-%d %Q"
            "#,
        )
        .unwrap();
        let problems = Mapping::build(&cfg).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["kind", "time_format", "records"], "{problems:?}");
        assert!(problems[1].1.contains("%Q"), "{problems:?}");
        for (text, ok) in [
            ("auto", true),
            ("epoch_millis", true),
            ("%b %d, %Y %Z", true),
            ("%H:%M", false),
            ("iso", false),
        ] {
            assert_eq!(TimeFormat::parse(text).is_ok(), ok, "{text}");
        }
        let ok: MappingConfig = toml::from_str("severity_map = { P1 = \"critical\" }").unwrap();
        let m = Mapping::build(&ok).unwrap();
        assert_eq!(m.severity("p1"), Some(Severity::Critical));
        assert_eq!(m.severity("HIGH"), Some(Severity::High));
        assert_eq!(m.severity("P9"), None);
    }
}
