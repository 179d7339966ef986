//! Answers from a disk queue's writer thread to the requests waiting for it, with one wake-up
//! per connection thread per write instead of one per request.
//!
//! A request waits for its [`Written`](super::Written) receipt on the connection thread that
//! serves it. Completing the receipt from the writer thread schedules the request's task from
//! outside its runtime, and every such wake-up writes to the runtime's eventfd: under
//! `fsync = "always"` that was one syscall on the writer thread per request (a batch of eight
//! requests: eight, between one fdatasync and the next) and as many wake-ups of the connection
//! threads. Each connection thread runs a relay task instead: the writer hands it all the
//! answers of one write that belong to its requests, in one message, and the relay completes
//! them from inside the runtime, where a wake-up is a push onto the local run queue.
//!
//! Requests appended from any other thread (the main runtime, the blocking pool for large
//! bodies) have no relay and are answered directly, as before. The relay's channel holds at
//! most one message per write of the writer, and each message at most the requests that write
//! answered, which the writer's own channel bounds.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::disk::WriteError;

/// A request's answer, and the sender that delivers it.
pub(super) type Reply = (
    oneshot::Sender<Result<(), WriteError>>,
    Result<(), WriteError>,
);

/// The relay of one connection thread.
pub(super) struct Relay {
    tx: mpsc::UnboundedSender<Vec<Reply>>,
}

thread_local! {
    static RELAY: RefCell<Option<Arc<Relay>>> = const { RefCell::new(None) };
}

/// Starts the calling thread's relay on its runtime, which must be a current-thread runtime
/// that this thread drives (a connection thread). The relay stops with the runtime; answers
/// handed to it after that are delivered directly.
pub fn start_relay() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Reply>>();
    tokio::spawn(async move {
        while let Some(replies) = rx.recv().await {
            for (reply, result) in replies {
                let _ = reply.send(result);
            }
        }
    });
    RELAY.with(|r| *r.borrow_mut() = Some(Arc::new(Relay { tx })));
}

/// The calling thread's relay, if it has one.
pub(super) fn current() -> Option<Arc<Relay>> {
    RELAY.with(|r| r.borrow().clone())
}

/// Collects one write's answers by relay, then hands each relay its share at once.
#[derive(Default)]
pub(super) struct Answers {
    /// Few entries: one per connection thread that had a request in the write.
    by_relay: Vec<(Arc<Relay>, Vec<Reply>)>,
}

impl Answers {
    /// Answers a request now if it has no relay, else keeps the answer for [`Answers::send`].
    pub(super) fn add(&mut self, relay: Option<Arc<Relay>>, reply: Reply) {
        let Some(relay) = relay else {
            let (tx, result) = reply;
            let _ = tx.send(result);
            return;
        };
        match self
            .by_relay
            .iter_mut()
            .find(|(r, _)| Arc::ptr_eq(r, &relay))
        {
            Some((_, replies)) => replies.push(reply),
            None => self.by_relay.push((relay, vec![reply])),
        }
    }

    /// Hands every relay its answers (one wake-up each). A relay whose runtime has stopped
    /// gives them back, and they are delivered directly.
    pub(super) fn send(&mut self) {
        for (relay, replies) in self.by_relay.drain(..) {
            if let Err(mpsc::error::SendError(replies)) = relay.tx.send(replies) {
                for (tx, result) in replies {
                    let _ = tx.send(result);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;

    /// A current-thread runtime on a thread of its own, like a connection thread, with its
    /// relay started; returns its handle and the thread's relay.
    fn conn_thread() -> (
        tokio::runtime::Handle,
        Arc<Relay>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                start_relay();
                tx.send((tokio::runtime::Handle::current(), current().unwrap()))
                    .unwrap();
            });
            rt.block_on(async {
                tokio::task::spawn_blocking(move || stop_rx.recv())
                    .await
                    .unwrap()
                    .ok();
            });
        });
        let (handle, relay) = rx.recv().unwrap();
        (handle, relay, stop_tx)
    }

    #[test]
    fn answers_reach_requests_through_their_threads_relay_in_one_message_each() {
        let (h1, r1, stop1) = conn_thread();
        let (h2, r2, stop2) = conn_thread();
        let mut answers = Answers::default();
        let mut waiting = Vec::new();
        for i in 0..6u32 {
            let (tx, rx) = oneshot::channel();
            let (handle, relay) = if i % 2 == 0 { (&h1, &r1) } else { (&h2, &r2) };
            let result = if i == 3 {
                Err(WriteError::Fsync("disk full".into()))
            } else {
                Ok(())
            };
            answers.add(Some(relay.clone()), (tx, result));
            waiting.push(handle.spawn(rx));
        }
        // Grouped: one entry per relay, each with its three answers, none delivered yet.
        assert_eq!(answers.by_relay.len(), 2);
        assert!(answers.by_relay.iter().all(|(_, v)| v.len() == 3));
        answers.send();
        assert!(answers.by_relay.is_empty());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let results: Vec<_> = rt.block_on(async {
            let mut out = Vec::new();
            for w in waiting {
                let r = tokio::time::timeout(Duration::from_secs(10), w)
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                out.push(r.map_err(|e| e.to_string()));
            }
            out
        });
        assert_eq!(results[3], Err("disk full".to_owned()));
        assert!(results.iter().enumerate().all(|(i, r)| i == 3 || r.is_ok()));
        drop((stop1, stop2));
    }

    #[test]
    fn a_request_without_a_relay_or_whose_relay_stopped_is_answered_directly() {
        // No relay on this thread: answered by `add` itself.
        assert!(current().is_none());
        let mut answers = Answers::default();
        let (tx, mut rx) = oneshot::channel();
        answers.add(current(), (tx, Ok(())));
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));

        // A relay whose runtime is gone: `send` delivers its answers itself.
        let (_handle, relay, stop) = conn_thread();
        drop(stop);
        for _ in 0..1000 {
            if relay.tx.is_closed() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(relay.tx.is_closed());
        let (tx, mut rx) = oneshot::channel();
        answers.add(Some(relay), (tx, Err(WriteError::Append("gone".into()))));
        answers.send();
        assert!(matches!(rx.try_recv(), Ok(Err(WriteError::Append(_)))));
    }
}
