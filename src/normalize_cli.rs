//! `siemgate normalize`: turns one payload into the events a source would make of it, without
//! a server, for checking a vendor's sample or a generic mapping before pointing the vendor at
//! the gateway.
//!
//! The body goes through what the hooks listener does after authentication: the body size cap,
//! the UTF-8 and depth checks, the vendor's decoder with the source's mapping and `redact`
//! pointers (the vendor's credential fields are always redacted), and the events-per-request
//! limit; each event is encoded by the file sink's NDJSON encoder, so the output is exactly the
//! lines a file sink would write. A body the gateway would refuse prints nothing, as the gateway
//! would forward nothing.

use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

use bytes::BytesMut;

use crate::config::{
    self, ConfigError, ConfigIssue, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EVENTS_PER_REQUEST,
};
use crate::normalize::ocsf::OcsfVersion;
use crate::normalize::Timestamp;
use crate::sinks::{Encoder, Ndjson, OcsfNdjson};
use crate::vendors::mapping::{Mapping, Pointer};
use crate::vendors::{json, redact, Context, DecodeError, Vendor};

/// The source id events carry when `--source` is not given.
pub const DEFAULT_SOURCE: &str = "normalize";

/// Exit code of a usage error: an unknown vendor, a bad source id, mapping file or pointer.
/// (clap exits with the same code for malformed arguments.)
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a body the gateway would refuse (400 or 413): too large, not UTF-8, too deep,
/// malformed JSON, the wrong shape, or too many events.
pub const EXIT_PAYLOAD: u8 = 3;
/// Exit code when standard input cannot be read or standard output cannot be written.
pub const EXIT_IO: u8 = 1;

/// What `siemgate normalize` was asked to do, as given on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// A vendor name as in a source's `vendor = "..."`.
    pub vendor: String,
    /// A TOML file holding the keys of a `[sources.mapping]` table (generic only).
    pub mapping: Option<PathBuf>,
    /// The source id the events carry.
    pub source: String,
    /// JSON pointers redacted besides the vendor's credential fields, as a source's `redact`.
    pub redact: Vec<String>,
    /// `siemgate` (the Event, as the file sink writes it) or `ocsf`, as a sink's `encoding`.
    pub encoding: String,
    /// The OCSF version of `--encoding ocsf`, as a sink's `ocsf_version`; `None`: the default.
    pub ocsf_version: Option<String>,
}

/// The limits the hooks listener applies to one request, at their defaults: a sample that
/// passes here passes a gateway running with the default `[server.limits]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `server.limits.max_body_bytes`: larger bodies are refused (413) before decoding.
    pub max_body_bytes: u64,
    /// `server.limits.max_events_per_request`: a body with more events is refused (413).
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_events: DEFAULT_MAX_EVENTS_PER_REQUEST,
        }
    }
}

/// A source built from the options: what the decoder needs.
#[derive(Debug)]
pub struct Prepared {
    vendor: Vendor,
    source: String,
    mapping: Option<Mapping>,
    redact: Vec<Pointer>,
    /// `Some` for `--encoding ocsf`: each event as an OCSF class object of this version.
    ocsf: Option<OcsfVersion>,
}

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("unknown vendor {name:?}: expected one of {}", Vendor::names().collect::<Vec<_>>().join(", "))]
    UnknownVendor { name: String },
    #[error("--source {id:?} is not a valid source id: {rule}")]
    BadSource { id: String, rule: &'static str },
    #[error(
        "--mapping: only the generic vendor takes a mapping; vendor {vendor} has its own decoder"
    )]
    MappingNotGeneric { vendor: &'static str },
    #[error("--mapping {}: {}", .path.display(), mapping_problems(.error))]
    Mapping { path: PathBuf, error: ConfigError },
    #[error("--redact {pointer:?}: {message}")]
    BadRedact { pointer: String, message: String },
    #[error("--encoding {0:?}: must be siemgate or ocsf")]
    BadEncoding(String),
    #[error("--ocsf-version {0:?}: must be 1.1.0 or 1.8.0, with --encoding ocsf")]
    BadOcsfVersion(String),
    #[error("cannot read the body from standard input: {0}")]
    ReadInput(#[source] std::io::Error),
    #[error("body larger than max_body_bytes ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("more than max_events_per_request ({limit}) events in one body")]
    TooManyEvents { limit: usize },
    #[error("{0}")]
    Encode(#[from] crate::sinks::EncodeError),
    #[error("cannot write the events: {0}")]
    WriteOutput(#[source] std::io::Error),
}

fn mapping_problems(error: &ConfigError) -> String {
    match error {
        // `ConfigError::Invalid` says "invalid config"; the file is a mapping.
        ConfigError::Invalid(issues) => issues
            .iter()
            .map(ConfigIssue::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        ConfigError::Parse {
            key,
            line,
            column,
            message,
            ..
        } if key.is_empty() => format!("line {line}, column {column}: {message}"),
        ConfigError::Parse {
            key,
            line,
            column,
            message,
            ..
        } => format!("line {line}, column {column}: {key}: {message}"),
        ConfigError::Read { source, .. } => format!("cannot read: {source}"),
    }
}

impl NormalizeError {
    /// The process exit code for this error (documented in `siemgate normalize --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            NormalizeError::UnknownVendor { .. }
            | NormalizeError::BadSource { .. }
            | NormalizeError::MappingNotGeneric { .. }
            | NormalizeError::Mapping { .. }
            | NormalizeError::BadRedact { .. }
            | NormalizeError::BadEncoding(_)
            | NormalizeError::BadOcsfVersion(_) => EXIT_USAGE,
            NormalizeError::TooLarge { .. }
            | NormalizeError::Decode(_)
            | NormalizeError::TooManyEvents { .. } => EXIT_PAYLOAD,
            NormalizeError::ReadInput(_)
            | NormalizeError::Encode(_)
            | NormalizeError::WriteOutput(_) => EXIT_IO,
        }
    }
}

/// Checks the options as `check` checks a source: vendor, source id, mapping, pointers.
pub fn prepare(options: &Options) -> Result<Prepared, NormalizeError> {
    let vendor =
        Vendor::from_name(&options.vendor).ok_or_else(|| NormalizeError::UnknownVendor {
            name: options.vendor.clone(),
        })?;
    config::check_source_id(&options.source).map_err(|rule| NormalizeError::BadSource {
        id: options.source.clone(),
        rule,
    })?;
    let mapping = match &options.mapping {
        None => None,
        Some(_) if vendor != Vendor::Generic => {
            return Err(NormalizeError::MappingNotGeneric {
                vendor: vendor.as_str(),
            })
        }
        Some(path) => {
            Some(
                config::load_mapping(path).map_err(|error| NormalizeError::Mapping {
                    path: path.clone(),
                    error,
                })?,
            )
        }
    };
    let redact = options
        .redact
        .iter()
        .map(|text| {
            redact::parse_pointer(text).map_err(|message| NormalizeError::BadRedact {
                pointer: text.clone(),
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ocsf = match (options.encoding.as_str(), &options.ocsf_version) {
        ("siemgate", None) => None,
        ("siemgate", Some(v)) => return Err(NormalizeError::BadOcsfVersion(v.clone())),
        ("ocsf", None) => Some(OcsfVersion::default()),
        ("ocsf", Some(v)) => Some(
            OcsfVersion::from_name(v).ok_or_else(|| NormalizeError::BadOcsfVersion(v.clone()))?,
        ),
        (other, _) => return Err(NormalizeError::BadEncoding(other.to_owned())),
    };
    Ok(Prepared {
        vendor,
        source: options.source.clone(),
        mapping,
        redact,
        ocsf,
    })
}

/// Reads the body from `input` (at most `limits.max_body_bytes`), decodes it, and writes one
/// NDJSON line per event to `output`; returns how many. Nothing is written unless the whole
/// body decodes, as the gateway enqueues all of a body's events or none.
pub fn run(
    prepared: &Prepared,
    limits: Limits,
    input: impl Read,
    mut output: impl Write,
    received_at: Timestamp,
) -> Result<usize, NormalizeError> {
    let mut body = Vec::new();
    input
        .take(limits.max_body_bytes.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(NormalizeError::ReadInput)?;
    if body.len() as u64 > limits.max_body_bytes {
        return Err(NormalizeError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let lines = normalize_body(prepared, limits, &body, received_at)?;
    output
        .write_all(&lines)
        .and_then(|()| output.flush())
        .map_err(NormalizeError::WriteOutput)?;
    Ok(lines.iter().filter(|&&b| b == b'\n').count())
}

/// The NDJSON lines of every event of `body`, as a file sink would write them (with its
/// `encoding`).
pub fn normalize_body(
    prepared: &Prepared,
    limits: Limits,
    body: &[u8],
    received_at: Timestamp,
) -> Result<BytesMut, NormalizeError> {
    // The body's limits are checked by the decoder (`Vendor::decode_until`).
    let text = json::utf8(body)?;
    let ctx = Context {
        source: &prepared.source,
        received_at,
    };
    let mut out = BytesMut::with_capacity(body.len() * 2 + 512);
    let mut seen = 0usize;
    let mut failed = None;
    prepared.vendor.decode_until(
        text,
        &ctx,
        prepared.mapping.as_ref(),
        &prepared.redact,
        |event| {
            seen += 1;
            if seen > limits.max_events {
                failed = Some(NormalizeError::TooManyEvents {
                    limit: limits.max_events,
                });
                return ControlFlow::Break(());
            }
            let encoded = match prepared.ocsf {
                None => Ndjson.encode(&event, &mut out),
                Some(version) => OcsfNdjson(version).encode(&event, &mut out),
            };
            match encoded {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e.into());
                    ControlFlow::Break(())
                }
            }
        },
    )?;
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn options(vendor: &str) -> Options {
        Options {
            vendor: vendor.to_owned(),
            mapping: None,
            source: DEFAULT_SOURCE.to_owned(),
            redact: Vec::new(),
            encoding: "siemgate".to_owned(),
            ocsf_version: None,
        }
    }

    fn lines(
        prepared: &Prepared,
        limits: Limits,
        body: &str,
    ) -> Result<Vec<serde_json::Value>, NormalizeError> {
        let out = normalize_body(prepared, limits, body.as_bytes(), Timestamp(0))?;
        Ok(std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect())
    }

    #[test]
    fn one_line_per_event_with_the_source_id_and_redaction() {
        let mut o = options("generic");
        o.source = "sample".to_owned();
        o.redact = vec!["/token".to_owned()];
        let p = prepare(&o).unwrap();
        let got = lines(
            &p,
            Limits::default(),
            r#"[{"id":"a","severity":"high","token":"t0p"},{"id":"b"}]"#,
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["source"], "sample");
        assert_eq!(got[0]["severity"], "high");
        assert_eq!(got[0]["raw"]["token"], "[redacted]");
        assert_eq!(got[1]["id"], "b");
    }

    #[test]
    fn ocsf_encoding_prints_ocsf_class_objects_of_the_version_asked() {
        let mut o = options("generic");
        o.encoding = "ocsf".to_owned();
        let body = r#"[{"id":"a","severity":"high","title":"t"}]"#;
        let got = lines(&prepare(&o).unwrap(), Limits::default(), body).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["class_uid"], 2004);
        assert_eq!(got[0]["metadata"]["version"], "1.1.0");
        assert_eq!(got[0]["metadata"]["uid"], "a");
        assert_eq!(got[0]["severity_id"], 4);
        o.ocsf_version = Some("1.8.0".to_owned());
        let got = lines(&prepare(&o).unwrap(), Limits::default(), body).unwrap();
        assert_eq!(got[0]["metadata"]["version"], "1.8.0");
        for (encoding, version) in [
            ("ocsf", Some("2.0")),
            ("siemgate", Some("1.1.0")),
            ("cef", None),
        ] {
            let mut o = options("generic");
            o.encoding = encoding.to_owned();
            o.ocsf_version = version.map(str::to_owned);
            let e = prepare(&o).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE, "{e}");
            assert!(e.to_string().starts_with("--"), "{e}");
        }
    }

    #[test]
    fn bad_options_are_usage_errors() {
        let e = prepare(&options("nosuch")).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert!(e.to_string().contains("prisma_cloud"), "{e}");
        let mut o = options("generic");
        o.source = "../x".to_owned();
        assert_eq!(prepare(&o).unwrap_err().exit_code(), EXIT_USAGE);
        let mut o = options("generic");
        o.redact = vec!["token".to_owned()];
        let e = prepare(&o).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert!(e.to_string().starts_with("--redact \"token\""), "{e}");
        let mut o = options("wallarm");
        o.mapping = Some(PathBuf::from("unused.toml"));
        assert!(matches!(
            prepare(&o),
            Err(NormalizeError::MappingNotGeneric { vendor: "wallarm" })
        ));
    }

    #[test]
    fn refused_bodies_print_nothing_and_say_where() {
        let p = prepare(&options("generic")).unwrap();
        let small = Limits {
            max_body_bytes: 16,
            max_events: 2,
        };
        let mut out = Vec::new();
        let e = run(
            &p,
            small,
            &b"[{\"id\":\"0123456789\"}]"[..],
            &mut out,
            Timestamp(0),
        )
        .unwrap_err();
        assert!(matches!(e, NormalizeError::TooLarge { limit: 16 }), "{e}");
        assert_eq!(e.exit_code(), EXIT_PAYLOAD);
        let e = run(&p, small, &b"[{},{},{}]"[..], &mut out, Timestamp(0)).unwrap_err();
        assert!(
            matches!(e, NormalizeError::TooManyEvents { limit: 2 }),
            "{e}"
        );
        let e = run(&p, small, &b"[{},\xff]"[..], &mut out, Timestamp(0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "body is not valid UTF-8: invalid byte at offset 4"
        );
        let e = run(&p, small, &b"[{}, {\"a\" 1}]"[..], &mut out, Timestamp(0)).unwrap_err();
        assert!(
            e.to_string().starts_with("malformed JSON at byte 10"),
            "{e}"
        );
        assert!(out.is_empty(), "a refused body printed {out:?}");
        assert_eq!(
            run(&p, small, &b"[{},{}]"[..], &mut out, Timestamp(0)).unwrap(),
            2
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
    }
}
