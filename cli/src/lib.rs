//! The parts of the `baton` binary that tests and benchmarks reuse.
//!
//! # Layout
//! - [`local`]: a whole Baton (coordinator, gates, workers) inside one process,
//!   on a given NATS server: what `baton dev`, `baton bench` and the end-to-end
//!   tests run.
//! - [`nats_server`]: `baton dev`'s and `baton bench`'s own nats-server, through
//!   test-support's launcher.
#![forbid(unsafe_code)]

pub mod local;
pub mod nats_server;
