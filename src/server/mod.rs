//! The agent's HTTP server: `/metrics`, `/ready`.
//!
//! (Being written.)
