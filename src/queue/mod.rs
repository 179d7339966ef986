//! Per-sink queues of encoded events: bounded by events and bytes, filled all-or-nothing by
//! dispatch (`try_reserve` then `commit`) and drained by the sink's worker (`next_batch` then
//! `ack`). Events stay in the queue until their sink acknowledges them, so a batch that fails is
//! still there to retry, and queue depth counts what is not yet delivered.

pub mod log;
pub mod memory;

pub use memory::{MemoryQueue, QueueFull, Reservation};
