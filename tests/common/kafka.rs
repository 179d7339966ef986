//! What the Kafka tests (the Kafka queue's and the Kafka sink's) share about librdkafka's mock
//! cluster: the produce errors a broker answers that the Kafka protocol calls retriable.

use rdkafka::types::RDKafkaRespErr;

/// Produce errors the protocol calls retriable (a producer sends the request again): not
/// enough in-sync replicas (before or after the append), a request timeout, a leader election.
pub const RETRIABLE_PRODUCE_ERRORS: [RDKafkaRespErr; 4] = [
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
];
