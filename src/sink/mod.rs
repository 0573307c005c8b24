//! Delivery to Loki: fan-out to clients, batching, encoding, the HTTP client,
//! retries.
//!
//! Owns everything between the pipeline's output and Loki's answer:
//! - [`fanout`]: hands each entry to every client, charging the memory
//!   [`Budget`](crate::ack::Budget) first (the backpressure point);
//! - the per-client batcher, encoders and HTTP client (see their modules).
//!
//! Must never: acknowledge an entry before Loki accepted it or the agent
//! deliberately dropped it and counted the drop; hold more than the budget.

pub mod backoff;
pub mod batch;
pub mod client;
pub mod dryrun;
pub mod encode;
pub mod fanout;
pub mod http;
pub mod prepare;
pub mod proto;
pub mod tls;
