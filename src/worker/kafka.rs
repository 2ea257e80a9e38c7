//! Kafka client settings shared by the source and the sink, and the
//! start-up checks that turn an unreachable cluster or a missing topic into
//! a clear message instead of a hang.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Config;

/// Why the worker cannot start against this cluster.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot reach the brokers {brokers} within {}: {source}", humantime::format_duration(*.timeout))]
    Unreachable {
        brokers: String,
        timeout: Duration,
        source: Box<KafkaError>,
    },
    #[error("topic `{topic}` ({role}) does not exist on {brokers}; create it first")]
    MissingTopic {
        topic: String,
        role: &'static str,
        brokers: String,
    },
    #[error("topic `{topic}` ({role}): {message}")]
    TopicError {
        topic: String,
        role: &'static str,
        message: String,
    },
    #[error("cannot create the Kafka {what}: {source}")]
    Client {
        what: &'static str,
        source: Box<KafkaError>,
    },
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

/// The base client configuration: brokers plus the operator's passthrough
/// properties. The source and sink add what exactly-once needs on top.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.raw.kafka.brokers);
    client.set("client.id", format!("recast-{}", config.instance_id));
    for (key, value) in &config.raw.kafka.properties {
        client.set(key, value);
    }
    client
}

/// Checks that the cluster answers and that the three topics exist.
/// Returns the number of partitions of the legacy topic.
pub(crate) fn check_cluster(config: &Config) -> Result<usize, StartupError> {
    let raw = &config.raw;
    let timeout = raw.kafka.connect_timeout;
    let probe: BaseConsumer =
        client_config(config)
            .create()
            .map_err(|source| StartupError::Client {
                what: "metadata client",
                source: Box::new(source),
            })?;
    let mut legacy_partitions = 0;
    for (role, topic) in [
        ("topics.legacy", &raw.topics.legacy),
        ("topics.ledger", &raw.topics.ledger),
        ("topics.dead_letter", &raw.topics.dead_letter),
    ] {
        let partitions = topic_partitions(&probe, topic, role, timeout, &raw.kafka.brokers)?;
        if role == "topics.legacy" {
            legacy_partitions = partitions;
        }
    }
    Ok(legacy_partitions)
}

fn topic_partitions(
    probe: &BaseConsumer,
    topic: &str,
    role: &'static str,
    timeout: Duration,
    brokers: &str,
) -> Result<usize, StartupError> {
    let metadata = probe
        .fetch_metadata(Some(topic), timeout)
        .map_err(|source| StartupError::Unreachable {
            brokers: brokers.to_owned(),
            timeout,
            source: Box::new(source),
        })?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(StartupError::MissingTopic {
            topic: topic.to_owned(),
            role,
            brokers: brokers.to_owned(),
        });
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None if !found.partitions().is_empty() => Ok(found.partitions().len()),
        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Err(StartupError::MissingTopic {
            topic: topic.to_owned(),
            role,
            brokers: brokers.to_owned(),
        }),
        Some(code) => Err(StartupError::TopicError {
            topic: topic.to_owned(),
            role,
            message: code.to_string(),
        }),
    }
}

/// The context of a reader that asks for end-of-partition events
/// (`enable.partition.eof`): librdkafka reports each one as a global
/// error too, which for such a reader is the news it waits for, not an
/// error worth a log line.
#[derive(Debug, Default)]
pub(crate) struct EndAware;

impl rdkafka::ClientContext for EndAware {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndAware {}

/// A consumer with the [`EndAware`] context.
pub(crate) type EndAwareConsumer = BaseConsumer<EndAware>;

#[cfg(test)]
mod tests {
    use super::*;

    fn create(properties: &[(&str, &str)]) -> Result<(), KafkaError> {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:1");
        for (key, value) in properties {
            client.set(*key, *value);
        }
        client.create::<BaseConsumer>().map(drop)
    }

    /// librdkafka's own token retrieval from an OIDC provider.
    const OIDC: &[(&str, &str)] = &[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "OAUTHBEARER"),
        ("sasl.oauthbearer.method", "oidc"),
        ("sasl.oauthbearer.client.id", "recast-cart"),
        ("sasl.oauthbearer.client.secret", "secret"),
        (
            "sasl.oauthbearer.token.endpoint.url",
            "https://idp.example.com/oauth2/token",
        ),
    ];

    const KERBEROS: &[(&str, &str)] = &[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "GSSAPI"),
        ("sasl.kerberos.service.name", "kafka"),
        // No kinit at creation: there is no keytab here.
        ("sasl.kerberos.min.time.before.relogin", "0"),
    ];

    /// Each mechanism is there exactly when its feature is built in:
    /// librdkafka refuses a client it cannot serve when it is created, so
    /// a build without the feature fails at start-up, not at first use.
    #[test]
    fn sasl_mechanisms_come_with_their_features() {
        for (mechanism, properties, built) in [
            ("OIDC", OIDC, cfg!(feature = "oidc")),
            ("GSSAPI", KERBEROS, cfg!(feature = "kerberos")),
        ] {
            match create(properties) {
                Ok(()) => assert!(built, "{mechanism} works without its feature"),
                Err(e) => assert!(!built, "{mechanism}: {e}"),
            }
        }
    }
}
