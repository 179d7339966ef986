//! Kafka connection keys shared by the Kafka-backed queue (`[sinks.queue] type = "kafka"`):
//! brokers, TLS and SASL as written in the file, their validation, and the runtime
//! [`KafkaConnection`], which is nothing but the librdkafka properties they become (this module
//! imports no Kafka client code, so the config builds and checks without it).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Issues, SecretRef};
use crate::secret::Secret;

/// Default time a request waits for the brokers' delivery reports before it is answered 503
/// with Retry-After: within what vendors wait (10-15 s) for an answer, with room for the rest
/// of the request.
pub const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS to the brokers (`security.protocol` SSL or SASL_SSL).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTlsConfig {
    /// PEM CA bundle the brokers' certificates must chain to; default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for brokers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// `false` accepts any broker certificate: only for tests against throwaway brokers.
    #[serde(default = "default_true")]
    pub verify: bool,
}

/// SASL authentication to the brokers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    /// A literal, `${ENV_VAR}` or `@file:/path`.
    pub password: SecretRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

fn default_true() -> bool {
    true
}

/// A validated connection: the librdkafka properties for brokers, TLS and SASL.
#[derive(Clone)]
pub struct KafkaConnection {
    /// `bootstrap.servers`, as given (for logs).
    pub brokers: String,
    properties: Vec<(&'static str, String)>,
    /// The SASL password, kept apart so that it is never in anything printed.
    password: Option<Secret>,
}

impl std::fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("brokers", &self.brokers)
            .field("properties", &self.properties)
            .finish_non_exhaustive()
    }
}

impl KafkaConnection {
    /// The properties to set on a librdkafka client, the password among them.
    pub fn properties(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.properties
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(self.password.iter().map(|p| ("sasl.password", p.expose())))
    }
}

/// Checks brokers, TLS and SASL keys under `path`; `None` with the problems in `issues`.
pub(super) fn validate_connection(
    brokers: &[String],
    tls: Option<&KafkaTlsConfig>,
    sasl: Option<&KafkaSaslConfig>,
    path: &str,
    issues: &mut Issues,
) -> Option<KafkaConnection> {
    let before = issues.0.len();
    if brokers.is_empty() {
        issues.push(
            format!("{path}.brokers"),
            "at least one broker (\"host:port\") is required",
        );
    }
    for (i, b) in brokers.iter().enumerate() {
        let ok = b
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok || b.contains(',') || b.contains(char::is_whitespace) {
            issues.push(
                format!("{path}.brokers[{i}]"),
                format!("{b:?} is not \"host:port\""),
            );
        }
    }
    let mut properties = vec![("bootstrap.servers", brokers.join(","))];
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    properties.push(("security.protocol", protocol.to_owned()));
    if let Some(t) = tls {
        for (key, file, prop) in [
            ("ca_file", &t.ca_file, "ssl.ca.location"),
            ("client_cert", &t.client_cert, "ssl.certificate.location"),
            ("client_key", &t.client_key, "ssl.key.location"),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    issues.push(
                        format!("{path}.tls.{key}"),
                        format!("{} is not a readable file", f.display()),
                    );
                }
                properties.push((prop, f.display().to_string()));
            }
        }
        if t.client_cert.is_some() != t.client_key.is_some() {
            issues.push(
                format!("{path}.tls"),
                "client_cert and client_key go together",
            );
        }
        if !t.verify {
            properties.push(("enable.ssl.certificate.verification", "false".to_owned()));
            properties.push(("ssl.endpoint.identification.algorithm", "none".to_owned()));
        }
    }
    let mut password = None;
    if let Some(s) = sasl {
        if s.username.is_empty() {
            issues.push(format!("{path}.sasl.username"), "must not be empty");
        }
        properties.push(("sasl.mechanism", s.mechanism.as_str().to_owned()));
        properties.push(("sasl.username", s.username.clone()));
        match s.password.resolve() {
            Ok(p) => password = Some(p),
            Err(m) => issues.push(format!("{path}.sasl.password"), m),
        }
    }
    (issues.0.len() == before).then(|| KafkaConnection {
        brokers: brokers.join(","),
        properties,
        password,
    })
}

/// A Kafka-backed queue's settings (`[sinks.queue] type = "kafka"`).
#[derive(Debug, Clone)]
pub struct KafkaQueueSettings {
    pub connection: KafkaConnection,
    /// The sink's topic; default `siemgate.<sink id>`.
    pub topic: String,
    /// The delivery workers' consumer group: one per sink, named after it
    /// (`siemgate.<sink id>`), so each sink has its own committed position.
    pub group: String,
    /// How long a request waits for every delivery report before it is answered 503 with
    /// Retry-After; the events stay queued in the producer and are delivered when the brokers
    /// come back (a retry by the sender may then duplicate them, never lose them).
    pub produce_timeout: Duration,
    /// The most undelivered events and bytes a delivery worker holds read ahead of the sink.
    pub memory: super::QueueLimits,
}

/// Whether topic names are what Kafka accepts: 1-249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(super) fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sasl_over_tls_sets_the_protocol_and_keeps_the_password_apart() {
        let mut issues = Issues(Vec::new());
        let sasl = KafkaSaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "gw".into(),
            password: SecretRef::literal("pw-123".into()),
        };
        let tls = KafkaTlsConfig {
            ca_file: None,
            client_cert: None,
            client_key: None,
            verify: true,
        };
        let c = validate_connection(
            &["k1:9093".into(), "k2:9093".into()],
            Some(&tls),
            Some(&sasl),
            "sinks[0].queue",
            &mut issues,
        )
        .unwrap();
        let props: Vec<_> = c.properties().collect();
        assert!(props.contains(&("bootstrap.servers", "k1:9093,k2:9093")));
        assert!(props.contains(&("security.protocol", "sasl_ssl")));
        assert!(props.contains(&("sasl.mechanism", "SCRAM-SHA-512")));
        assert!(props.contains(&("sasl.password", "pw-123")));
        assert!(!format!("{c:?}").contains("pw-123"), "{c:?}");
    }

    #[test]
    fn bad_brokers_and_topics_are_named() {
        let mut issues = Issues(Vec::new());
        assert!(validate_connection(&["nohost".into()], None, None, "q", &mut issues).is_none());
        assert_eq!(issues.0[0].path, "q.brokers[0]");
        let mut issues = Issues(Vec::new());
        assert!(validate_connection(&[], None, None, "q", &mut issues).is_none());
        assert_eq!(issues.0[0].path, "q.brokers");
        assert!(valid_topic("siemgate.hec-main_1"));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic(".."));
    }
}
