//! The `[registry]` section: where the schema registry is and how to talk
//! to it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A Confluent-compatible schema registry (Confluent Schema Registry,
/// Karapace, Redpanda, Apicurio's compatible API).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, e.g. `https://registry.example.com:8081`.
    pub url: String,
    /// Basic authentication user (with `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic authentication password: set `RECAST_REGISTRY__PASSWORD`
    /// from a secret store rather than writing it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Bearer token, instead of `username`/`password`:
    /// `RECAST_REGISTRY__TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Longest wait for one request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long transient failures (no connection, 5xx, 429) are retried,
    /// with backoff, before recast gives up.
    #[serde(default = "default_retry_for", with = "humantime_serde")]
    pub retry_for: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_retry_for() -> Duration {
    Duration::from_secs(60)
}
