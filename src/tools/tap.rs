//! `recast tap`: the client of a running worker's live tap (`GET /tap`,
//! `telemetry/tap.rs`): asks for the next traces that pass a filter and
//! hands each to the caller as it arrives.

use std::io::BufRead;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// What to ask the tap for.
#[derive(Debug, Clone, Default)]
pub struct TapQuery {
    pub limit: usize,
    pub outcome: Option<String>,
    pub event_type: Option<String>,
    /// The tap ends the stream when no trace arrived for this long.
    pub idle: Option<Duration>,
}

impl TapQuery {
    fn to_query(&self) -> String {
        let mut pairs = vec![format!("limit={}", self.limit)];
        let encode = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        if let Some(outcome) = &self.outcome {
            pairs.push(format!("outcome={}", encode(outcome)));
        }
        if let Some(event_type) = &self.event_type {
            pairs.push(format!("event_type={}", encode(event_type)));
        }
        if let Some(idle) = self.idle {
            pairs.push(format!("idle={}ms", idle.as_millis()));
        }
        pairs.join("&")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("{url}: {error}")]
    Request { url: String, error: ureq::Error },
    #[error("{url}: {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: reading the stream: {error}")]
    Read { url: String, error: std::io::Error },
    #[error("{url}: a line that is not a trace: {error}")]
    NotATrace {
        url: String,
        error: serde_json::Error,
    },
}

/// Streams the traces the tap at `base` (e.g. `http://127.0.0.1:9464`)
/// sends for `query` to `each`; returns how many arrived.
pub fn tap(base: &str, query: &TapQuery, mut each: impl FnMut(Value)) -> Result<usize, TapError> {
    let url = format!("{}/tap?{}", base.trim_end_matches('/'), query.to_query());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent.get(&url).call().map_err(|error| TapError::Request {
        url: url.clone(),
        error,
    })?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if status != 200 {
        let text = body.read_to_string().unwrap_or_default();
        return Err(TapError::Refused {
            url,
            status,
            body: text.trim().to_owned(),
        });
    }
    let mut received = 0;
    for line in std::io::BufReader::new(body.as_reader()).lines() {
        let line = line.map_err(|error| TapError::Read {
            url: url.clone(),
            error,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let trace = serde_json::from_str(&line).map_err(|error| TapError::NotATrace {
            url: url.clone(),
            error,
        })?;
        received += 1;
        each(trace);
    }
    Ok(received)
}
