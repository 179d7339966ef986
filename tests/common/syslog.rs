//! Loopback syslog receivers and strict parsers for the syslog sink's end-to-end tests.
//!
//! Receivers (all on 127.0.0.1, each recording what it got in arrival order):
//! * [`StreamReceiver`]: a TCP listener, plain ([`StreamReceiver::tcp`]) or TLS
//!   ([`StreamReceiver::tls`], a rustls server with a certificate from a [`Pki`]), decoding
//!   RFC 6587 octet counting (`MSG-LEN SP SYSLOG-MSG`, MSG-LEN without leading zeros) or LF
//!   framing strictly. Anything malformed, and a frame left incomplete when the sender closes
//!   the connection, is recorded in [`StreamReceiver::errors`]; a malformed frame also closes
//!   the connection (there is no way to find the next frame). [`StreamReceiver::kill`] closes
//!   the listener and every connection; [`StreamReceiver::tcp_on`] / [`StreamReceiver::tls_on`]
//!   listen again on the same port.
//! * [`UdpReceiver`]: one recorded message per datagram.
//!
//! Parsers (each returns `Err(reason)` on the first violation):
//! * [`parse_rfc5424`]: PRI 0..191, VERSION 1, TIMESTAMP (fraction of 1-6 digits, `Z` or an
//!   offset, no leap second), HOSTNAME / APP-NAME / PROCID / MSGID as NILVALUE or PRINTUSASCII
//!   within the RFC lengths, STRUCTURED-DATA with SD-NAME rules, `\"`, `\\`, `\]` escapes (any
//!   other backslash, or a raw `]`, is an error: the sender must escape them), unique SD-IDs,
//!   then SP and MSG (an optional UTF-8 BOM is reported, not accepted silently).
//! * [`parse_rfc3164`]: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[pid]: MSG`, the day space-padded.
//! * [`parse_leef`]: LEEF 2.0, header fields split on `|`, the delimiter field (a character or
//!   `x09`/`0x09` hex), attributes split on the delimiter into `key=value`, keys
//!   `[A-Za-z0-9_]+`, no duplicate keys, no empty attribute, no C0 control (CR/LF included; a
//!   tab only as the delimiter), DEL, U+0085, U+2028 or U+2029.
//! * [`parse_cef`]: CEF, header split on unescaped `|` with `\|` and `\\` unescaped (any other
//!   backslash is an error), extension split into `key=value` pairs on unescaped `=`, each value
//!   ending where the next ` key=` begins, `\=`, `\\`, `\n`, `\r` unescaped (any other
//!   backslash, a raw `=` or a raw CR/LF in a value is an error); no C0 control, DEL, U+0085,
//!   U+2028 or U+2029 anywhere in the body.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::common::{ca_params, tls_server_config};

/// One `[[sinks]]` table of type syslog, no linger; `keys` are more `key = value` lines.
pub fn syslog_sink(id: &str, addr: SocketAddr, keys: &str) -> String {
    format!(
        r#"
[[sinks]]
id = "{id}"
type = "syslog"
address = "{addr}"
{keys}
[sinks.batch]
linger = "0ms"
"#
    )
}

/// Largest MSG-LEN the stream receivers accept (the sink's upper bound is 65,000).
pub const MAX_FRAME: usize = 1_000_000;

// ---------------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------------

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, with a rustls
/// server config presenting it.
pub struct Pki {
    /// The CA certificate, PEM: what the sink's `[sinks.tls] ca_file` must contain.
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// A fresh CA named `ca_name` and a server certificate from it.
    pub fn new(ca_name: &str) -> Pki {
        let ca: CertifiedIssuer<'static, KeyPair> =
            CertifiedIssuer::self_signed(ca_params(ca_name), KeyPair::generate().unwrap()).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &*ca).unwrap();

        Pki {
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server: tls_server_config(vec![cert.der().clone()], &key),
        }
    }

    /// Writes the CA certificate to `dir/name` and returns the path.
    pub fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

// ---------------------------------------------------------------------------------------------
// Receivers
// ---------------------------------------------------------------------------------------------

/// How a stream receiver splits the byte stream into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6587 §3.4.1: `MSG-LEN SP SYSLOG-MSG`.
    OctetCounting,
    /// One message per line, ended by LF.
    Lf,
}

/// One received message (framing removed).
#[derive(Debug, Clone)]
pub struct Received {
    /// The connection it came on (1, 2, ... in accept order; 0 for UDP).
    pub conn: usize,
    pub bytes: Vec<u8>,
}

impl Received {
    /// The message as text; panics when it is not valid UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes)
            .unwrap_or_else(|e| panic!("message is not UTF-8 ({e}): {:?}", self.bytes))
    }
}

#[derive(Debug, Default)]
struct Log {
    messages: Vec<Received>,
    /// Framing violations and frames left incomplete by the sender.
    errors: Vec<String>,
    /// TLS handshakes that failed (e.g. the client refused our certificate).
    handshake_failures: Vec<String>,
    /// Bytes of an unfinished frame when [`StreamReceiver::kill`] closed the connection.
    cut_by_kill: Vec<String>,
    connections: usize,
    closed_by_peer: usize,
}

type Shared = Arc<Mutex<Log>>;

/// A TCP or TLS syslog receiver on 127.0.0.1.
pub struct StreamReceiver {
    addr: SocketAddr,
    log: Shared,
    stop: CancellationToken,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// Binds `addr` with SO_REUSEADDR, retrying for a while if the port is still taken.
async fn bind_listener(addr: SocketAddr) -> TcpListener {
    let mut last = None;
    for _ in 0..100 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        match sock.bind(addr) {
            Ok(()) => return sock.listen(128).unwrap(),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}: {last:?}");
}

impl StreamReceiver {
    /// Plain TCP on 127.0.0.1:0.
    pub async fn tcp(framing: Framing) -> StreamReceiver {
        Self::tcp_on("127.0.0.1:0".parse().unwrap(), framing).await
    }

    /// Plain TCP on `addr` (e.g. the port of a killed receiver).
    pub async fn tcp_on(addr: SocketAddr, framing: Framing) -> StreamReceiver {
        Self::start(addr, framing, None).await
    }

    /// TLS on 127.0.0.1:0 with `pki`'s server certificate.
    pub async fn tls(framing: Framing, pki: &Pki) -> StreamReceiver {
        Self::tls_on("127.0.0.1:0".parse().unwrap(), framing, pki).await
    }

    /// TLS on `addr` with `pki`'s server certificate.
    pub async fn tls_on(addr: SocketAddr, framing: Framing, pki: &Pki) -> StreamReceiver {
        Self::start(addr, framing, Some(pki.server.clone())).await
    }

    async fn start(
        addr: SocketAddr,
        framing: Framing,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> StreamReceiver {
        assert!(addr.ip().is_loopback(), "receivers only listen on loopback");
        let listener = bind_listener(addr).await;
        let addr = listener.local_addr().unwrap();
        let log: Shared = Arc::default();
        let stop = CancellationToken::new();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let accept = {
            let (log, stop, tasks) = (log.clone(), stop.clone(), tasks.clone());
            tokio::spawn(async move {
                loop {
                    let tcp = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = listener.accept() => match r {
                            Ok((tcp, _)) => tcp,
                            Err(_) => continue,
                        },
                    };
                    let conn = {
                        let mut l = log.lock().unwrap();
                        l.connections += 1;
                        l.connections
                    };
                    let (log, stop, acceptor) = (log.clone(), stop.clone(), acceptor.clone());
                    let h = tokio::spawn(async move {
                        serve(tcp, acceptor, framing, conn, log, stop).await;
                    });
                    tasks.lock().unwrap().push(h);
                }
            })
        };
        tasks.lock().unwrap().push(accept);
        StreamReceiver {
            addr,
            log,
            stop,
            tasks,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        self.log.lock().unwrap().messages.clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().messages.len()
    }

    /// Framing errors and frames left incomplete by the sender.
    pub fn errors(&self) -> Vec<String> {
        self.log.lock().unwrap().errors.clone()
    }

    pub fn handshake_failures(&self) -> Vec<String> {
        self.log.lock().unwrap().handshake_failures.clone()
    }

    /// Unfinished frames cut off by [`StreamReceiver::kill`].
    pub fn cut_by_kill(&self) -> Vec<String> {
        self.log.lock().unwrap().cut_by_kill.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.lock().unwrap().connections
    }

    /// Connections the sender closed.
    pub fn closed_by_peer(&self) -> usize {
        self.log.lock().unwrap().closed_by_peer
    }

    /// Closes the listener and every connection (no TLS close_notify, no FIN wait) and waits
    /// until they are gone; the port is free again afterwards.
    pub async fn kill(&self) {
        self.stop.cancel();
        let handles: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for h in handles {
            tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .expect("receiver task ends within 5s")
                .unwrap();
        }
        // A connection accepted between the cancel and the accept task's exit.
        let late: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for h in late {
            h.abort();
        }
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    tcp: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    framing: Framing,
    conn: usize,
    log: Shared,
    stop: CancellationToken,
) {
    match acceptor {
        None => read_frames(tcp, framing, conn, log, stop).await,
        Some(acceptor) => {
            let hs = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)) => r,
            };
            match hs {
                Ok(Ok(tls)) => read_frames(tls, framing, conn, log, stop).await,
                Ok(Err(e)) => log
                    .lock()
                    .unwrap()
                    .handshake_failures
                    .push(format!("conn {conn}: {e}")),
                Err(_) => log
                    .lock()
                    .unwrap()
                    .handshake_failures
                    .push(format!("conn {conn}: handshake timed out")),
            }
        }
    }
}

async fn read_frames<S: AsyncRead + Unpin>(
    mut s: S,
    framing: Framing,
    conn: usize,
    log: Shared,
    stop: CancellationToken,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => {
                if !buf.is_empty() {
                    log.lock().unwrap().cut_by_kill.push(format!(
                        "conn {conn}: {} bytes of an unfinished frame: {:?}",
                        buf.len(),
                        String::from_utf8_lossy(&buf)
                    ));
                }
                return;
            }
            r = s.read(&mut chunk) => r,
        };
        match read {
            Ok(0) | Err(_) => {
                let mut l = log.lock().unwrap();
                l.closed_by_peer += 1;
                if !buf.is_empty() {
                    let how = match read {
                        Err(e) => format!("connection failed ({e})"),
                        Ok(_) => "connection closed".to_owned(),
                    };
                    l.errors.push(format!(
                        "conn {conn}: {how} inside a frame: {} bytes left: {:?}",
                        buf.len(),
                        String::from_utf8_lossy(&buf)
                    ));
                }
                return;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let res = match framing {
                    Framing::OctetCounting => take_octet_counted(&mut buf),
                    Framing::Lf => take_lines(&mut buf),
                };
                let mut l = log.lock().unwrap();
                for (bytes, problem) in res.frames {
                    if let Some(p) = problem {
                        l.errors.push(format!("conn {conn}: {p}"));
                    }
                    l.messages.push(Received { conn, bytes });
                }
                if let Some(e) = res.fatal {
                    l.errors.push(format!("conn {conn}: {e}"));
                    return;
                }
            }
        }
    }
}

/// What a decoder got out of a buffer: whole frames (each with a problem, if any) and maybe a
/// violation after which the stream cannot be read on.
#[derive(Debug, Default)]
pub struct Decoded {
    pub frames: Vec<(Vec<u8>, Option<String>)>,
    pub fatal: Option<String>,
}

/// Takes every complete `MSG-LEN SP MSG` frame off the front of `buf`, strictly: MSG-LEN is
/// NONZERO-DIGIT *DIGIT (at most 7 digits, at most [`MAX_FRAME`]) followed by exactly one SP.
/// An incomplete frame stays in `buf`.
pub fn take_octet_counted(buf: &mut Vec<u8>) -> Decoded {
    let mut out = Decoded::default();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        if rest.is_empty() {
            break;
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            out.fatal = Some(format!(
                "frame does not start with MSG-LEN: {:?}",
                String::from_utf8_lossy(&rest[..rest.len().min(80)])
            ));
            break;
        }
        if rest[0] == b'0' {
            out.fatal = Some(format!(
                "MSG-LEN with a leading zero: {:?}",
                String::from_utf8_lossy(&rest[..rest.len().min(20)])
            ));
            break;
        }
        if digits > 7 {
            out.fatal = Some(format!("MSG-LEN of {digits} digits"));
            break;
        }
        if digits == rest.len() {
            break; // the rest of MSG-LEN is still on its way
        }
        if rest[digits] != b' ' {
            out.fatal = Some(format!(
                "MSG-LEN not followed by SP: {:?}",
                String::from_utf8_lossy(&rest[..rest.len().min(80)])
            ));
            break;
        }
        let len: usize = std::str::from_utf8(&rest[..digits])
            .unwrap()
            .parse()
            .unwrap();
        if len > MAX_FRAME {
            out.fatal = Some(format!("MSG-LEN {len} over {MAX_FRAME}"));
            break;
        }
        let start = digits + 1;
        if rest.len() < start + len {
            break; // incomplete
        }
        out.frames.push((rest[start..start + len].to_vec(), None));
        pos += start + len;
    }
    buf.drain(..pos);
    out
}

/// Takes every complete LF-terminated line off the front of `buf`. An empty line or a CR in a
/// line is recorded as a problem of that frame.
pub fn take_lines(buf: &mut Vec<u8>) -> Decoded {
    let mut out = Decoded::default();
    let mut pos = 0;
    while let Some(i) = buf[pos..].iter().position(|&b| b == b'\n') {
        let line = buf[pos..pos + i].to_vec();
        let problem = if line.is_empty() {
            Some("empty line".to_owned())
        } else if line.contains(&b'\r') {
            Some(format!(
                "CR inside a line: {:?}",
                String::from_utf8_lossy(&line)
            ))
        } else {
            None
        };
        out.frames.push((line, problem));
        pos += i + 1;
    }
    buf.drain(..pos);
    out
}

/// A UDP syslog receiver on 127.0.0.1:0: each datagram is one message.
pub struct UdpReceiver {
    addr: SocketAddr,
    log: Shared,
    stop: CancellationToken,
}

impl UdpReceiver {
    pub async fn start() -> UdpReceiver {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let log: Shared = Arc::default();
        let stop = CancellationToken::new();
        {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 70_000];
                loop {
                    let r = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = sock.recv_from(&mut buf) => r,
                    };
                    if let Ok((n, _)) = r {
                        log.lock().unwrap().messages.push(Received {
                            conn: 0,
                            bytes: buf[..n].to_vec(),
                        });
                    }
                }
            });
        }
        UdpReceiver { addr, log, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn messages(&self) -> Vec<Received> {
        self.log.lock().unwrap().messages.clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().messages.len()
    }
}

impl Drop for UdpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Shared parsing helpers
// ---------------------------------------------------------------------------------------------

fn is_printusascii(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// Parses `<PRIVAL>`: 1-3 digits, no leading zero (except `<0>`), 0..=191.
fn parse_pri(m: &[u8]) -> Result<(u8, usize), String> {
    if m.first() != Some(&b'<') {
        return Err("no '<' at the start of PRI".into());
    }
    let digits = m[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 3 {
        return Err(format!("PRIVAL of {digits} digits"));
    }
    if digits > 1 && m[1] == b'0' {
        return Err("PRIVAL with a leading zero".into());
    }
    if m.get(1 + digits) != Some(&b'>') {
        return Err("PRI not closed by '>'".into());
    }
    let v: u32 = std::str::from_utf8(&m[1..1 + digits])
        .unwrap()
        .parse()
        .unwrap();
    if v > 191 {
        return Err(format!("PRIVAL {v} over 191"));
    }
    Ok((v as u8, digits + 2))
}

fn two_digits(s: &[u8], what: &str) -> Result<u32, String> {
    if s.len() != 2 || !s.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "{what}: not two digits: {:?}",
            String::from_utf8_lossy(s)
        ));
    }
    Ok(u32::from(s[0] - b'0') * 10 + u32::from(s[1] - b'0'))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A checked RFC 5424 TIMESTAMP (not NILVALUE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp5424 {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// The fraction digits as written (1-6), if any.
    pub fraction: Option<String>,
    /// Offset from UTC in minutes; `Z` is `Some(0)` with `zulu`.
    pub offset_minutes: i32,
    pub zulu: bool,
}

impl Timestamp5424 {
    /// Milliseconds since the epoch (the fraction truncated to milliseconds).
    pub fn epoch_millis(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_minutes) * 60;
        let ms = self.fraction.as_deref().map_or(0, |f| {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse::<i64>().unwrap()
        });
        secs * 1000 + ms
    }
}

/// Checks `FULL-DATE "T" FULL-TIME` as RFC 5424 §6.2.3 restricts RFC 3339: upper-case `T` and
/// `Z`, at most 6 fraction digits, no leap second.
pub fn parse_timestamp_5424(s: &str) -> Result<Timestamp5424, String> {
    let b = s.as_bytes();
    let err = |m: &str| Err(format!("TIMESTAMP {s:?}: {m}"));
    if b.len() < 20 {
        return err("too short");
    }
    if !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' || b[7] != b'-' {
        return err("not YYYY-MM-DD");
    }
    let year: i64 = s[..4].parse().unwrap();
    let month = two_digits(&b[5..7], "month")?;
    let day = two_digits(&b[8..10], "day")?;
    if !(1..=12).contains(&month) {
        return err("month out of range");
    }
    if day == 0 || day > days_in_month(year, month) {
        return err("day out of range");
    }
    if b[10] != b'T' {
        return err("no upper-case 'T' between date and time");
    }
    if b[13] != b':' || b[16] != b':' {
        return err("not hh:mm:ss");
    }
    let hour = two_digits(&b[11..13], "hour")?;
    let minute = two_digits(&b[14..16], "minute")?;
    let second = two_digits(&b[17..19], "second")?;
    if hour > 23 || minute > 59 {
        return err("hour or minute out of range");
    }
    if second > 59 {
        return err("second out of range (leap seconds are not allowed)");
    }
    let mut i = 19;
    let mut fraction = None;
    if b[i] == b'.' {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return err("TIME-SECFRAC must have 1 to 6 digits");
        }
        fraction = Some(s[i + 1..i + 1 + n].to_owned());
        i += 1 + n;
    }
    let rest = &b[i..];
    let (offset_minutes, zulu) = match rest {
        [b'Z'] => (0, true),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = two_digits(&[*h1, *h2], "offset hour")?;
            let m = two_digits(&[*m1, *m2], "offset minute")?;
            if h > 23 || m > 59 {
                return err("offset out of range");
            }
            let v = (h * 60 + m) as i32;
            (if *sign == b'-' { -v } else { v }, false)
        }
        _ => return err("TIME-OFFSET must be 'Z' or +hh:mm / -hh:mm"),
    };
    Ok(Timestamp5424 {
        year,
        month,
        day,
        hour,
        minute,
        second,
        fraction,
        offset_minutes,
        zulu,
    })
}

/// Milliseconds since the epoch of an RFC 3339 time as the Event JSON writes it
/// (`2026-01-02T03:04:05.678Z`).
pub fn rfc3339_millis(s: &str) -> i64 {
    parse_timestamp_5424(s)
        .unwrap_or_else(|e| panic!("{e}"))
        .epoch_millis()
}

// ---------------------------------------------------------------------------------------------
// RFC 5424
// ---------------------------------------------------------------------------------------------

/// One SD-ELEMENT, param values unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

impl SdElement {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A strictly parsed RFC 5424 message. NILVALUE fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog5424 {
    pub pri: u8,
    pub facility: u8,
    pub severity: u8,
    pub version: u8,
    pub timestamp: Option<String>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    pub sd: Vec<SdElement>,
    /// MSG started with the UTF-8 BOM (removed from `msg`).
    pub bom: bool,
    /// MSG; `None` when the message ends after STRUCTURED-DATA.
    pub msg: Option<Vec<u8>>,
    /// Byte length of everything before MSG (HEADER SP STRUCTURED-DATA SP, BOM included).
    pub header_len: usize,
}

impl Syslog5424 {
    /// MSG as text; panics when absent or not UTF-8.
    pub fn msg_str(&self) -> &str {
        let m = self.msg.as_deref().expect("the message has a MSG part");
        std::str::from_utf8(m).unwrap_or_else(|e| panic!("MSG is not UTF-8 ({e}): {m:?}"))
    }

    pub fn sd_element(&self, id: &str) -> Option<&SdElement> {
        self.sd.iter().find(|e| e.id == id)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {what} at byte {}, found {:?}",
                self.pos,
                self.peek().map(char::from)
            ))
        }
    }

    /// Bytes up to (not including) the next SP or the end.
    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos] != b' ' {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }
}

/// NILVALUE or 1..=max PRINTUSASCII.
fn header_field(c: &mut Cursor<'_>, max: usize, name: &str) -> Result<Option<String>, String> {
    let t = c.token();
    if t == b"-" {
        return Ok(None);
    }
    if t.is_empty() {
        return Err(format!("{name} is empty (two spaces?)"));
    }
    if t.len() > max {
        return Err(format!("{name} is {} bytes, over {max}", t.len()));
    }
    if let Some(&bad) = t.iter().find(|&&b| !is_printusascii(b)) {
        return Err(format!("{name} holds a non-PRINTUSASCII byte {bad:#04x}"));
    }
    Ok(Some(String::from_utf8(t.to_vec()).unwrap()))
}

/// SD-NAME: 1*32 PRINTUSASCII except `=`, SP, `]`, `"`.
fn sd_name(c: &mut Cursor<'_>, what: &str) -> Result<String, String> {
    let start = c.pos;
    while let Some(b) = c.peek() {
        if is_printusascii(b) && !matches!(b, b'=' | b']' | b'"') {
            c.pos += 1;
        } else {
            break;
        }
    }
    let name = &c.b[start..c.pos];
    if name.is_empty() || name.len() > 32 {
        return Err(format!(
            "{what} must be 1 to 32 characters, got {:?} at byte {start}",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(String::from_utf8(name.to_vec()).unwrap())
}

fn sd_element(c: &mut Cursor<'_>) -> Result<SdElement, String> {
    c.expect(b'[', "'['")?;
    let id = sd_name(c, "SD-ID")?;
    if let Some((name, number)) = id.split_once('@') {
        if name.is_empty()
            || number.is_empty()
            || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            || !number.starts_with(|ch: char| ch.is_ascii_digit())
        {
            return Err(format!("SD-ID {id:?} is not name@<enterprise number>"));
        }
    }
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        match c.peek() {
            Some(b']') => {
                c.pos += 1;
                break;
            }
            Some(b' ') => c.pos += 1,
            other => {
                return Err(format!(
                    "expected SP or ']' in SD-ELEMENT {id:?} at byte {}, found {:?}",
                    c.pos,
                    other.map(char::from)
                ))
            }
        }
        let name = sd_name(c, "PARAM-NAME")?;
        c.expect(b'=', "'=' after PARAM-NAME")?;
        c.expect(b'"', "'\"' opening PARAM-VALUE")?;
        let mut value = Vec::new();
        loop {
            match c.peek() {
                None => return Err(format!("PARAM-VALUE of {name:?} not closed")),
                Some(b'"') => {
                    c.pos += 1;
                    break;
                }
                Some(b'\\') => match c.b.get(c.pos + 1) {
                    Some(&e @ (b'"' | b'\\' | b']')) => {
                        value.push(e);
                        c.pos += 2;
                    }
                    other => {
                        return Err(format!(
                            "PARAM-VALUE of {name:?}: backslash not escaped (followed by {:?}) at byte {}",
                            other.map(|&b| char::from(b)),
                            c.pos
                        ))
                    }
                },
                Some(b']') => {
                    return Err(format!(
                        "PARAM-VALUE of {name:?}: unescaped ']' at byte {}",
                        c.pos
                    ))
                }
                Some(b) => {
                    value.push(b);
                    c.pos += 1;
                }
            }
        }
        let value = String::from_utf8(value)
            .map_err(|e| format!("PARAM-VALUE of {name:?} is not UTF-8: {e}"))?;
        params.push((name, value));
    }
    Ok(SdElement { id, params })
}

/// Parses one RFC 5424 message (framing already removed) strictly.
pub fn parse_rfc5424(m: &[u8]) -> Result<Syslog5424, String> {
    let (pri, n) = parse_pri(m)?;
    let mut c = Cursor { b: m, pos: n };
    let v = c.token();
    if v != b"1" {
        return Err(format!("VERSION {:?} is not 1", String::from_utf8_lossy(v)));
    }
    c.expect(b' ', "SP after VERSION")?;
    let ts = c.token();
    let timestamp = if ts == b"-" {
        None
    } else {
        let s = std::str::from_utf8(ts).map_err(|_| "TIMESTAMP is not ASCII".to_owned())?;
        parse_timestamp_5424(s)?;
        Some(s.to_owned())
    };
    c.expect(b' ', "SP after TIMESTAMP")?;
    let hostname = header_field(&mut c, 255, "HOSTNAME")?;
    c.expect(b' ', "SP after HOSTNAME")?;
    let app_name = header_field(&mut c, 48, "APP-NAME")?;
    c.expect(b' ', "SP after APP-NAME")?;
    let procid = header_field(&mut c, 128, "PROCID")?;
    c.expect(b' ', "SP after PROCID")?;
    let msgid = header_field(&mut c, 32, "MSGID")?;
    c.expect(b' ', "SP after MSGID")?;
    let mut sd = Vec::new();
    if c.peek() == Some(b'-') {
        c.pos += 1;
    } else {
        if c.peek() != Some(b'[') {
            return Err(format!(
                "STRUCTURED-DATA must be '-' or start with '[' (byte {})",
                c.pos
            ));
        }
        let mut seen = HashSet::new();
        while c.peek() == Some(b'[') {
            let e = sd_element(&mut c)?;
            if !seen.insert(e.id.clone()) {
                return Err(format!("SD-ID {:?} appears twice", e.id));
            }
            sd.push(e);
        }
    }
    let (bom, msg, header_len) = if c.pos == m.len() {
        (false, None, c.pos)
    } else {
        c.expect(b' ', "SP between STRUCTURED-DATA and MSG")?;
        let rest = &m[c.pos..];
        match rest.strip_prefix(b"\xEF\xBB\xBF") {
            Some(utf8) => {
                std::str::from_utf8(utf8)
                    .map_err(|e| format!("MSG after a BOM is not UTF-8: {e}"))?;
                (true, Some(utf8.to_vec()), c.pos + 3)
            }
            None => (false, Some(rest.to_vec()), c.pos),
        }
    };
    Ok(Syslog5424 {
        pri,
        facility: pri / 8,
        severity: pri % 8,
        version: 1,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd,
        bom,
        msg,
        header_len,
    })
}

// ---------------------------------------------------------------------------------------------
// RFC 3164
// ---------------------------------------------------------------------------------------------

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A strictly parsed RFC 3164 message: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[pid]: MSG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog3164 {
    pub pri: u8,
    pub facility: u8,
    pub severity: u8,
    /// `Mmm dd hh:mm:ss` as written.
    pub timestamp: String,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub hostname: String,
    pub tag: String,
    pub pid: Option<String>,
    pub msg: Vec<u8>,
    /// Byte length of everything before MSG.
    pub header_len: usize,
}

impl Syslog3164 {
    pub fn msg_str(&self) -> &str {
        std::str::from_utf8(&self.msg)
            .unwrap_or_else(|e| panic!("MSG is not UTF-8 ({e}): {:?}", self.msg))
    }
}

/// Parses one RFC 3164 message strictly (the TAG is 1-32 letters, digits, `_`, `-`, `.`,
/// optionally followed by `[pid]`, then `: `).
pub fn parse_rfc3164(m: &[u8]) -> Result<Syslog3164, String> {
    let (pri, n) = parse_pri(m)?;
    let rest = &m[n..];
    if rest.len() < 16 {
        return Err("too short for a TIMESTAMP".into());
    }
    let ts = &rest[..15];
    let mon = std::str::from_utf8(&ts[..3]).map_err(|_| "month is not ASCII".to_owned())?;
    let month = MONTHS
        .iter()
        .position(|&x| x == mon)
        .ok_or_else(|| format!("month {mon:?} is not Jan..Dec"))? as u32
        + 1;
    if ts[3] != b' ' {
        return Err("no SP after the month".into());
    }
    let day = match (ts[4], ts[5]) {
        (b' ', d @ b'1'..=b'9') => u32::from(d - b'0'),
        (d1 @ b'1'..=b'3', d2) if d2.is_ascii_digit() => {
            u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0')
        }
        _ => {
            return Err(format!(
                "day {:?} is not space-padded 1..31",
                String::from_utf8_lossy(&ts[4..6])
            ))
        }
    };
    if day > 31 {
        return Err(format!("day {day} out of range"));
    }
    if ts[6] != b' ' || ts[9] != b':' || ts[12] != b':' {
        return Err(format!(
            "TIMESTAMP {:?} is not 'Mmm dd hh:mm:ss'",
            String::from_utf8_lossy(ts)
        ));
    }
    let hour = two_digits(&ts[7..9], "hour")?;
    let minute = two_digits(&ts[10..12], "minute")?;
    let second = two_digits(&ts[13..15], "second")?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time out of range".into());
    }
    let mut c = Cursor { b: m, pos: n + 15 };
    c.expect(b' ', "SP after TIMESTAMP")?;
    let host = c.token();
    if host.is_empty() || !host.iter().all(|&b| is_printusascii(b)) {
        return Err(format!(
            "HOSTNAME {:?} is not printable ASCII",
            String::from_utf8_lossy(host)
        ));
    }
    c.expect(b' ', "SP after HOSTNAME")?;
    let start = c.pos;
    while c
        .peek()
        .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        c.pos += 1;
    }
    let tag = &m[start..c.pos];
    if tag.is_empty() || tag.len() > 32 {
        return Err(format!(
            "TAG must be 1 to 32 alphanumeric characters, got {:?}",
            String::from_utf8_lossy(tag)
        ));
    }
    let mut pid = None;
    if c.peek() == Some(b'[') {
        c.pos += 1;
        let p0 = c.pos;
        while c.peek().is_some_and(|b| b != b']' && is_printusascii(b)) {
            c.pos += 1;
        }
        pid = Some(String::from_utf8(m[p0..c.pos].to_vec()).unwrap());
        c.expect(b']', "']' closing the pid")?;
    }
    c.expect(b':', "':' after the TAG")?;
    c.expect(b' ', "SP after 'TAG:'")?;
    Ok(Syslog3164 {
        pri,
        facility: pri / 8,
        severity: pri % 8,
        timestamp: String::from_utf8(ts.to_vec()).unwrap(),
        month,
        day,
        hour,
        minute,
        second,
        hostname: String::from_utf8(host.to_vec()).unwrap(),
        tag: String::from_utf8(tag.to_vec()).unwrap(),
        pid,
        msg: m[c.pos..].to_vec(),
        header_len: c.pos,
    })
}

// ---------------------------------------------------------------------------------------------
// LEEF 2.0
// ---------------------------------------------------------------------------------------------

/// A strictly parsed LEEF 2.0 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leef {
    pub vendor: String,
    pub product: String,
    pub product_version: String,
    pub event_id: String,
    /// The delimiter field as written (`^`, `x09`, ...).
    pub delimiter_field: String,
    pub delimiter: char,
    pub attrs: Vec<(String, String)>,
    /// Byte length of the header (through the `|` before the attributes).
    pub header_len: usize,
}

impl Leef {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn keys(&self) -> Vec<&str> {
        self.attrs.iter().map(|(k, _)| k.as_str()).collect()
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The first C0 control, DEL or Unicode line break (U+0085, U+2028, U+2029) in `s`: raw, they
/// cut or split messages in receivers and corrupt consoles, so LEEF and CEF bodies carry none.
pub fn first_control(s: &str) -> Option<(usize, char)> {
    s.char_indices()
        .find(|&(_, c)| c.is_ascii_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}'))
}

/// Parses `LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|k=v<d>k=v...` strictly.
pub fn parse_leef(s: &str) -> Result<Leef, String> {
    let rest = s
        .strip_prefix("LEEF:2.0|")
        .ok_or_else(|| format!("does not start with 'LEEF:2.0|': {:.40?}", s))?;
    let parts: Vec<&str> = rest.splitn(6, '|').collect();
    if parts.len() != 6 {
        return Err(format!(
            "LEEF header needs 6 '|'-separated fields, got {}",
            parts.len()
        ));
    }
    for (name, v) in ["vendor", "product", "version", "event id"]
        .iter()
        .zip(&parts[..4])
    {
        if v.is_empty() {
            return Err(format!("LEEF {name} is empty"));
        }
        if v.contains(['\r', '\n']) {
            return Err(format!("LEEF {name} holds CR or LF: {v:?}"));
        }
        if let Some((at, c)) = first_control(v) {
            return Err(format!(
                "LEEF {name} holds control {c:?} at byte {at}: {v:?}"
            ));
        }
    }
    let dfield = parts[4];
    let delimiter = if dfield.chars().count() == 1 {
        dfield.chars().next().unwrap()
    } else {
        let hex = dfield
            .strip_prefix("0x")
            .or_else(|| dfield.strip_prefix('x'))
            .ok_or_else(|| format!("delimiter field {dfield:?} is not one character or x<hex>"))?;
        if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("delimiter field {dfield:?} is not valid hex"));
        }
        char::from_u32(u32::from_str_radix(hex, 16).unwrap())
            .ok_or_else(|| format!("delimiter field {dfield:?} is not a character"))?
    };
    if delimiter == '=' || delimiter == '|' || delimiter.is_ascii_alphanumeric() {
        return Err(format!("delimiter {delimiter:?} is ambiguous"));
    }
    let attrs_text = parts[5];
    let header_len = s.len() - attrs_text.len();
    let mut attrs: Vec<(String, String)> = Vec::new();
    if !attrs_text.is_empty() {
        for a in attrs_text.split(delimiter) {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("attribute without '=': {a:?}"))?;
            if k.is_empty() || !k.bytes().all(is_key_byte) {
                return Err(format!("attribute key {k:?} is not [A-Za-z0-9_]+"));
            }
            if v.contains(['\r', '\n']) {
                return Err(format!("value of {k} holds CR or LF: {v:?}"));
            }
            if let Some((at, c)) = first_control(v) {
                return Err(format!(
                    "value of {k} holds control {c:?} at byte {at}: {v:?}"
                ));
            }
            if attrs.iter().any(|(k2, _)| k2 == k) {
                return Err(format!("attribute {k} appears twice"));
            }
            attrs.push((k.to_owned(), v.to_owned()));
        }
    }
    Ok(Leef {
        vendor: parts[0].to_owned(),
        product: parts[1].to_owned(),
        product_version: parts[2].to_owned(),
        event_id: parts[3].to_owned(),
        delimiter_field: dfield.to_owned(),
        delimiter,
        attrs,
        header_len,
    })
}

// ---------------------------------------------------------------------------------------------
// CEF
// ---------------------------------------------------------------------------------------------

/// A strictly parsed CEF event; header fields and extension values unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub product_version: String,
    pub class_id: String,
    pub name: String,
    pub severity: String,
    pub ext: Vec<(String, String)>,
    /// Byte length of the header (through the 7th unescaped `|`).
    pub header_len: usize,
}

impl Cef {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.ext
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn keys(&self) -> Vec<&str> {
        self.ext.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Parses `CEF:Version|Vendor|Product|Version|ClassID|Name|Severity|Extension` strictly.
pub fn parse_cef(s: &str) -> Result<Cef, String> {
    let rest = s
        .strip_prefix("CEF:")
        .ok_or_else(|| format!("does not start with 'CEF:': {:.40?}", s))?;
    if let Some((at, c)) = first_control(s) {
        return Err(format!("CEF body holds control {c:?} at byte {at}"));
    }
    let b = rest.as_bytes();
    let mut fields: Vec<String> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut i = 0;
    while fields.len() < 7 {
        match b.get(i) {
            None => {
                return Err(format!(
                    "CEF header needs 7 unescaped '|', found {}",
                    fields.len()
                ))
            }
            Some(b'\\') => match b.get(i + 1) {
                Some(&e @ (b'|' | b'\\')) => {
                    cur.push(e);
                    i += 2;
                }
                other => {
                    return Err(format!(
                        "CEF header: invalid escape '\\{}' at byte {i}",
                        other.map_or(String::new(), |&c| char::from(c).to_string())
                    ))
                }
            },
            Some(b'|') => {
                fields.push(String::from_utf8(std::mem::take(&mut cur)).unwrap());
                i += 1;
            }
            Some(b'\r' | b'\n') => return Err("CEF header holds CR or LF".into()),
            Some(&c) => {
                cur.push(c);
                i += 1;
            }
        }
    }
    let header_len = 4 + i;
    let ext = parse_cef_extension(&rest[i..])?;
    let mut f = fields.into_iter();
    let mut next = || f.next().unwrap();
    Ok(Cef {
        version: next(),
        vendor: next(),
        product: next(),
        product_version: next(),
        class_id: next(),
        name: next(),
        severity: next(),
        ext,
        header_len,
    })
}

/// Splits a CEF extension into unescaped `key=value` pairs.
pub fn parse_cef_extension(s: &str) -> Result<Vec<(String, String)>, String> {
    let b = s.as_bytes();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    if b.is_empty() {
        return Ok(out);
    }
    loop {
        let ks = i;
        while i < b.len() && is_key_byte(b[i]) {
            i += 1;
        }
        if i == ks || b.get(i) != Some(&b'=') {
            return Err(format!(
                "expected key= at byte {ks} of the extension: {:?}",
                &s[ks..s.len().min(ks + 40)]
            ));
        }
        let key = s[ks..i].to_owned();
        i += 1;
        let mut v: Vec<u8> = Vec::new();
        let mut more = false;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    let e = match b.get(i + 1) {
                        Some(b'\\') => b'\\',
                        Some(b'=') => b'=',
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        other => {
                            return Err(format!(
                                "value of {key}: invalid escape '\\{}' at byte {i}",
                                other.map_or(String::new(), |&c| char::from(c).to_string())
                            ))
                        }
                    };
                    v.push(e);
                    i += 2;
                }
                b'=' => return Err(format!("value of {key}: unescaped '=' at byte {i}")),
                b'\n' | b'\r' => return Err(format!("value of {key}: raw CR or LF at byte {i}")),
                b' ' => {
                    let mut j = i + 1;
                    while j < b.len() && is_key_byte(b[j]) {
                        j += 1;
                    }
                    if j > i + 1 && b.get(j) == Some(&b'=') {
                        i += 1;
                        more = true;
                        break;
                    }
                    v.push(b' ');
                    i += 1;
                }
                c => {
                    v.push(c);
                    i += 1;
                }
            }
        }
        let v = String::from_utf8(v).map_err(|e| format!("value of {key} is not UTF-8: {e}"))?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("extension key {key} appears twice"));
        }
        out.push((key, v));
        if !more {
            return Ok(out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parsers' own tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const BOM: &str = "\u{feff}";

    #[test]
    fn rfc5424_examples_parse() {
        // RFC 5424 §6.5, example 1 (with its BOM).
        let m = format!(
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - {BOM}'su root' failed for lonvick on /dev/pts/8"
        );
        let p = parse_rfc5424(m.as_bytes()).unwrap();
        assert_eq!((p.pri, p.facility, p.severity), (34, 4, 2));
        assert_eq!(p.timestamp.as_deref(), Some("2003-10-11T22:14:15.003Z"));
        assert_eq!(p.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(p.app_name.as_deref(), Some("su"));
        assert_eq!(p.procid, None);
        assert_eq!(p.msgid.as_deref(), Some("ID47"));
        assert!(p.sd.is_empty());
        assert!(p.bom);
        assert_eq!(p.msg_str(), "'su root' failed for lonvick on /dev/pts/8");

        // Example 2: an offset and microseconds, an IP as HOSTNAME, no BOM.
        let p = parse_rfc5424(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nothing.",
        )
        .unwrap();
        assert_eq!((p.facility, p.severity), (20, 5));
        assert_eq!(p.procid.as_deref(), Some("8710"));
        assert_eq!(p.msgid, None);
        assert!(!p.bom);
        assert_eq!(p.msg_str(), "%% It's time to make the do-nothing.");
        let ts = parse_timestamp_5424(p.timestamp.as_deref().unwrap()).unwrap();
        assert_eq!(ts.offset_minutes, -7 * 60);
        assert_eq!(ts.epoch_millis(), 1_061_727_255_000);

        // Example 3: structured data and a message.
        let m = format!(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] {BOM}An application event log entry..."
        );
        let p = parse_rfc5424(m.as_bytes()).unwrap();
        assert_eq!(p.sd.len(), 1);
        assert_eq!(p.sd[0].id, "exampleSDID@32473");
        assert_eq!(
            p.sd[0].params,
            [
                ("iut".to_owned(), "3".to_owned()),
                ("eventSource".to_owned(), "Application".to_owned()),
                ("eventID".to_owned(), "1011".to_owned())
            ]
        );
        assert_eq!(p.msg_str(), "An application event log entry...");

        // Example 4: two SD-ELEMENTs and no MSG.
        let p = parse_rfc5424(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
        )
        .unwrap();
        assert_eq!(p.sd.len(), 2);
        assert_eq!(
            p.sd_element("examplePriority@32473").unwrap().get("class"),
            Some("high")
        );
        assert_eq!(p.msg, None);

        // All NILVALUEs, escapes in a PARAM-VALUE, an empty PARAM-VALUE, an empty MSG.
        let p = parse_rfc5424(br#"<0>1 - - - - - [x@1 a="q\"b\\c\]d" e=""] "#).unwrap();
        assert_eq!(p.pri, 0);
        assert_eq!(p.timestamp, None);
        assert_eq!(p.hostname, None);
        assert_eq!(p.sd[0].get("a"), Some(r#"q"b\c]d"#));
        assert_eq!(p.sd[0].get("e"), Some(""));
        assert_eq!(p.msg.as_deref(), Some(&b""[..]));
        // Non-ASCII in a PARAM-VALUE and in MSG.
        let p = parse_rfc5424(
            "<191>1 1985-04-12T23:20:50.52Z h a p m [a@9 v=\"日本 ü\"] Zugriff – 😀".as_bytes(),
        )
        .unwrap();
        assert_eq!(p.severity, 7);
        assert_eq!(p.sd[0].get("v"), Some("日本 ü"));
        assert_eq!(p.msg_str(), "Zugriff – 😀");
    }

    #[test]
    fn rfc5424_timestamps() {
        for ok in [
            "1985-04-12T23:20:50.52Z",
            "1985-04-12T19:20:50.52-04:00",
            "2003-10-11T22:14:15.003Z",
            "2003-08-24T05:14:15.000003-07:00",
            "2024-02-29T00:00:00Z",
            "2026-01-02T03:04:05.678+05:30",
        ] {
            parse_timestamp_5424(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // RFC 5424 §6.2.3.1 examples 5 and 6, and other breaches.
        for bad in [
            "1990-12-31T23:59:60Z",
            "2003-08-24T05:14:15.000000003-07:00",
            "2003-10-11t22:14:15.003Z",
            "2003-10-11T22:14:15.003z",
            "2003-10-11T22:14:15.003",
            "2003-10-11T22:14:15.Z",
            "2003-10-11 22:14:15Z",
            "2023-02-29T00:00:00Z",
            "2003-13-11T22:14:15Z",
            "2003-10-11T24:14:15Z",
            "2003-10-11T22:14:15+0700",
            "2003-10-11T22:14:15+07:00Z",
        ] {
            assert!(parse_timestamp_5424(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00.001Z"), 1);
        assert_eq!(
            rfc3339_millis("2023-11-14T22:15:00.000Z"),
            1_700_000_100_000
        );
        assert_eq!(rfc3339_millis("1969-12-31T23:59:59.999Z"), -1);
    }

    #[test]
    fn rfc5424_violations_are_refused() {
        let long = |n: usize| "x".repeat(n);
        let cases: Vec<(String, &str)> = vec![
            ("<192>1 - - - - - -".into(), "PRI over 191"),
            ("<034>1 - - - - - -".into(), "PRI leading zero"),
            ("34>1 - - - - - -".into(), "no '<'"),
            ("<34>2 - - - - - -".into(), "VERSION 2"),
            ("<34> 1 - - - - - -".into(), "SP before VERSION"),
            ("<34>1  - - - - -".into(), "two spaces"),
            ("<34>1 - - - - -".into(), "missing SD"),
            (format!("<34>1 - {} - - - -", long(256)), "HOSTNAME > 255"),
            (format!("<34>1 - h {} - - -", long(49)), "APP-NAME > 48"),
            (format!("<34>1 - h a {} - -", long(129)), "PROCID > 128"),
            (format!("<34>1 - h a - {} -", long(33)), "MSGID > 32"),
            ("<34>1 - h\u{e9} a - - -".into(), "non-ASCII HOSTNAME"),
            ("<34>1 - - - - - -msg".into(), "no SP before MSG"),
            ("<34>1 - - - - - [a=b@1 x=\"1\"]".into(), "'=' in SD-ID"),
            (format!("<34>1 - - - - - [{}@1]", long(31)), "SD-ID > 32"),
            (
                "<34>1 - - - - - [a@x]".into(),
                "SD-ID enterprise not numeric",
            ),
            (
                "<34>1 - - - - - [a@1 x=\"1\"][a@1 y=\"2\"]".into(),
                "duplicate SD-ID",
            ),
            ("<34>1 - - - - - [a@1 x=\"q\"q\"]".into(), "unescaped quote"),
            ("<34>1 - - - - - [a@1 x=\"a]b\"]".into(), "unescaped ]"),
            (
                "<34>1 - - - - - [a@1 x=\"a\\nb\"]".into(),
                "unescaped backslash",
            ),
            ("<34>1 - - - - - [a@1 x=1]".into(), "unquoted value"),
            ("<34>1 - - - - - [a@1  x=\"1\"]".into(), "two spaces in SD"),
            ("<34>1 - - - - - [a@1 x=\"1\"".into(), "unclosed SD-ELEMENT"),
            ("<34>1 - - - - - [a@1 x=\"1]".into(), "unclosed value"),
            ("<34>1 1990-12-31T23:59:60Z - - - - -".into(), "leap second"),
        ];
        for (m, why) in cases {
            assert!(
                parse_rfc5424(m.as_bytes()).is_err(),
                "{why}: {m:?} accepted"
            );
        }
        // A PARAM-VALUE that is not UTF-8, and a BOM followed by bytes that are not.
        assert!(parse_rfc5424(b"<34>1 - - - - - [a@1 x=\"\xff\"]").is_err());
        assert!(parse_rfc5424(b"<34>1 - - - - - - \xEF\xBB\xBF\xff").is_err());
    }

    #[test]
    fn rfc3164_parses_and_refuses() {
        let p = parse_rfc3164(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        )
        .unwrap();
        assert_eq!((p.facility, p.severity), (4, 2));
        assert_eq!(p.timestamp, "Oct 11 22:14:15");
        assert_eq!(
            (p.month, p.day, p.hour, p.minute, p.second),
            (10, 11, 22, 14, 15)
        );
        assert_eq!(p.hostname, "mymachine");
        assert_eq!(p.tag, "su");
        assert_eq!(p.pid, None);
        assert_eq!(p.msg_str(), "'su root' failed for lonvick on /dev/pts/8");
        let p = parse_rfc3164(b"<13>Feb  5 17:32:18 10.0.0.99 my-app_1[123]: {\"a\":1}").unwrap();
        assert_eq!(p.day, 5);
        assert_eq!(p.tag, "my-app_1");
        assert_eq!(p.pid.as_deref(), Some("123"));
        assert_eq!(p.msg_str(), "{\"a\":1}");
        for bad in [
            "<34>Oct 1 22:14:15 host su: x",
            "<34>Oct 01 22:14:15 host su: x",
            "<34>oct 11 22:14:15 host su: x",
            "<34>Foo 11 22:14:15 host su: x",
            "<34>Oct 11 24:14:15 host su: x",
            "<34>Oct 11 22:14:15 host su x",
            "<34>Oct 11 22:14:15 host su:x",
            "<34>Oct 11 22:14:15  su: x",
            "<34>2003-10-11T22:14:15Z host su: x",
            "<200>Oct 11 22:14:15 host su: x",
        ] {
            assert!(parse_rfc3164(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        let long_tag = format!("<34>Oct 11 22:14:15 host {}: x", "t".repeat(33));
        assert!(parse_rfc3164(long_tag.as_bytes()).is_err());
    }

    #[test]
    fn leef_parses_and_refuses() {
        let p = parse_leef(
            "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=192.0.2.0^dst=172.50.123.1^sev=5^cat=anomaly^msg=a=b|c\\d",
        )
        .unwrap();
        assert_eq!(p.vendor, "Lancope");
        assert_eq!(p.product, "StealthWatch");
        assert_eq!(p.product_version, "1.0");
        assert_eq!(p.event_id, "41");
        assert_eq!(p.delimiter, '^');
        assert_eq!(p.keys(), ["src", "dst", "sev", "cat", "msg"]);
        assert_eq!(p.get("msg"), Some("a=b|c\\d"));
        assert_eq!(
            p.header_len,
            "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|".len()
        );
        let p = parse_leef("LEEF:2.0|V|P|1|E|x09|a=1\tb=x^y z\tc=日本").unwrap();
        assert_eq!(p.delimiter, '\t');
        assert_eq!(p.delimiter_field, "x09");
        assert_eq!(p.get("b"), Some("x^y z"));
        assert_eq!(p.get("c"), Some("日本"));
        let p = parse_leef("LEEF:2.0|V|P|1|E|0x5e|a=1^b=2").unwrap();
        assert_eq!(p.delimiter, '^');
        let p = parse_leef("LEEF:2.0|V|P|1|E|^|").unwrap();
        assert!(p.attrs.is_empty());
        for bad in [
            "LEEF:1.0|V|P|1|E|a=1",
            "LEEF:2.0|V|P|1|E",
            "LEEF:2.0|V|P|1|^|a=1",
            "LEEF:2.0||P|1|E|^|a=1",
            "LEEF:2.0|V|P|1|E|ab|a=1",
            "LEEF:2.0|V|P|1|E|=|a=1",
            "LEEF:2.0|V|P|1|E|^|de v=1",
            "LEEF:2.0|V|P|1|E|^|a=1^^b=2",
            "LEEF:2.0|V|P|1|E|^|a=1^",
            "LEEF:2.0|V|P|1|E|^|a=1^b",
            "LEEF:2.0|V|P|1|E|^|=1",
            "LEEF:2.0|V|P|1|E|^|a=1^a=2",
            "LEEF:2.0|V|P|1|E|^|a=x\ny",
            "LEEF:2.0|V|P|1|E|^|k-y=1",
        ] {
            assert!(parse_leef(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cef_parses_and_refuses() {
        // Examples from the ArcSight CEF guide.
        let p = parse_cef("CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232").unwrap();
        assert_eq!(p.version, "0");
        assert_eq!(p.vendor, "Security");
        assert_eq!(p.product, "threatmanager");
        assert_eq!(p.product_version, "1.0");
        assert_eq!(p.class_id, "100");
        assert_eq!(p.name, "worm successfully stopped");
        assert_eq!(p.severity, "10");
        assert_eq!(p.keys(), ["src", "dst", "spt"]);
        assert_eq!(p.get("spt"), Some("1232"));
        let p = parse_cef("CEF:0|security|threatmanager|1.0|100|detected a \\| in message|10|src=10.0.0.1 act=blocked a | dst=1.1.1.1").unwrap();
        assert_eq!(p.name, "detected a | in message");
        assert_eq!(p.get("act"), Some("blocked a |"));
        let p = parse_cef("CEF:0|security|threatmanager|1.0|100|detected a \\\\ in packet|10|src=10.0.0.1 act=blocked a \\\\ dst=1.1.1.1").unwrap();
        assert_eq!(p.name, "detected a \\ in packet");
        assert_eq!(p.get("act"), Some("blocked a \\"));
        let p = parse_cef("CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 act=blocked a \\= dst=1.1.1.1").unwrap();
        assert_eq!(p.name, "detected a = in message");
        assert_eq!(p.get("act"), Some("blocked a ="));
        let p = parse_cef("CEF:0|V|P|1|C|N|3|msg=Detected a threat.\\nNo action needed.\\r cs1Label=x y cs1=日本 ü").unwrap();
        assert_eq!(
            p.get("msg"),
            Some("Detected a threat.\nNo action needed.\r")
        );
        assert_eq!(p.get("cs1Label"), Some("x y"));
        assert_eq!(p.get("cs1"), Some("日本 ü"));
        let p = parse_cef("CEF:0|V|P|1|C|N|3|").unwrap();
        assert!(p.ext.is_empty());
        assert_eq!(p.header_len, "CEF:0|V|P|1|C|N|3|".len());
        for bad in [
            "CEF:0|V|P|1|C|N|3",
            "CEF:0|V|P|1|C|N",
            "CEF:0|V|P|1|C|N\\x|3|a=1",
            "CEF:0|V|P|1|C|N\n|3|a=1",
            "CEF:0|V|P|1|C|N|3|a=b=c",
            "CEF:0|V|P|1|C|N|3|a=b\\c",
            "CEF:0|V|P|1|C|N|3|a=b\\",
            "CEF:0|V|P|1|C|N|3|a=b\nc",
            "CEF:0|V|P|1|C|N|3|=b",
            "CEF:0|V|P|1|C|N|3| a=b",
            "CEF:0|V|P|1|C|N|3|a=1 a=2",
            "LEEF:2.0|V|P|1|C|^|a=1",
        ] {
            assert!(parse_cef(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn octet_counting_is_strict() {
        let mut buf = b"5 hello3 abc1".to_vec();
        let d = take_octet_counted(&mut buf);
        let frames: Vec<_> = d.frames.iter().map(|(f, _)| f.as_slice()).collect();
        assert_eq!(frames, [&b"hello"[..], b"abc"]);
        assert!(d.fatal.is_none());
        assert_eq!(buf, b"1", "an incomplete frame stays");
        buf.extend_from_slice(b"1 0123456789");
        let d = take_octet_counted(&mut buf);
        assert_eq!(d.frames.len(), 0, "still one byte short");
        buf.extend_from_slice(b"x");
        let d = take_octet_counted(&mut buf);
        assert_eq!(d.frames[0].0, b"0123456789x");
        assert!(buf.is_empty());
        for bad in [
            &b"05 hello"[..],
            b"0 ",
            b"5hello",
            b"5  hello",
            b"x5 hello",
            b"\n5 hello",
        ] {
            let mut b = bad.to_vec();
            assert!(take_octet_counted(&mut b).fatal.is_some(), "{bad:?}");
        }
        let mut b = b"a\nb\r\n\nc".to_vec();
        let d = take_lines(&mut b);
        assert_eq!(d.frames.len(), 3);
        assert!(d.frames[0].1.is_none());
        assert!(d.frames[1].1.is_some(), "CR");
        assert!(d.frames[2].1.is_some(), "empty");
        assert_eq!(b, b"c");
    }
}
