//! The operations listener: `/metrics` (Prometheus text format),
//! `/healthz` (the process is alive), `/readyz` (producer initialised,
//! consumer group joined, the loop making progress) and, when
//! `[http] tap` opens it, `/tap` (live decision traces, `tap.rs`). A
//! small thread of its own: nothing here touches the data path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::{Body, Response};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::tap::{MAX_LIMIT, Tap, TapFilter};

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
    tap: Option<Arc<Tap>>,
) -> Result<SocketAddr, std::io::Error> {
    // The endpoints are all GETs without a body.
    crate::http::serve(address, "recast-http", 0, move |request| {
        let (path, query) = request.url.split_once('?').unwrap_or((request.url, ""));
        match path {
            "/metrics" => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4",
                body: metrics.render().into(),
            },
            "/healthz" => text(200, "ok\n".into()),
            "/readyz" => match health.readiness() {
                Ok(()) => text(200, "ready\n".into()),
                Err(why) => text(503, format!("not ready: {why}\n")),
            },
            "/tap" => match &tap {
                Some(tap) => match TapRequest::parse(query) {
                    Ok(wanted) => stream_tap(tap, wanted),
                    Err(why) => text(400, format!("{why}\n")),
                },
                None => text(404, "the tap is off: set http.tap = true\n".into()),
            },
            _ => text(404, "not found\n".into()),
        }
    })
}

fn text(status: u16, body: String) -> Response {
    Response {
        status,
        content_type: "text/plain",
        body: body.into(),
    }
}

/// What `GET /tap?limit=N&outcome=…&event_type=…&idle=…` asks for.
#[derive(Debug, PartialEq, Eq)]
struct TapRequest {
    filter: TapFilter,
    limit: usize,
    /// The stream ends when no trace arrived for this long.
    idle: Duration,
}

/// Outcome names a tap may ask for (`event` as the metrics spell it).
const OUTCOMES: &[&str] = &["event", "events", "duplicate", "filtered", "rejected"];

impl TapRequest {
    fn parse(query: &str) -> Result<Self, String> {
        let mut wanted = Self {
            filter: TapFilter::default(),
            limit: 10,
            idle: Duration::from_secs(60),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8()
                .map_err(|_| format!("`{name}` is not UTF-8"))?
                .into_owned();
            match name {
                "limit" => {
                    wanted.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit: a number from 1 to {MAX_LIMIT}"))?;
                }
                "outcome" if OUTCOMES.contains(&value.as_str()) => {
                    let name = if value == "event" {
                        "events".into()
                    } else {
                        value
                    };
                    wanted.filter.outcome = Some(name);
                }
                "outcome" => return Err(format!("outcome: one of {}", OUTCOMES.join(", "))),
                "event_type" => wanted.filter.event_type = Some(value),
                "idle" => {
                    wanted.idle = humantime::parse_duration(&value)
                        .map_err(|e| format!("idle: {e} (e.g. 30s)"))?;
                }
                other => {
                    return Err(format!(
                        "unknown parameter `{other}` (limit, outcome, event_type, idle)"
                    ));
                }
            }
        }
        Ok(wanted)
    }
}

/// The next `limit` traces that pass the filter, one JSON object per line.
fn stream_tap(tap: &Tap, wanted: TapRequest) -> Response {
    let stream = tap.subscribe(wanted.filter, wanted.limit);
    let idle = wanted.idle;
    Response {
        status: 200,
        content_type: "application/x-ndjson",
        body: Body::Streamed(Box::new(move |out| {
            while let Some(mut line) = stream.next(idle) {
                line.push('\n');
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            Ok(())
        })),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_requests_are_parsed_and_bad_ones_refused_naming_the_parameter() {
        let wanted =
            TapRequest::parse("limit=5&outcome=event&event_type=Added%20ToCart&idle=2s").unwrap();
        assert_eq!(
            wanted,
            TapRequest {
                filter: TapFilter {
                    outcome: Some("events".into()),
                    event_type: Some("Added ToCart".into()),
                },
                limit: 5,
                idle: Duration::from_secs(2),
            }
        );
        assert_eq!(TapRequest::parse("").unwrap().limit, 10);
        for (query, named) in [
            ("limit=0", "limit"),
            ("limit=many", "limit"),
            ("outcome=lost", "outcome"),
            ("idle=soon", "idle"),
            ("colour=red", "colour"),
        ] {
            let why = TapRequest::parse(query).unwrap_err();
            assert!(why.contains(named), "{query}: {why}");
        }
    }
}
