//! The operations listener: `/metrics` (Prometheus text format),
//! `/healthz` (the process is alive) and `/readyz` (partitions assigned,
//! producer initialised, the loop making progress). A small thread of its
//! own: nothing here touches the data path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::telemetry::metrics::Metrics;

/// What `/readyz` decides on, updated by the worker.
#[derive(Debug)]
pub(crate) struct Health {
    producer_ready: AtomicBool,
    assigned: AtomicUsize,
    /// When the loop last committed or found nothing to do; a loop stuck
    /// retrying an aborting batch stops updating it.
    last_progress_ms: AtomicI64,
    /// How long without progress is still ready.
    stall_limit: Duration,
}

impl Health {
    pub(crate) fn new(stall_limit: Duration) -> Self {
        Self {
            producer_ready: AtomicBool::new(false),
            assigned: AtomicUsize::new(0),
            last_progress_ms: AtomicI64::new(now_ms()),
            stall_limit,
        }
    }

    pub(crate) fn producer_ready(&self) {
        self.producer_ready.store(true, Ordering::Relaxed);
    }

    pub(crate) fn assigned(&self, partitions: usize) {
        self.assigned.store(partitions, Ordering::Relaxed);
    }

    pub(crate) fn progressed(&self) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// `Ok` when ready, else why not.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if !self.producer_ready.load(Ordering::Relaxed) {
            return Err("transactional producer not initialised".into());
        }
        if self.assigned.load(Ordering::Relaxed) == 0 {
            return Err("no partition assigned".into());
        }
        let idle_ms = now_ms() - self.last_progress_ms.load(Ordering::Relaxed);
        let limit_ms = i64::try_from(self.stall_limit.as_millis()).unwrap_or(i64::MAX);
        if idle_ms > limit_ms {
            return Err(format!("no progress for {idle_ms} ms"));
        }
        Ok(())
    }
}

/// Starts the listener on `address`; returns the bound address (useful
/// with port 0).
pub(crate) fn serve(
    address: &str,
    metrics: Metrics,
    health: Arc<Health>,
) -> Result<SocketAddr, std::io::Error> {
    let server = tiny_http::Server::http(address).map_err(std::io::Error::other)?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("not an IP listener"))?;
    std::thread::Builder::new()
        .name("recast-http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (status, body, content_type) = match request.url() {
                    "/metrics" => (200, metrics.render(), "text/plain; version=0.0.4"),
                    "/healthz" => (200, "ok\n".to_owned(), "text/plain"),
                    "/readyz" => match health.readiness() {
                        Ok(()) => (200, "ready\n".to_owned(), "text/plain"),
                        Err(why) => (503, format!("not ready: {why}\n"), "text/plain"),
                    },
                    _ => (404, "not found\n".to_owned(), "text/plain"),
                };
                let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                    .expect("a valid header");
                let response = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(header);
                if let Err(e) = request.respond(response) {
                    tracing::debug!(error = %e, "http response not delivered");
                }
            }
        })?;
    Ok(bound)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
