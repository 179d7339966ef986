//! `type = "syslog"`: RFC 5424 or 3164 messages with LEEF, CEF or JSON bodies over UDP, TCP
//! or TLS (QRadar, ArcSight, rsyslog, syslog-ng). Its keys, its runtime settings and their
//! validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::{ConfigDuration, Issues};
use super::{
    build_client_tls, default_connect_timeout, positive, system_hostname, BatchConfig,
    ClientTlsConfig, EventEncoding, QueueConfig, SinkCommon, SinkFilterConfig, SinkKind,
    SinkKindConfig,
};
use crate::tls::ClientTls;

/// Syslog: QRadar's default maximum TCP syslog payload.
pub const DEFAULT_SYSLOG_MAX_MESSAGE_BYTES: usize = 4096;
/// RFC 5424 §6.1: every receiver must accept 480 octets.
pub const MIN_SYSLOG_MESSAGE_BYTES: usize = 480;
/// Larger than any receiver we know accepts (QRadar: 32767) and under a UDP datagram's limit.
pub const MAX_SYSLOG_MESSAGE_BYTES: usize = 65_000;
/// Syslog facility 13, "log audit": security events meant for an audit trail.
pub const DEFAULT_SYSLOG_FACILITY: u8 = 13;
/// IANA's private enterprise number reserved for documentation (RFC 5612), used in the
/// structured-data id `siemgate@32473` until an operator sets their own.
pub const DEFAULT_ENTERPRISE_NUMBER: u32 = 32473;
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    pub id: String,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf` (one OCSF
    /// class object, valid against OCSF 1.1.0 and 1.8.0).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`, "1.1.0"
    /// (default; what Amazon Security Lake validates against) or "1.8.0".
    pub ocsf_version: Option<String>,
    /// `host:port` of the receiver.
    pub address: String,
    #[serde(default)]
    pub transport: SyslogTransport,
    #[serde(default)]
    pub framing: SyslogFraming,
    #[serde(default)]
    pub header: SyslogHeader,
    #[serde(default)]
    pub format: SyslogFormat,
    #[serde(default = "default_syslog_facility")]
    pub facility: u8,
    pub hostname: Option<String>,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    #[serde(default = "default_syslog_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "default_leef_delimiter")]
    pub leef_delimiter: String,
    #[serde(default = "default_enterprise_number")]
    pub enterprise_number: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    #[serde(default = "default_write_timeout")]
    pub write_timeout: ConfigDuration,
    pub tls: Option<ClientTlsConfig>,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub filter: SinkFilterConfig,
    /// NDJSON file for events the destination refuses for good, with the reason and time.
    pub dead_letter_path: Option<PathBuf>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    pub max_retry_duration: Option<ConfigDuration>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// RFC 5425: the default, because alerts should not cross a network in clear text.
    #[default]
    Tls,
    Tcp,
    /// RFC 5426: lossy and unacknowledged; only when chosen.
    Udp,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFraming {
    /// RFC 6587 §3.4.1 `LEN SP MSG`: safe for any content; required by RFC 5425.
    #[default]
    OctetCounting,
    /// One message per line: what QRadar, rsyslog `imtcp` and syslog-ng `network()` expect.
    Lf,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogHeader {
    #[default]
    Rfc5424,
    Rfc3164,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    #[default]
    Leef,
    Cef,
    Json,
}

fn default_write_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_WRITE_TIMEOUT)
}
fn default_syslog_facility() -> u8 {
    DEFAULT_SYSLOG_FACILITY
}
fn default_app_name() -> String {
    "siemgate".to_owned()
}
fn default_syslog_max_message_bytes() -> usize {
    DEFAULT_SYSLOG_MAX_MESSAGE_BYTES
}
fn default_leef_delimiter() -> String {
    "^".to_owned()
}
fn default_enterprise_number() -> u32 {
    DEFAULT_ENTERPRISE_NUMBER
}

pub struct SyslogSettings {
    pub host: String,
    pub port: u16,
    pub transport: SyslogTransport,
    pub framing: SyslogFraming,
    pub header: SyslogHeader,
    pub format: SyslogFormat,
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub max_message_bytes: usize,
    pub leef_delimiter: u8,
    pub enterprise_number: u32,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub tls: Option<ClientTls>,
}

/// RFC 5424 PRINTUSASCII (no spaces, no control characters), 1 to `max` bytes.
fn printusascii(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_graphic())
}

fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

impl SinkKindConfig for SyslogSinkConfig {
    fn type_name(&self) -> &'static str {
        "syslog"
    }

    fn common(&self) -> SinkCommon<'_> {
        common_keys!(self)
    }

    fn ocsf_conflict(&self) -> Option<&'static str> {
        (self.format != SyslogFormat::Json).then_some(
            "\"ocsf\" is JSON: it needs format = \"json\" (LEEF and CEF carry siemgate's \
             own fields)",
        )
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        let s = self;
        let before = issues.0.len();
        let address = split_host_port(&s.address);
        if address.is_none() {
            issues.push(
                format!("{path}.address"),
                format!("{:?} is not host:port, e.g. 127.0.0.1:6514", s.address),
            );
        }
        if s.facility > 23 {
            issues.push(format!("{path}.facility"), "must be 0 to 23");
        }
        let hostname = s.hostname.clone().unwrap_or_else(system_hostname);
        if !printusascii(&hostname, 255) {
            issues.push(
                format!("{path}.hostname"),
                "must be 1 to 255 printable ASCII characters without spaces",
            );
        }
        let app_max = if s.header == SyslogHeader::Rfc3164 {
            32
        } else {
            48
        };
        let app_ok = printusascii(&s.app_name, app_max)
            && (s.header == SyslogHeader::Rfc5424
                || s.app_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !app_ok {
            issues.push(
                format!("{path}.app_name"),
                format!("must be 1 to {app_max} printable ASCII characters without spaces (RFC 3164: letters, digits, - and _)"),
            );
        }
        if !(MIN_SYSLOG_MESSAGE_BYTES..=MAX_SYSLOG_MESSAGE_BYTES).contains(&s.max_message_bytes) {
            issues.push(
                format!("{path}.max_message_bytes"),
                format!("must be {MIN_SYSLOG_MESSAGE_BYTES} to {MAX_SYSLOG_MESSAGE_BYTES}"),
            );
        }
        let delimiter = match s.leef_delimiter.as_str() {
            "\t" | "x09" | "0x09" => Some(b'\t'),
            d if d.len() == 1 => {
                let b = d.as_bytes()[0];
                let ok = b.is_ascii_graphic() && !b.is_ascii_alphanumeric() && !b"=|".contains(&b);
                ok.then_some(b)
            }
            _ => None,
        };
        if delimiter.is_none() {
            issues.push(
                format!("{path}.leef_delimiter"),
                "must be one printable ASCII character other than a letter, a digit, = or | (or \"\\t\")",
            );
        }
        if s.transport == SyslogTransport::Udp && s.framing != SyslogFraming::default() {
            issues.push(
                format!("{path}.framing"),
                "UDP sends one message per datagram; framing applies to tcp and tls",
            );
        }
        if s.transport != SyslogTransport::Tls && s.tls.is_some() {
            issues.push(
                format!("{path}.tls"),
                "TLS settings need transport = \"tls\"",
            );
        }
        positive(s.connect_timeout, format!("{path}.connect_timeout"), issues);
        positive(s.write_timeout, format!("{path}.write_timeout"), issues);
        let (host, port) = address?;
        let tls = if s.transport == SyslogTransport::Tls {
            Some(build_client_tls(s.tls.as_ref(), &host, path, issues)?)
        } else {
            None
        };
        if issues.0.len() != before {
            return None;
        }
        Some(SinkKind::Syslog(SyslogSettings {
            host,
            port,
            transport: s.transport,
            framing: s.framing,
            header: s.header,
            format: s.format,
            facility: s.facility,
            hostname,
            app_name: s.app_name.clone(),
            max_message_bytes: s.max_message_bytes,
            leef_delimiter: delimiter?,
            enterprise_number: s.enterprise_number,
            connect_timeout: s.connect_timeout.0,
            write_timeout: s.write_timeout.0,
            tls,
        }))
    }
}
