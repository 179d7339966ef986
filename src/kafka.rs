//! librdkafka client pieces the Kafka-backed queue (`queue::kafka`) and the Kafka sink
//! (`sinks::kafka`) share: a client's properties from a validated connection, the producer
//! settings that make a delivery report mean the brokers hold the event, and the headers every
//! produced event carries.

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};

use crate::config::kafka::KafkaConnection;

/// A client of `connection`'s brokers (TLS and SASL included).
pub fn client_config(connection: &KafkaConnection) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    for (k, v) in connection.properties() {
        cfg.set(k, v);
    }
    cfg.set("client.id", "siemgate");
    cfg
}

/// Makes `cfg` an idempotent producer: `acks=all`, no duplicates or reordering on librdkafka's
/// own retries, so a successful delivery report means every in-sync replica holds the event.
pub fn idempotent_producer(cfg: &mut ClientConfig) -> &mut ClientConfig {
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // A topic the brokers refused (authorization, unknown topic) is refused at once until
        // the producer looks at it again: every 10 s, not librdkafka's 5 min.
        .set("topic.metadata.refresh.interval.ms", "10000")
}

/// The headers of one produced event (`source`, `vendor`, and `event_id` when known), so that
/// consumers can de-duplicate and route without reading the value.
pub fn event_headers(source: &str, vendor: &str, event_id: Option<&[u8]>) -> OwnedHeaders {
    let headers = OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: "source",
            value: Some(source),
        })
        .insert(Header {
            key: "vendor",
            value: Some(vendor),
        });
    match event_id {
        Some(id) => headers.insert(Header {
            key: "event_id",
            value: Some(id),
        }),
        None => headers,
    }
}
