//! The agent's HTTP server: `/metrics`, `/ready`, `/healthz`.
//!
//! Owns: listening on `server.http_listen_address:http_listen_port`
//! (Promtail's keys; port 0 picks a free port, reported in the start-up log),
//! serving the Prometheus text exposition of [`Metrics`], readiness (`503`
//! until the configuration is loaded and the first scan of the targets is
//! done, then `200`) and liveness (`200` while the process serves requests).
//!
//! Exposes nothing else: `/` (an index of these), `/live` (same as
//! `/healthz`), any other path 404, any method but GET and HEAD 405. No
//! configuration, targets, debug or profiling endpoints.
//!
//! Must never: block the runtime (encoding the metrics is cheap and bounded),
//! take part in delivery (a failing scrape cannot slow shipping down), or
//! serve anything that shows the configuration or the agent's internals.

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Shared state the endpoints read.
pub struct State {
    pub metrics: Arc<Metrics>,
    /// Set once the targets are being tailed.
    pub ready: Arc<AtomicBool>,
}

impl State {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(State {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// Binds the listener (so the caller learns the address before serving).
pub async fn bind(address: &str, port: u16) -> std::io::Result<TcpListener> {
    let host = if address.is_empty() {
        "0.0.0.0"
    } else {
        address
    };
    TcpListener::bind((host, port)).await
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let (stream, _peer): (_, SocketAddr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "http server: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&req, &state)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(req: &Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        "/ready" => {
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: targets are not being tailed yet\n".into(),
                )
            }
        }
        "/healthz" | "/live" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/" => text(
            StatusCode::OK,
            "text/plain",
            format!(
                "tailtrace {}\n/metrics  Prometheus metrics (Promtail's names)\n/ready    readiness\n/healthz  liveness\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, text)
    }

    #[tokio::test]
    async fn ready_is_503_until_set_then_200_and_metrics_are_served() {
        let metrics = Arc::new(Metrics::new());
        metrics.files_active_total.set(3);
        let state = State::new(metrics);
        let l = bind("127.0.0.1", 0).await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(serve(l, state.clone()));
        assert_eq!(get(addr, "/ready").await.0, 503);
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(addr, "/ready").await.0, 200);
        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (st, body) = get(addr, "/metrics").await;
        assert_eq!(st, 200);
        assert!(body.contains("promtail_files_active_total 3"), "{body}");
        assert_eq!(get(addr, "/nope").await.0, 404);
        task.abort();
    }

    #[tokio::test]
    async fn nothing_but_health_readiness_and_metrics_is_exposed() {
        let state = State::new(Arc::new(Metrics::new()));
        let l = bind("127.0.0.1", 0).await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(serve(l, state));
        // What Promtail, Go's net/http/pprof and expvar serve.
        for path in [
            "/config",
            "/targets",
            "/service-discovery",
            "/debug/pprof/",
            "/debug/pprof/heap",
            "/debug/vars",
            "/loki/api/v1/push",
            "/api/v1/targets",
            "/metrics/../config",
            "/ready/x",
            "//metrics",
        ] {
            assert_eq!(get(addr, path).await.0, 404, "{path}");
        }
        for method in ["POST", "PUT", "DELETE"] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            let t = String::from_utf8_lossy(&buf);
            assert!(t.starts_with("HTTP/1.1 405"), "{method}: {t}");
        }
        task.abort();
    }
}
