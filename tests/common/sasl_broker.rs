//! A Kafka broker on 127.0.0.1 that refuses every SASL login, for the tests of wrong
//! credentials: librdkafka's mock cluster speaks no SASL (its handlers stop at the data and
//! group APIs), so this one speaks just enough of the Kafka protocol
//! (<https://kafka.apache.org/protocol>) for a client to try to authenticate:
//!
//! * `ApiVersions` (key 18, versions 0-3; v3 is a flexible version, its response header stays
//!   v0 as the guide says for this API), advertising itself, `SaslHandshake` 0-1 and
//!   `SaslAuthenticate` 0-1, so a client uses the handshake then framed authentication;
//! * `SaslHandshake` (key 17): error 0 and the mechanisms `PLAIN`, `SCRAM-SHA-256` and
//!   `SCRAM-SHA-512` (33, UNSUPPORTED_SASL_MECHANISM, for any other);
//! * `SaslAuthenticate` (key 36): error 58, SASL_AUTHENTICATION_FAILED, with the message a
//!   Kafka broker gives, then the connection is closed, as a broker does.
//!
//! Anything else closes the connection. Frames are bounded ([`MAX_FRAME`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request read; a client's first requests are a few hundred bytes.
const MAX_FRAME: usize = 64 * 1024;
/// What the broker says when it refuses a login (a Kafka broker's own words).
pub const REFUSAL: &str = "Authentication failed: Invalid username or password";

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
const UNSUPPORTED_VERSION: i16 = 35;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// The broker's listener and what it saw.
pub struct SaslRefusingBroker {
    addr: SocketAddr,
    refusals: Arc<AtomicUsize>,
    mechanisms: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SaslRefusingBroker {
    pub async fn start() -> SaslRefusingBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusals = Arc::new(AtomicUsize::new(0));
        let mechanisms = Arc::new(Mutex::new(Vec::new()));
        let (r, m) = (refusals.clone(), mechanisms.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, m) = (r.clone(), m.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &r, &m).await;
                });
            }
        });
        SaslRefusingBroker {
            addr,
            refusals,
            mechanisms,
            task,
        }
    }

    /// The `bootstrap.servers` value.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Logins refused so far.
    pub fn refusals(&self) -> usize {
        self.refusals.load(Ordering::Relaxed)
    }

    /// The mechanisms clients asked for, in order.
    pub fn mechanisms(&self) -> Vec<String> {
        self.mechanisms.lock().unwrap().clone()
    }
}

impl Drop for SaslRefusingBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers one connection's requests until it closes, a login is refused, or a request is not
/// one of the three.
async fn serve(
    mut stream: TcpStream,
    refusals: &AtomicUsize,
    mechanisms: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    loop {
        let size = stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (8..=MAX_FRAME).contains(s));
        let Some(size) = size else {
            return Ok(());
        };
        let mut frame = vec![0u8; size];
        stream.read_exact(&mut frame).await?;
        let mut r = Reader(&frame);
        let (Some(key), Some(version), Some(correlation)) = (r.i16(), r.i16(), r.i32()) else {
            return Ok(());
        };
        // Request header v1 and v2 both go on with the client id (a nullable string); v2 adds
        // tagged fields, which nothing here reads past.
        r.nullable_string();
        let mut body = Vec::new();
        let close = match key {
            API_VERSIONS => {
                api_versions(version, &mut body);
                false
            }
            SASL_HANDSHAKE if version <= 1 => {
                let asked = r.nullable_string().unwrap_or_default();
                let known = MECHANISMS.contains(&asked.as_str());
                mechanisms.lock().unwrap().push(asked);
                put_i16(
                    &mut body,
                    if known { 0 } else { UNSUPPORTED_SASL_MECHANISM },
                );
                put_i32(&mut body, MECHANISMS.len() as i32);
                for m in MECHANISMS {
                    put_string(&mut body, m);
                }
                false
            }
            SASL_AUTHENTICATE if version <= 1 => {
                put_i16(&mut body, SASL_AUTHENTICATION_FAILED);
                put_string(&mut body, REFUSAL);
                // auth_bytes: empty.
                put_i32(&mut body, 0);
                if version >= 1 {
                    // session_lifetime_ms
                    body.extend_from_slice(&0i64.to_be_bytes());
                }
                refusals.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => return Ok(()),
        };
        // Response header v0: the correlation id.
        let mut out = Vec::with_capacity(8 + body.len());
        put_i32(&mut out, (4 + body.len()) as i32);
        put_i32(&mut out, correlation);
        out.extend_from_slice(&body);
        stream.write_all(&out).await?;
        if close {
            stream.flush().await?;
            return Ok(());
        }
    }
}

/// The ApiVersions response body for `version`: v0 `error_code [api_key min max]`, v1-v2 add
/// `throttle_time_ms`, v3 is flexible (compact array, tagged fields). A version past 3 is
/// answered as v0 with UNSUPPORTED_VERSION and the versions known, which makes a client ask
/// again with one of them.
fn api_versions(version: i16, body: &mut Vec<u8>) {
    let apis: [(i16, i16, i16); 3] = [
        (API_VERSIONS, 0, 3),
        (SASL_HANDSHAKE, 0, 1),
        (SASL_AUTHENTICATE, 0, 1),
    ];
    let (version, error) = if (0..=3).contains(&version) {
        (version, 0)
    } else {
        (0, UNSUPPORTED_VERSION)
    };
    put_i16(body, error);
    if version >= 3 {
        body.push(apis.len() as u8 + 1);
    } else {
        put_i32(body, apis.len() as i32);
    }
    for (key, min, max) in apis {
        put_i16(body, key);
        put_i16(body, min);
        put_i16(body, max);
        if version >= 3 {
            body.push(0);
        }
    }
    if version >= 1 {
        put_i32(body, 0);
    }
    if version >= 3 {
        body.push(0);
    }
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_i16(out, s.len() as i16);
    out.extend_from_slice(s.as_bytes());
}

/// Reads big-endian fields off a request; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    /// A string with an int16 length (-1: null).
    fn nullable_string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        let s = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(String::from_utf8_lossy(s).into_owned())
    }
}
