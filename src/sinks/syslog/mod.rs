//! The syslog sink: RFC 5424 or RFC 3164 headers, LEEF 2.0 (`leef`), CEF (`cef`) or JSON
//! bodies, framed for TCP/TLS (RFC 6587 octet counting or LF) or sent one message per UDP
//! datagram (RFC 5426).
//!
//! The encoder writes each event's whole frame at the edge, already cut to
//! `max_message_bytes` (the body's least important attributes go first; the headers never).
//! The transport only writes whole frames: a batch is written with one `write_all`, and if the
//! connection breaks the whole batch goes again on the next connection, so a receiver may see
//! a message twice but never a piece of one. Before each batch the transport checks whether the
//! receiver has closed its end (syslog receivers never send), so a restarted receiver does not
//! swallow a batch written into a dead socket.

pub mod cef;
pub mod leef;

use std::io::Write as _;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use metrics::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::retry::SendError;
use super::sent::Sent;
use super::transport::Transport;
use super::{EncodeError, Encoder};
use crate::config::{SyslogFormat, SyslogFraming, SyslogHeader, SyslogSettings, SyslogTransport};
use crate::normalize::ocsf::{OcsfEvent, OcsfVersion};
use crate::normalize::{Event, EventId, Severity};

/// Syslog severity (RFC 5424 §6.2.1) for an event severity. Unknown is Notice (5), as Low: a
/// receiver that keeps notice and above (or info and above) never drops an event only because
/// its vendor gave no severity; the structured data says `severity="unknown"`.
fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Unknown => 5,
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Informational => 6,
    }
}

/// Longest event id written in the structured data (RFC 5424 sets no limit; receivers do).
const MAX_SD_ID_BYTES: usize = 128;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(super) fn char_prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Length of the longest prefix of escaped SD text within `max` bytes that ends on a
/// character boundary and not inside a `\x` escape.
fn sd_prefix(escaped: &[u8], max: usize) -> usize {
    let mut end = max.min(escaped.len());
    while end > 0 && (escaped[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    // An odd run of backslashes before the cut means the cut splits an escape.
    let run = escaped[..end]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    if run % 2 == 1 {
        end -= 1;
    }
    end
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Encodes one event as one framed syslog message.
pub struct SyslogEncoder {
    header: SyslogHeader,
    format: SyslogFormat,
    framing: Option<SyslogFraming>,
    facility: u8,
    /// ` HOSTNAME APP-NAME` (5424: followed by ` - `; 3164: by `: `), built once.
    host_app: Box<[u8]>,
    sd_id: Box<[u8]>,
    max_message_bytes: usize,
    delimiter: u8,
    truncations: Counter,
    /// `Some` with `encoding = "ocsf"` (only with `format = "json"`).
    ocsf: Option<OcsfVersion>,
}

impl SyslogEncoder {
    pub fn new(s: &SyslogSettings, truncations: Counter) -> SyslogEncoder {
        let host_app = format!(" {} {}", s.hostname, s.app_name).into_bytes();
        SyslogEncoder {
            header: s.header,
            format: s.format,
            framing: (s.transport != SyslogTransport::Udp).then_some(s.framing),
            facility: s.facility,
            host_app: host_app.into_boxed_slice(),
            sd_id: format!("siemgate@{}", s.enterprise_number)
                .into_bytes()
                .into_boxed_slice(),
            max_message_bytes: s.max_message_bytes,
            delimiter: s.leef_delimiter,
            truncations,
            ocsf: None,
        }
    }

    /// With `encoding = "ocsf"`: the JSON body is the event's OCSF object.
    pub fn with_ocsf(mut self, ocsf: Option<OcsfVersion>) -> SyslogEncoder {
        self.ocsf = ocsf;
        self
    }

    fn write_header(&self, event: &Event<'_>, out: &mut BytesMut) {
        let pri = u16::from(self.facility) * 8 + u16::from(syslog_severity(event.severity));
        let mut ts = [0u8; 24];
        let time = event.time.rfc3339(&mut ts);
        let mut w = out.writer();
        match self.header {
            SyslogHeader::Rfc5424 => {
                let _ = write!(w, "<{pri}>1 {time}");
                let out = w.into_inner();
                out.extend_from_slice(&self.host_app);
                out.extend_from_slice(b" - ");
                out.extend_from_slice(event.kind.as_str().as_bytes());
                out.extend_from_slice(b" [");
                out.extend_from_slice(&self.sd_id);
                sd_param(out, "vendor", event.vendor.as_str());
                sd_param(out, "severity", event.severity.as_str());
                sd_param(out, "source", event.source);
                out.extend_from_slice(b" id=\"");
                let id_start = out.len();
                let _ =
                    std::fmt::Write::write_fmt(&mut SdEscape(out), format_args!("{}", event.id));
                // A vendor id of any length would make the header, which is never cut,
                // outgrow the message; the full id is in the body (LEEF/CEF externalId).
                if out.len() - id_start > MAX_SD_ID_BYTES {
                    let keep = sd_prefix(&out[id_start..], MAX_SD_ID_BYTES);
                    out.truncate(id_start + keep);
                }
                out.extend_from_slice(b"\"] ");
            }
            SyslogHeader::Rfc3164 => {
                // `Mmm dd hh:mm:ss` in UTC, the day padded with a space (RFC 3164 §4.1.2).
                let month = usize::from((ts[5] - b'0') * 10 + (ts[6] - b'0'));
                let mon = MONTHS.get(month.wrapping_sub(1)).copied().unwrap_or("Jan");
                let day0 = if ts[8] == b'0' { b' ' } else { ts[8] };
                let _ = write!(w, "<{pri}>{mon} ");
                let out = w.into_inner();
                out.put_u8(day0);
                out.put_u8(ts[9]);
                out.put_u8(b' ');
                out.extend_from_slice(&ts[11..19]);
                out.extend_from_slice(&self.host_app);
                out.extend_from_slice(b": ");
            }
        }
    }

    /// Writes the body within `budget` bytes; true when something had to be cut.
    fn write_body(
        &self,
        event: &Event<'_>,
        budget: usize,
        out: &mut BytesMut,
    ) -> Result<bool, EncodeError> {
        Ok(match self.format {
            SyslogFormat::Leef => leef::encode(event, self.delimiter, budget, out),
            SyslogFormat::Cef => cef::encode(event, budget, out),
            SyslogFormat::Json => match self.ocsf {
                None => write_json(event, budget, out)?,
                Some(v) => write_ocsf(event, v, budget, out)?,
            },
        })
    }
}

/// The normalized Event as one line. Over budget it loses `raw`, then `description`, then
/// `title`, then the resource, network, url and vendor severity, then a long id gives way to
/// its hash, and it says `"truncated":true`.
fn write_json(event: &Event<'_>, budget: usize, out: &mut BytesMut) -> Result<bool, EncodeError> {
    let start = out.len();
    crate::normalize::write::event(event, out);
    json_one_line(out, start);
    if out.len() - start <= budget {
        return Ok(false);
    }
    let mut lean = event.clone();
    lean.raw = std::borrow::Cow::Borrowed(serde_json::value::RawValue::NULL);
    for step in 0..5 {
        match step {
            0 => {}
            1 => lean.description = None,
            2 => lean.title = None,
            3 => {
                lean.resource = Default::default();
                lean.network = Default::default();
                lean.url = None;
                lean.vendor_severity = None;
            }
            _ => lean.id = EventId::hash_of(lean.id.to_string().as_bytes()),
        }
        out.truncate(start);
        serde_json::to_writer(out.writer(), &lean)?;
        json_one_line(out, start);
        // `raw` is serialized last: replace it with the truncation mark.
        const RAW_NULL: &[u8] = b",\"raw\":null}";
        if out[start..].ends_with(RAW_NULL) {
            out.truncate(out.len() - RAW_NULL.len());
            out.extend_from_slice(b",\"truncated\":true}");
        }
        if out.len() - start <= budget {
            break;
        }
    }
    Ok(true)
}

/// The event's OCSF object as one line. Over budget it loses `raw_data` and the long
/// descriptions (still a valid OCSF object); what is still too long the frame limit cuts.
fn write_ocsf(
    event: &Event<'_>,
    version: OcsfVersion,
    budget: usize,
    out: &mut BytesMut,
) -> Result<bool, EncodeError> {
    let start = out.len();
    serde_json::to_writer(out.writer(), &OcsfEvent::new(event, version))?;
    json_one_line(out, start);
    if out.len() - start <= budget {
        return Ok(false);
    }
    out.truncate(start);
    serde_json::to_writer(out.writer(), &OcsfEvent::new(event, version).lean())?;
    json_one_line(out, start);
    Ok(true)
}

/// ` name="value"` with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn sd_param(out: &mut BytesMut, name: &str, value: &str) {
    out.put_u8(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    let _ = std::fmt::Write::write_str(&mut SdEscape(out), value);
    out.put_u8(b'"');
}

/// Writes SD-PARAM value text: `"`, `\` and `]` escaped, C0 controls, DEL and the Unicode line
/// breaks (U+0085, U+2028, U+2029) as one space each, like the LEEF and CEF bodies.
struct SdEscape<'a>(&'a mut BytesMut);

impl std::fmt::Write for SdEscape<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let s = s.as_bytes();
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            match b {
                b'"' | b'\\' | b']' => {
                    self.0.put_u8(b'\\');
                    self.0.put_u8(b);
                }
                b if leef::is_control(b) => self.0.put_u8(b' '),
                0xC2.. if leef::unicode_break_len(&s[i..]) > 0 => {
                    self.0.put_u8(b' ');
                    i += leef::unicode_break_len(&s[i..]);
                    continue;
                }
                _ => self.0.put_u8(b),
            }
            i += 1;
        }
        Ok(())
    }
}

/// Makes the JSON body from `start` on safe to read as one line: C0 controls, which valid
/// JSON holds only as whitespace between tokens (serde escapes them inside strings; a vendor's
/// `raw` may be pretty-printed), become spaces in place; DEL and the Unicode line breaks, which
/// JSON allows raw inside strings, are written as their `\u` escapes (the same string, so the
/// value a SIEM decodes is unchanged). The common case, none of them, costs one scan.
fn json_one_line(out: &mut BytesMut, start: usize) {
    let needs_escape = |s: &[u8], i: usize| s[i] == 0x7f || leef::unicode_break_len(&s[i..]) > 0;
    let mut first = None;
    for i in start..out.len() {
        if leef::is_control(out[i]) && out[i] != 0x7f {
            out[i] = b' ';
        } else if first.is_none() && needs_escape(out, i) {
            first = Some(i);
        }
    }
    let Some(first) = first else { return };
    let tail = out.split_off(first);
    let mut i = 0;
    while i < tail.len() {
        let (escape, len): (&[u8], usize) = match tail[i] {
            0x7f => (b"\\u007f", 1),
            _ => match leef::unicode_break_len(&tail[i..]) {
                2 => (b"\\u0085", 2),
                3 if tail[i + 2] == 0xA8 => (b"\\u2028", 3),
                3 => (b"\\u2029", 3),
                _ => (&[], 0),
            },
        };
        if len == 0 {
            out.put_u8(tail[i]);
            i += 1;
        } else {
            out.extend_from_slice(escape);
            i += len;
        }
    }
}

impl Encoder for SyslogEncoder {
    fn encode(&self, event: &Event<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
        let frame_start = out.len();
        self.write_header(event, out);
        let header_len = out.len() - frame_start;
        let budget = self.max_message_bytes.saturating_sub(header_len);
        let mut cut = self.write_body(event, budget, out)?;
        // Last resort, when the parts that are never shortened alone outgrow the limit: the
        // limit wins (a receiver drops or splits larger messages, and a UDP datagram must fit).
        if out.len() - frame_start > self.max_message_bytes {
            let text = std::str::from_utf8(&out[frame_start..]).unwrap_or("");
            let keep = char_prefix(text, self.max_message_bytes).len();
            out.truncate(frame_start + keep);
            cut = true;
        }
        if cut {
            self.truncations.increment(1);
        }
        match self.framing {
            None => {}
            Some(SyslogFraming::Lf) => {
                // Bodies carry no line breaks by construction; this keeps a stray one from
                // ever splitting a message into two for the receiver.
                for b in &mut out[frame_start..] {
                    if *b == b'\n' || *b == b'\r' {
                        *b = b' ';
                    }
                }
                out.put_u8(b'\n');
            }
            Some(SyslogFraming::OctetCounting) => {
                let len = out.len() - frame_start;
                let mut prefix = [0u8; 24];
                let mut cursor = std::io::Cursor::new(&mut prefix[..]);
                let _ = write!(cursor, "{len} ");
                let plen = cursor.position() as usize;
                out.extend_from_slice(&prefix[..plen]);
                out[frame_start..].rotate_right(plen);
            }
        }
        Ok(())
    }
}

/// An open stream to the receiver.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// True when the receiver has closed its end (or the socket failed). Syslog receivers
    /// never send application data, so anything readable means the connection is over.
    async fn peer_closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        let read = match self {
            Stream::Tcp(s) => tokio::time::timeout(Duration::ZERO, s.read(&mut buf)).await,
            Stream::Tls(s) => tokio::time::timeout(Duration::ZERO, s.read(&mut buf)).await,
        };
        matches!(read, Ok(Ok(0) | Err(_)))
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        };
    }
}

pub struct SyslogSink {
    sink_id: String,
    host: String,
    port: u16,
    transport: SyslogTransport,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    connect_timeout: Duration,
    write_timeout: Duration,
    stream: Option<Stream>,
    udp: Option<UdpSocket>,
    connected_before: bool,
    reconnects: Counter,
    buf: Vec<u8>,
}

impl SyslogSink {
    pub fn new(sink_id: &str, s: &SyslogSettings, reconnects: Counter) -> SyslogSink {
        if s.tls.as_ref().is_some_and(|t| !t.verify) {
            tracing::warn!(sink = %sink_id, "TLS certificate verification is off (tls.verify = false)");
        }
        SyslogSink {
            sink_id: sink_id.to_owned(),
            host: s.host.clone(),
            port: s.port,
            transport: s.transport,
            tls: s
                .tls
                .as_ref()
                .map(|t| (TlsConnector::from(t.config.clone()), t.server_name.clone())),
            connect_timeout: s.connect_timeout,
            write_timeout: s.write_timeout,
            stream: None,
            udp: None,
            connected_before: false,
            reconnects,
            buf: Vec::new(),
        }
    }

    async fn connect(&mut self) -> Result<Stream, SendError> {
        let addr = (self.host.as_str(), self.port);
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                SendError::retryable(format!(
                    "connecting to {}:{} timed out",
                    self.host, self.port
                ))
            })?
            .map_err(|e| {
                SendError::retryable(format!(
                    "cannot connect to {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Tcp(tcp),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| SendError::retryable("TLS handshake timed out"))?
                .map_err(|e| {
                    let reason =
                        format!("TLS handshake with {}:{} failed: {e}", self.host, self.port);
                    if crate::tls::client::is_config_error(&e) {
                        SendError::Config(reason)
                    } else {
                        SendError::retryable(reason)
                    }
                })?;
                Stream::Tls(Box::new(tls))
            }
        };
        if self.connected_before {
            self.reconnects.increment(1);
            tracing::info!(sink = %self.sink_id, host = %self.host, port = self.port, "reconnected to the syslog receiver");
        }
        self.connected_before = true;
        Ok(stream)
    }

    async fn send_udp(&mut self, batch: &[Bytes]) -> Result<usize, SendError> {
        if self.udp.is_none() {
            let target = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| SendError::retryable(format!("cannot resolve {}", self.host)))?;
            let local = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local)
                .await
                .map_err(|e| SendError::retryable(format!("cannot open a UDP socket: {e}")))?;
            socket
                .connect(target)
                .await
                .map_err(|e| SendError::retryable(format!("cannot address {target}: {e}")))?;
            self.udp = Some(socket);
        }
        let Some(socket) = &self.udp else {
            return Err(SendError::retryable("UDP socket unavailable"));
        };
        for (i, datagram) in batch.iter().enumerate() {
            if let Err(e) = socket.send(datagram).await {
                self.udp = None;
                if i > 0 {
                    return Ok(i);
                }
                return Err(SendError::retryable(format!("UDP send failed: {e}")));
            }
        }
        Ok(batch.len())
    }
}

impl Transport for SyslogSink {
    async fn send(&mut self, batch: &[Bytes]) -> Result<Sent, SendError> {
        self.write(batch).await.map(Sent::Delivered)
    }

    async fn close(&mut self) {
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), s.shutdown()).await;
        }
    }
}

impl SyslogSink {
    /// Writes the whole batch on the connection (one datagram per event over UDP).
    async fn write(&mut self, batch: &[Bytes]) -> Result<usize, SendError> {
        if self.transport == SyslogTransport::Udp {
            return self.send_udp(batch).await;
        }
        if let Some(stream) = &mut self.stream {
            if stream.peer_closed().await {
                tracing::warn!(sink = %self.sink_id, "the syslog receiver closed the connection");
                self.stream = None;
            }
        }
        let mut stream = match self.stream.take() {
            Some(s) => s,
            None => self.connect().await?,
        };
        self.buf.clear();
        for item in batch {
            self.buf.extend_from_slice(item);
        }
        match tokio::time::timeout(self.write_timeout, stream.write_all(&self.buf)).await {
            Ok(Ok(())) => {
                self.stream = Some(stream);
                Ok(batch.len())
            }
            // The stream is dropped: whatever part of the batch went out is cut off by the
            // connection's end, and the whole batch goes again on the next connection.
            Ok(Err(e)) => Err(SendError::retryable(format!(
                "write to the syslog receiver failed: {e}"
            ))),
            Err(_) => Err(SendError::retryable(
                "write to the syslog receiver timed out",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::normalize::Timestamp;
    use crate::vendors::Vendor;

    fn settings(
        header: SyslogHeader,
        format: SyslogFormat,
        transport: SyslogTransport,
    ) -> SyslogSettings {
        SyslogSettings {
            host: "127.0.0.1".into(),
            port: 514,
            transport,
            framing: SyslogFraming::OctetCounting,
            header,
            format,
            facility: 13,
            hostname: "gw-01".into(),
            app_name: "siemgate".into(),
            max_message_bytes: 4096,
            leef_delimiter: b'^',
            enterprise_number: 32473,
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            tls: None,
        }
    }

    fn event<'a>(raw: &'a serde_json::value::RawValue) -> Event<'a> {
        let mut e = Event::new(
            Vendor::PrismaCloud,
            "prisma",
            raw,
            Timestamp(1_767_323_045_678),
        );
        e.severity = Severity::High;
        e.id = crate::normalize::EventId::Vendor("P-1\"]\\".into());
        e
    }

    #[test]
    fn ocsf_json_body_loses_raw_data_and_descriptions_over_budget() {
        use crate::normalize::ocsf::OcsfVersion;
        let long = format!("{{\"note\":\"{}\"}}", "x".repeat(3000));
        let raw: &serde_json::value::RawValue = serde_json::from_str(&long).unwrap();
        let mut e = event(raw);
        e.title = Some("t".into());
        e.description = Some("d".repeat(2000).into());
        let mut s = settings(
            SyslogHeader::Rfc5424,
            SyslogFormat::Json,
            SyslogTransport::Tcp,
        );
        let body = |s: &SyslogSettings| {
            let enc = SyslogEncoder::new(s, Counter::noop()).with_ocsf(Some(OcsfVersion::V1_1_0));
            let mut out = BytesMut::new();
            enc.encode(&e, &mut out).unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            let json = &text[text.find("] ").unwrap() + 2..];
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        };
        s.max_message_bytes = 60_000;
        let full = body(&s);
        assert_eq!(full["class_uid"], 2004);
        assert!(full["raw_data"].is_string());
        assert!(full["finding_info"]["desc"].is_string());
        s.max_message_bytes = 2048;
        let lean = body(&s);
        assert!(lean.get("raw_data").is_none(), "{lean}");
        assert!(lean["finding_info"].get("desc").is_none(), "{lean}");
        assert_eq!(lean["finding_info"]["title"], "t");
    }

    #[test]
    fn rfc5424_header_with_escaped_structured_data_and_octet_count() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let enc = SyslogEncoder::new(
            &settings(
                SyslogHeader::Rfc5424,
                SyslogFormat::Json,
                SyslogTransport::Tcp,
            ),
            Counter::noop(),
        );
        let mut out = BytesMut::new();
        enc.encode(&event(raw), &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(
            msg.starts_with(r#"<107>1 2026-01-02T03:04:05.678Z gw-01 siemgate - alert [siemgate@32473 vendor="prisma_cloud" severity="high" source="prisma" id="P-1\"\]\\"] {"#),
            "{msg}"
        );
    }

    #[test]
    fn json_body_and_structured_data_carry_no_raw_control_or_line_break() {
        // A pretty-printed vendor object with a tab, and DEL / U+0085 / U+2028 / U+2029 raw in a
        // string (all valid JSON).
        let raw_text = "{\n\t\"k\": \"a\u{7f}b\u{85}c\u{2028}d\u{2029}e\"\r\n}";
        let raw: &serde_json::value::RawValue = serde_json::from_str(raw_text).unwrap();
        let enc = SyslogEncoder::new(
            &settings(
                SyslogHeader::Rfc5424,
                SyslogFormat::Json,
                SyslogTransport::Tcp,
            ),
            Counter::noop(),
        );
        let mut e = event(raw);
        e.id = crate::normalize::EventId::Vendor("i\0d\u{2028}x".into());
        e.title = Some("t\0i\x1bt\x7fl\u{85}e".into());
        let mut out = BytesMut::new();
        enc.encode(&e, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let bad = text
            .char_indices()
            .find(|&(_, c)| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
        assert_eq!(bad, None, "{text:?}");
        assert!(text.contains(r#" id="i d x"] {"#), "{text}");
        let body = &text[text.find("] {").unwrap() + 2..];
        // The same JSON values: nothing lost, only escaped.
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["title"], "t\0i\x1bt\x7fl\u{85}e");
        assert_eq!(v["raw"]["k"], "a\u{7f}b\u{85}c\u{2028}d\u{2029}e");
        assert!(
            body.contains(r#""a\u007fb\u0085c\u2028d\u2029e""#),
            "{body}"
        );
    }

    #[test]
    fn rfc3164_header_pads_the_day_with_a_space() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let mut s = settings(
            SyslogHeader::Rfc3164,
            SyslogFormat::Json,
            SyslogTransport::Udp,
        );
        s.facility = 4;
        let enc = SyslogEncoder::new(&s, Counter::noop());
        let mut out = BytesMut::new();
        enc.encode(&event(raw), &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("<35>Jan  2 03:04:05 gw-01 siemgate: {"),
            "{text}"
        );
    }

    #[test]
    fn json_over_budget_drops_raw_and_says_so() {
        let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(5000));
        let raw: &serde_json::value::RawValue = serde_json::from_str(&big).unwrap();
        let mut s = settings(
            SyslogHeader::Rfc5424,
            SyslogFormat::Json,
            SyslogTransport::Udp,
        );
        s.max_message_bytes = 1000;
        let enc = SyslogEncoder::new(&s, Counter::noop());
        let mut out = BytesMut::new();
        enc.encode(&event(raw), &mut out).unwrap();
        assert!(out.len() <= 1000, "{}", out.len());
        let text = std::str::from_utf8(&out).unwrap();
        let json = &text[text.find("] ").unwrap() + 2..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(v.get("raw").is_none(), "{v}");
    }

    #[test]
    fn long_ids_and_titles_never_push_a_message_over_the_limit() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        for format in [SyslogFormat::Leef, SyslogFormat::Cef, SyslogFormat::Json] {
            let mut s = settings(SyslogHeader::Rfc5424, format, SyslogTransport::Udp);
            s.max_message_bytes = 480;
            let enc = SyslogEncoder::new(&s, Counter::noop());
            let mut e = event(raw);
            let long_id = "é\\".repeat(700);
            e.id = crate::normalize::EventId::Vendor(long_id.as_str().into());
            e.title = Some("t|".repeat(2000).into());
            let mut out = BytesMut::new();
            enc.encode(&e, &mut out).unwrap();
            assert!(out.len() <= 480, "{format:?}: {}", out.len());
            let text = std::str::from_utf8(&out).unwrap();
            let sd_end = text
                .find("\"] ")
                .unwrap_or_else(|| panic!("{format:?}: SD cut: {text}"));
            assert!(
                !text[..sd_end].ends_with('\\') || text[..sd_end].ends_with("\\\\"),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_severity_is_notice_and_says_unknown() {
        let raw: &serde_json::value::RawValue = serde_json::from_str("{}").unwrap();
        let enc = SyslogEncoder::new(
            &settings(
                SyslogHeader::Rfc5424,
                SyslogFormat::Json,
                SyslogTransport::Tcp,
            ),
            Counter::noop(),
        );
        let mut e = event(raw);
        e.severity = Severity::Unknown;
        let mut out = BytesMut::new();
        enc.encode(&e, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        // Facility 13 * 8 + Notice (5).
        assert!(text.contains(r#"<109>1 "#), "{text}");
        assert!(text.contains(r#"severity="unknown""#), "{text}");
        assert!(text.contains(r#""severity_id":0"#), "{text}");
    }
}
