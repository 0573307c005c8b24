//! Shared support for integration tests: `mod support;` then `support::receiver::Receiver`.
//!
//! Owns nothing itself; each submodule documents its own role.

pub mod receiver;
