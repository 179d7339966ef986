//! Baseline for `benches/load.sh`: the least a webhook receiver can do. A bare hyper server that
//! reads the body, checks an HMAC-SHA256 hex signature in `X-Signature` (pre-keyed, constant
//! time), splits the JSON array into borrowed raw values, and answers 202. No routing, no
//! normalization, no queue. siemgate's whole ingest path is measured against it in the same run.
//!
//! Usage: cargo run --release --example bare_ingest -- 127.0.0.1:9000 SECRET

use std::convert::Infallible;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::value::RawValue;
use sha2::Sha256;

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

async fn handle(mac: Hmac<Sha256>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let sig = req
        .headers()
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok());
    let Ok(body) = Limited::new(req.into_body(), 1 << 20).collect().await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let body = body.to_bytes();
    let mut mac = mac;
    mac.update(&body);
    match sig {
        Some(sig) if mac.verify_slice(&sig).is_ok() => {}
        _ => return answer(StatusCode::FORBIDDEN),
    }
    match serde_json::from_slice::<Vec<&RawValue>>(&body) {
        Ok(items) if !items.is_empty() => answer(StatusCode::ACCEPTED),
        _ => answer(StatusCode::BAD_REQUEST),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let secret = args.next().unwrap_or_else(|| "secret".to_owned());
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Err(std::io::Error::other("bad key"));
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare_ingest listening on {addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let mac = mac.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let mac = mac.clone();
                async move { Ok::<_, Infallible>(handle(mac, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
