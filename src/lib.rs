//! tailtrace: a Promtail-compatible log shipping agent that never loses a line.
//!
//! Data flows `source` → `pipeline` → `sink`, and acknowledgements flow back
//! through [`ack`] to `positions`. See README.md for the guided tour.

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod ack;
pub mod agent;
pub mod config;
pub mod entry;
pub mod fasthash;
#[doc(hidden)]
pub mod fuzzing;
pub mod kube;
pub mod labels;
pub mod memory;
pub mod meta;
pub mod metrics;
pub mod pipeline;
pub mod positions;
pub mod server;
pub mod sink;
pub mod source;
pub mod spool;
pub mod text;
pub mod wire;
