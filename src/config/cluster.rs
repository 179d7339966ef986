//! The `[cluster]` table: the Kafka connection and compacted topic through which every node of a
//! cluster shares the sources made through the admin API (creations, changes, secret resets and
//! deletions), and its validation into [`ClusterSettings`].

use std::time::Duration;

use serde::Deserialize;

use super::kafka::{
    valid_topic, validate_connection, KafkaConnection, KafkaSaslConfig, KafkaTlsConfig,
};
use super::{ConfigDuration, Issues};

/// Default topic of the shared sources.
pub const DEFAULT_SOURCES_TOPIC: &str = "siemgate.sources";
/// Default time an admin change waits for the brokers' acknowledgement before it answers 503.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a start waits to read the sources topic to its end before it gives up.
pub const DEFAULT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// `[cluster]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The brokers, `host:port` each (required).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// The compacted topic of the admin API's sources; default `siemgate.sources`.
    pub sources_topic: Option<String>,
    /// How long an admin change waits for the brokers to acknowledge its record; default 5 s.
    pub write_timeout: Option<ConfigDuration>,
    /// How long a start waits to read the sources topic to its end; default 30 s.
    pub catch_up_timeout: Option<ConfigDuration>,
    /// TLS to the brokers.
    pub tls: Option<KafkaTlsConfig>,
    /// SASL PLAIN or SCRAM to the brokers.
    pub sasl: Option<KafkaSaslConfig>,
}

/// A validated `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub connection: KafkaConnection,
    /// The compacted topic (`cleanup.policy=compact`): key = source id, value = the source's
    /// record (secrets included, as the local store holds them) or a tombstone for a deletion.
    pub sources_topic: String,
    /// An admin change answers only once the brokers acknowledged its record (acks=all); past
    /// this it answers 503 and the change is not applied on this node. Also librdkafka's
    /// `message.timeout.ms` for these records, so a refused change is not published later.
    pub write_timeout: Duration,
    /// A node serves only once it has read the topic to its end, so that it never answers 404
    /// for a source the cluster has (nor accepts a secret that was reset); a start that cannot
    /// read it within this time fails, and the service manager starts it again.
    pub catch_up_timeout: Duration,
}

pub(super) fn validate_cluster(c: &ClusterConfig, issues: &mut Issues) -> Option<ClusterSettings> {
    let path = "cluster";
    if !cfg!(feature = "kafka") {
        issues.push(
            path,
            "this siemgate was built without Kafka support (cargo feature `kafka`)",
        );
    }
    let connection = validate_connection(&c.brokers, c.tls.as_ref(), c.sasl.as_ref(), path, issues);
    let sources_topic = c
        .sources_topic
        .clone()
        .unwrap_or_else(|| DEFAULT_SOURCES_TOPIC.to_owned());
    if !valid_topic(&sources_topic) {
        issues.push(
            format!("{path}.sources_topic"),
            format!("{sources_topic:?} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)"),
        );
    }
    let write_timeout = c.write_timeout.map_or(DEFAULT_WRITE_TIMEOUT, |d| d.0);
    if write_timeout.is_zero() {
        issues.push(format!("{path}.write_timeout"), "must be greater than 0");
    }
    let catch_up_timeout = c.catch_up_timeout.map_or(DEFAULT_CATCH_UP_TIMEOUT, |d| d.0);
    if catch_up_timeout.is_zero() {
        issues.push(format!("{path}.catch_up_timeout"), "must be greater than 0");
    }
    Some(ClusterSettings {
        connection: connection?,
        sources_topic,
        write_timeout,
        catch_up_timeout,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::{parse, validate};

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:0\"\nplaintext = true\n\
                        [admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"ops\"\n\
                        token = \"ops-admin-token-0123456789abcdef\"\n";

    fn issues_of(text: &str) -> Vec<String> {
        match validate(parse(text).unwrap()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn cluster_keys_are_checked_with_their_paths() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/config/invalid/cluster-problems.toml"
        ))
        .unwrap();
        let issues = issues_of(&text);
        for key in [
            "cluster.brokers: ",
            "cluster.sources_topic: ",
            "cluster.write_timeout: ",
            "cluster.catch_up_timeout: ",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(key)),
                "{key}: {issues:#?}"
            );
        }
        let unknown = format!("{BASE}[cluster]\nbrokers = [\"k1:9092\"]\ntopic = \"x\"\n");
        let err = parse(&unknown).unwrap_err().to_string();
        assert!(
            err.contains("unknown field `topic`") && err.contains("sources_topic"),
            "{err}"
        );
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn defaults_and_the_connection_are_those_of_the_kafka_queue() {
        let text = format!(
            "{BASE}[cluster]\nbrokers = [\"k1:9093\", \"k2:9093\"]\n\
             [cluster.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"gw\"\npassword = \"pw-123\"\n"
        );
        let s = validate(parse(&text).unwrap()).unwrap();
        let c = s.cluster.unwrap();
        assert_eq!(c.sources_topic, super::DEFAULT_SOURCES_TOPIC);
        assert_eq!(c.write_timeout, super::DEFAULT_WRITE_TIMEOUT);
        assert_eq!(c.catch_up_timeout, super::DEFAULT_CATCH_UP_TIMEOUT);
        let props: Vec<_> = c.connection.properties().collect();
        assert!(props.contains(&("bootstrap.servers", "k1:9093,k2:9093")));
        assert!(props.contains(&("security.protocol", "sasl_plaintext")));
        assert!(props.contains(&("sasl.mechanism", "SCRAM-SHA-256")));
        assert!(!format!("{c:?}").contains("pw-123"));
    }
}
