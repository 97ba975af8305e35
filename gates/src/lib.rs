//! Gate evaluators: one file per gate kind, and the service that answers
//! gate requests from the bus.
//!
//! # Layout
//! - [`kinds`]: one file per gate kind: `tasks`, `expr`, `approval`, `window`.
//!   The expression language and the window schedule they evaluate are in
//!   `baton-plan` ([`baton_plan::expr`], [`baton_plan::window`]).
//! - [`service`]: `Options` → `build()` → `Gates::run(cancel)`.
#![forbid(unsafe_code)]

pub mod kinds;
pub mod service;

pub use service::{Gates, Options};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Nats(String),
    /// Could not connect, or find the streams and buckets, at start.
    #[error(transparent)]
    Bus(#[from] baton_proto::bus::BusError),
    /// The request loop stopped while the gates served, or did not stop in time.
    #[error("{0}")]
    Stopped(#[from] baton_proto::supervise::Stopped),
}
