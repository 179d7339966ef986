//! A loopback Splunk HEC collector for `benches/load.sh` that answers at once: every POST is
//! read whole and answered `200 {"text":"Success","code":0}`, without decompressing or parsing,
//! so what the HEC path measures is siemgate's own work (batching, gzip, the HTTP client), not a
//! collector's. Counts requests and body bytes; prints them when stdin closes or on SIGTERM.
//!
//! Usage: cargo run --release --example hec_collector -- 127.0.0.1:8088

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

async fn handle(counts: Arc<Counts>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    counts.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
            }
            Err(_) => break,
        }
    }
    counts.requests.fetch_add(1, Ordering::Relaxed);
    Response::new(Full::new(Bytes::from_static(
        br#"{"text":"Success","code":0}"#,
    )))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8088".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("hec_collector listening on {addr}");
    let counts = Arc::new(Counts::default());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = term.recv() => break,
        };
        let _ = tcp.set_nodelay(true);
        let counts = counts.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let counts = counts.clone();
                async move { Ok::<_, Infallible>(handle(counts, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
    eprintln!(
        "hec_collector: {} requests, {} body bytes",
        counts.requests.load(Ordering::Relaxed),
        counts.bytes.load(Ordering::Relaxed)
    );
    Ok(())
}
