//! What a transport did with one send of a batch (`Sent`), and what a transport that hands
//! events off reports once they settle (`Settled`): the answers a destination gives the sink
//! worker. Indexes are into the slice passed to that send; the worker keeps the batch at the
//! head of the queue until every event in it is delivered or refused for good, so events that
//! are retried alone never let later ones overtake them in the queue.

use std::time::Duration;

use bytes::Bytes;

/// The answer to one send.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The first `n` events (at least one) are delivered; the rest, if any, go with the next
    /// send.
    Delivered(usize),
    /// The destination answered for each event (Elasticsearch `_bulk` items, per-row errors):
    /// every event not named in it is delivered.
    Partial(Partial),
    /// The first `n` events are handed over and the destination confirms them later (Splunk
    /// HEC indexer acknowledgement); the transport settles them on its own and reports them
    /// through `Transport::settled`. A transport that hands events off answers every send
    /// this way (or with an error), so that only its reports release the queue's head.
    HandedOff(usize),
}

/// The events of a send that were not delivered, by index.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Partial {
    /// Refused for good as they are (mapping or parse errors): dead letters, with the reason.
    pub refused: Vec<(usize, String)>,
    /// Worth sending again (item-level 429 or 5xx): sent again alone, after a backoff of at
    /// least `retry_after`.
    pub retry: Vec<usize>,
    /// The longest wait the destination asked for, when it asked.
    pub retry_after: Option<Duration>,
    /// Why the first retried event failed, for the log.
    pub retry_reason: Option<String>,
}

impl Partial {
    /// How many events of the send this answer delivered, out of `sent`.
    pub fn delivered(&self, sent: usize) -> usize {
        sent.saturating_sub(self.refused.len() + self.retry.len())
    }
}

/// Events handed off earlier that the destination has now settled, in queue order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Events at the head of what was handed off that leave the queue now: settled, and
    /// nothing before them still awaits its confirmation.
    pub released: usize,
    /// Newly delivered events, wherever they are in the handed-off order (they count at once,
    /// even while held behind an unconfirmed one).
    pub delivered: usize,
    /// Newly refused events, for good, with the reason: dead letters (each counts as failed).
    pub refused: Vec<(Bytes, String)>,
    /// The transport sent events again on its own (after a confirmation timed out) and the
    /// destination took them: it works again.
    pub resent: bool,
}

impl Settled {
    /// Whether there is anything to report.
    pub fn is_empty(&self) -> bool {
        self.released == 0 && self.delivered == 0 && self.refused.is_empty() && !self.resent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_counts_what_it_does_not_name_as_delivered() {
        let p = Partial {
            refused: vec![(1, "mapper_parsing_exception".to_owned())],
            retry: vec![3, 4],
            retry_after: None,
            retry_reason: Some("es_rejected_execution_exception".to_owned()),
        };
        assert_eq!(p.delivered(6), 3);
        assert_eq!(Partial::default().delivered(2), 2);
    }
}
