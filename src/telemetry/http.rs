//! The operations listener: `/metrics` (Prometheus text format),
//! `/healthz` (the process is alive) and `/readyz` (producer initialised,
//! consumer group joined, the loop making progress). A small thread of its
//! own: nothing here touches the data path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::Response;
use crate::telemetry::metrics::Metrics;

/// What `/readyz` decides on, updated by the worker.
#[derive(Debug)]
pub(crate) struct Health {
    producer_ready: AtomicBool,
    /// Whether the group gave this instance its share, even an empty one:
    /// an instance beyond the partition count is a spare, ready to take
    /// over, not a failure (so rollouts and drains do not wait for it).
    joined: AtomicBool,
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
            joined: AtomicBool::new(false),
            last_progress_ms: AtomicI64::new(now_ms()),
            stall_limit,
        }
    }

    pub(crate) fn producer_ready(&self) {
        self.producer_ready.store(true, Ordering::Relaxed);
    }

    pub(crate) fn joined(&self) {
        self.joined.store(true, Ordering::Relaxed);
    }

    pub(crate) fn progressed(&self) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// `Ok` when ready, else why not.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if !self.producer_ready.load(Ordering::Relaxed) {
            return Err("transactional producer not initialised".into());
        }
        if !self.joined.load(Ordering::Relaxed) {
            return Err("not in the consumer group yet".into());
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
    let text = |status, body: String| Response {
        status,
        content_type: "text/plain",
        body,
    };
    // The endpoints are all GETs without a body.
    crate::http::serve(address, "recast-http", 0, move |request| {
        match request.url {
            "/metrics" => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                body: metrics.render(),
            },
            "/healthz" => text(200, "ok\n".into()),
            "/readyz" => match health.readiness() {
                Ok(()) => text(200, "ready\n".into()),
                Err(why) => text(503, format!("not ready: {why}\n")),
            },
            _ => text(404, "not found\n".into()),
        }
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
