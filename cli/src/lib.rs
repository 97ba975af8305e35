//! The parts of the `baton` binary that tests and benchmarks reuse.
//!
//! # Layout
//! - [`admin_client`]: connecting to the admin API: the token, TLS and mTLS.
//! - [`local`]: a whole Baton (coordinator, gates, workers) inside one process,
//!   on a given NATS server: what `baton dev`, `baton bench` and the end-to-end
//!   tests run.
//! - [`nats_server`]: finding and starting a local nats-server.
//! - [`chaos`]: the fault-injection runner (`baton chaos`) and its invariant checks.
#![forbid(unsafe_code)]

pub mod admin_client;
pub mod chaos;
pub mod local;
pub mod nats_server;
