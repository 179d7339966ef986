//! Indexer-acknowledgement bookkeeping for the HEC sink: the requests handed to HEC and not
//! yet settled, in queue order, and what the worker may release from the head of its queue.
//!
//! An entry is waiting for its ack, due to be sent again (its ack timed out), or settled.
//! Settled events count as delivered or failed at once; they leave the queue only when every
//! entry before them has settled too, so the queue never drops an event that is still owed an
//! acknowledgement. What this holds is bounded by `max_pending_events` (waiting and resend
//! entries) and by the worker's queue (settled entries are events still queued).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::AckSettings;
use crate::metrics::HecAckMetrics;
use crate::sinks::sent::Settled;

enum Entry {
    /// Sent; HEC gave `ack_id`. `items` are kept for a resend after the timeout.
    Waiting {
        ack_id: u64,
        items: Vec<Bytes>,
        sent_at: Instant,
    },
    /// The ack did not come in time: to be sent again, whole.
    Resend { items: Vec<Bytes> },
    /// Settled (acknowledged, taken without an ackId, or refused): `events` wait to leave.
    Done { events: usize },
}

pub struct Acks {
    pub settings: AckSettings,
    pub next_poll: Instant,
    entries: VecDeque<Entry>,
    /// Events in `entries`: handed over and not yet released.
    unreleased: usize,
    /// Events in waiting or resend entries: what `max_pending_events` caps.
    pending: usize,
    /// Settled since the worker last took them.
    delivered: usize,
    refused: Vec<(Bytes, String)>,
    /// A resend went through since the worker last took what settled.
    resent: bool,
    metrics: HecAckMetrics,
}

impl Acks {
    pub fn new(settings: AckSettings, metrics: HecAckMetrics) -> Acks {
        Acks {
            settings,
            next_poll: Instant::now() + settings.poll_interval,
            entries: VecDeque::new(),
            unreleased: 0,
            pending: 0,
            delivered: 0,
            refused: Vec::new(),
            resent: false,
            metrics,
        }
    }

    fn publish(&self) {
        self.metrics.pending_events.set(self.pending as f64);
    }

    #[cfg(test)]
    pub fn unreleased(&self) -> usize {
        self.unreleased
    }

    /// Events that may still be sent before the cap on pending events is reached.
    pub fn room(&self) -> usize {
        self.settings
            .max_pending_events
            .saturating_sub(self.pending)
    }

    /// Records a request HEC took: waiting when it gave an ackId, delivered otherwise.
    pub fn sent(&mut self, items: &[Bytes], ack_id: Option<u64>) {
        self.unreleased += items.len();
        match ack_id {
            Some(ack_id) => {
                self.pending += items.len();
                self.entries.push_back(Entry::Waiting {
                    ack_id,
                    items: items.to_vec(),
                    sent_at: Instant::now(),
                });
            }
            None => {
                self.delivered += items.len();
                self.entries.push_back(Entry::Done {
                    events: items.len(),
                });
            }
        }
        self.publish();
    }

    /// Records a request HEC answered with a data error: all of `items` but the last were
    /// indexed, and the last is refused for good (for `reason`).
    pub fn refused(&mut self, items: &[Bytes], reason: String) {
        let Some((bad, indexed)) = items.split_last() else {
            return;
        };
        self.unreleased += items.len();
        self.delivered += indexed.len();
        self.refused.push((bad.clone(), reason));
        self.entries.push_back(Entry::Done {
            events: items.len(),
        });
    }

    /// The ackIds to poll.
    pub fn waiting_ids(&self) -> Vec<u64> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Waiting { ack_id, .. } => Some(*ack_id),
                _ => None,
            })
            .collect()
    }

    /// Applies a poll's answer (`{"acks":{"3":true}}`).
    pub fn acknowledged(&mut self, acks: &HashMap<String, bool>) {
        let mut settled = 0;
        for entry in &mut self.entries {
            if let Entry::Waiting { ack_id, items, .. } = entry {
                if acks.get(ack_id.to_string().as_str()).copied() == Some(true) {
                    settled += items.len();
                    *entry = Entry::Done {
                        events: items.len(),
                    };
                }
            }
        }
        self.pending -= settled;
        self.delivered += settled;
        self.publish();
    }

    /// Turns every request waiting longer than the timeout into a resend; returns how many.
    pub fn mark_overdue(&mut self, now: Instant) -> usize {
        let timeout = self.settings.timeout;
        let mut n = 0;
        for entry in &mut self.entries {
            if let Entry::Waiting { items, sent_at, .. } = entry {
                if now.duration_since(*sent_at) >= timeout {
                    *entry = Entry::Resend {
                        items: std::mem::take(items),
                    };
                    n += 1;
                }
            }
        }
        self.metrics.timeouts.increment(n as u64);
        n
    }

    fn first_resend(&self) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| matches!(e, Entry::Resend { .. }))
    }

    /// The events of the first request due to be sent again.
    pub fn next_resend(&self) -> Option<Vec<Bytes>> {
        match self.entries.get(self.first_resend()?) {
            Some(Entry::Resend { items }) => Some(items.clone()),
            _ => None,
        }
    }

    /// The first resend went out and HEC took it.
    pub fn resent(&mut self, ack_id: Option<u64>) {
        let Some(i) = self.first_resend() else { return };
        let Some(Entry::Resend { items }) = self.entries.get_mut(i) else {
            return;
        };
        let items = std::mem::take(items);
        self.entries[i] = match ack_id {
            Some(ack_id) => Entry::Waiting {
                ack_id,
                items,
                sent_at: Instant::now(),
            },
            None => {
                self.pending -= items.len();
                self.delivered += items.len();
                Entry::Done {
                    events: items.len(),
                }
            }
        };
        self.resent = true;
        self.publish();
    }

    /// The first resend was too large: it becomes two resends, split after `at` events.
    pub fn split_resend(&mut self, at: usize) {
        let Some(i) = self.first_resend() else { return };
        let Some(Entry::Resend { items }) = self.entries.get_mut(i) else {
            return;
        };
        if at == 0 || at >= items.len() {
            return;
        }
        let tail = items.split_off(at);
        self.entries.insert(i + 1, Entry::Resend { items: tail });
    }

    /// HEC indexed the first `delivered` events of the first resend and refused the next
    /// one for `reason`; the rest stays due to be sent again.
    pub fn resend_refused(&mut self, delivered: usize, reason: String) {
        let Some(i) = self.first_resend() else { return };
        let Some(Entry::Resend { items }) = self.entries.get_mut(i) else {
            return;
        };
        let delivered = delivered.min(items.len().saturating_sub(1));
        let rest = items.split_off((delivered + 1).min(items.len()));
        let settled = items.len();
        if let Some(bad) = items.pop() {
            self.refused.push((bad, reason));
        }
        self.entries[i] = Entry::Done { events: settled };
        if !rest.is_empty() {
            self.entries.insert(i + 1, Entry::Resend { items: rest });
        }
        self.pending -= settled;
        self.delivered += delivered;
        self.publish();
    }

    /// What settled since the last call, and the settled events that leave the head.
    pub fn take_settled(&mut self) -> Settled {
        let mut released = 0;
        while let Some(Entry::Done { events }) = self.entries.front() {
            released += events;
            self.entries.pop_front();
        }
        self.unreleased -= released;
        let s = Settled {
            released,
            delivered: std::mem::take(&mut self.delivered),
            refused: std::mem::take(&mut self.refused),
            resent: std::mem::take(&mut self.resent),
        };
        self.publish();
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn acks(cap: usize) -> Acks {
        let registry = crate::metrics::Registry::new();
        Acks::new(
            AckSettings {
                poll_interval: Duration::from_secs(10),
                timeout: Duration::from_secs(300),
                max_pending_events: cap,
            },
            registry.hec_acks("s"),
        )
    }

    fn items(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(i.to_string())).collect()
    }

    #[test]
    fn events_leave_in_order_but_count_when_settled() {
        let mut a = acks(100);
        a.sent(&items(2), Some(0));
        a.sent(&items(3), None);
        a.refused(&items(2), "bad".to_owned());
        assert_eq!(a.room(), 98);
        assert_eq!(
            a.take_settled(),
            Settled {
                delivered: 4,
                refused: vec![(Bytes::from("1"), "bad".to_owned())],
                released: 0,
                resent: false,
            },
            "counted at once, held behind the waiting head"
        );
        assert_eq!(a.unreleased(), 7);
        a.acknowledged(&HashMap::from([("0".to_owned(), true)]));
        assert_eq!(
            a.take_settled(),
            Settled {
                delivered: 2,
                refused: Vec::new(),
                released: 7,
                resent: false,
            }
        );
        assert_eq!((a.unreleased(), a.room()), (0, 100));
    }

    #[test]
    fn overdue_requests_are_resent_split_or_refused_in_place() {
        let mut a = acks(100);
        a.sent(&items(4), Some(0));
        a.sent(&items(1), Some(1));
        assert_eq!(a.mark_overdue(Instant::now() + Duration::from_secs(301)), 2);
        assert!(a.waiting_ids().is_empty());
        a.split_resend(2);
        assert_eq!(a.next_resend().unwrap().len(), 2);
        a.resent(Some(7));
        assert_eq!(a.next_resend().unwrap().len(), 2);
        a.resend_refused(0, "bad".to_owned());
        assert_eq!(
            a.next_resend().unwrap().len(),
            1,
            "the event after the bad one"
        );
        a.resent(None);
        assert_eq!(a.next_resend().unwrap().len(), 1, "the second request");
        assert_eq!(a.waiting_ids(), [7]);
        let c = a.take_settled();
        assert_eq!((c.delivered, c.refused.len(), c.released), (1, 1, 0));
        assert!(c.resent);
        assert_eq!(a.room(), 97);
    }
}
