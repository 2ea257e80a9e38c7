//! The `[registry]` section: where the schema registry is and how to talk
//! to it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::TlsFiles;

/// A Confluent-compatible schema registry (Confluent Schema Registry,
/// Karapace, Redpanda, Apicurio's compatible API).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    /// A PEM file of the CA certificates to verify the registry by, instead
    /// of the platform's trust store (a private CA). Relative to the
    /// configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// A PEM client certificate (chain) to present, for registries that
    /// authenticate clients by certificate; with `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<String>,
    /// The client certificate's private key, PEM, unencrypted (mount it
    /// from a Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// The files above, read with the configuration.
    #[serde(skip)]
    #[schemars(skip)]
    pub tls: TlsFiles,
    /// Longest wait for one request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// How long transient failures (no connection, 5xx, 429) are retried,
    /// with backoff, before recast gives up.
    #[serde(default = "default_retry_for", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub retry_for: Duration,
}

impl RegistryConfig {
    /// The registry at `url`, without credentials or TLS files, with the
    /// default timeouts: what a tool or test that builds one in code needs.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            username: None,
            password: None,
            token: None,
            ca_file: None,
            certificate_file: None,
            key_file: None,
            tls: TlsFiles::default(),
            timeout: default_timeout(),
            retry_for: default_retry_for(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_retry_for() -> Duration {
    Duration::from_secs(60)
}
