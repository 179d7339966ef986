//! The webhook listener's connection threads: each runs a single-threaded tokio runtime with
//! its own event loop, and a connection stays on the thread it was handed to for its life.
//!
//! On the work-stealing runtime every socket event could wake a second worker to look for work
//! it rarely found, and a connection's task moved between workers with its cache lines; on two
//! cores shared with other processes that was a tenth of the CPU a request cost. Here a socket
//! is registered with the event loop of the thread that serves it, so its readiness wakes that
//! thread alone. Bodies decoded off the event loop go to the blocking pool of the serving
//! thread's runtime, still at most `dispatch::heavy_permits` at once across all of them. The
//! sink workers and the admin and metrics listeners stay on the main runtime.

use std::future::Future;
use std::io;
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// How long a stopping thread waits for its blocking tasks (bodies decoded off the event loop;
/// each is bounded by the body cap) before it lets them finish on their own.
const BLOCKING_EXIT_WAIT: Duration = Duration::from_secs(1);

/// Threads with one single-threaded runtime each. Dropping it stops them: tasks still on them
/// are dropped (a connection past the shutdown grace period is closed).
pub struct ConnThreads {
    handles: Vec<Handle>,
    next: usize,
    stop: CancellationToken,
}

impl ConnThreads {
    /// Starts `n` (at least one) threads named `<name>-<i>`; an error if one cannot be started
    /// (then those already started stop).
    pub fn start(name: &str, n: usize) -> io::Result<ConnThreads> {
        let stop = CancellationToken::new();
        let mut threads = ConnThreads {
            handles: Vec::with_capacity(n.max(1)),
            next: 0,
            stop: stop.clone(),
        };
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::sync_channel(1);
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    // This thread's counter adds go to a cell of its own.
                    crate::metrics::sharded::pin_thread(i);
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    // Disk queues answer this thread's requests through its relay.
                    runtime.block_on(async { crate::queue::reply::start_relay() });
                    let _ = tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(stop.cancelled());
                    runtime.shutdown_timeout(BLOCKING_EXIT_WAIT);
                })?;
            let handle = rx.recv().map_err(|_| {
                io::Error::other(format!(
                    "thread {name}-{i} ended before its runtime started"
                ))
            })??;
            threads.handles.push(handle);
        }
        Ok(threads)
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Spawns `f` on the next thread in turn: connections of a keep-alive sender are
    /// long-lived, so turns spread them as evenly as anything would.
    pub fn spawn<F>(&mut self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Never empty once started (`start` makes at least one).
        let i = self.next % self.handles.len().max(1);
        self.next = self.next.wrapping_add(1);
        if let Some(handle) = self.handles.get(i) {
            drop(handle.spawn(f));
        }
    }
}

impl Drop for ConnThreads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test]
    async fn tasks_run_on_the_named_threads_in_turn_and_stop_with_them() {
        let mut threads = ConnThreads::start("conn-test", 3).unwrap();
        assert_eq!(threads.len(), 3);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut done = Vec::new();
        for _ in 0..6 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let seen = seen.clone();
            threads.spawn(async move {
                // A timer and a spawned task work on the thread's own runtime.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let name = tokio::spawn(async { thread_name() }).await.unwrap();
                seen.lock().unwrap().push(name);
                let _ = tx.send(());
            });
            done.push(rx);
        }
        for rx in done {
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .unwrap()
                .unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        let names: HashSet<&str> = seen.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            HashSet::from(["conn-test-0", "conn-test-1", "conn-test-2"]),
            "{seen:?}"
        );
        for name in &names {
            assert_eq!(seen.iter().filter(|n| n == name).count(), 2, "{seen:?}");
        }

        // Dropped: a task that would run forever is dropped with its thread's runtime.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        threads.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(threads);
        let closed = tokio::time::timeout(Duration::from_secs(10), rx).await;
        assert!(matches!(closed, Ok(Err(_))), "the task was dropped");
    }
}
