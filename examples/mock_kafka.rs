//! librdkafka's mock cluster as a process, for `benches/queues.sh` (and manual trials): starts
//! a `MockCluster` with the given number of brokers on 127.0.0.1 ports, creates the given
//! topics, prints its bootstrap servers as one line on stdout, and runs until it is killed.
//! The mock keeps everything in memory and is no performance reference for a real Kafka.
//!
//! Usage: cargo run --release --example mock_kafka -- [BROKERS] [TOPIC:PARTITIONS ...]
//! e.g.   cargo run --release --example mock_kafka -- 3 siemgate.out:3

use std::io::Write;

use rdkafka::mocking::MockCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers: i32 = match args.next() {
        Some(n) => n.parse()?,
        None => 3,
    };
    let cluster = MockCluster::new(brokers)?;
    for spec in args {
        let (topic, partitions) = spec
            .split_once(':')
            .ok_or_else(|| format!("{spec:?} is not TOPIC:PARTITIONS"))?;
        cluster.create_topic(topic, partitions.parse()?, brokers.min(3))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cluster.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    // The brokers run on librdkafka's threads; this one only keeps the cluster alive.
    loop {
        std::thread::park();
    }
}
