//! Gate evaluators: one file per gate kind, and the service that answers
//! gate requests from the bus.
//!
//! # Layout
//! - [`kinds`]: one file per gate kind: `tasks`, `expr`, `approval`, `window`.
//!   The expression language and the window schedule they evaluate are in
//!   `baton-plan` ([`baton_plan::expr`], [`baton_plan::window`]).
//! - [`service`]: `Options` → `build()` → `Gates::run(cancel)`.
//! - [`Error`]: why the gates could not start, stopped, or could not answer
//!   one request (consumer, pull, decode, publish), each with its NATS or
//!   decode error as the source and what to do next.
#![forbid(unsafe_code)]

pub mod kinds;
pub mod service;

pub use service::{Gates, Options};

use baton_proto::subjects;

/// Why the gates could not start, stopped, or could not answer one request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Could not connect, or find the streams and buckets, at start.
    #[error(transparent)]
    Bus(#[from] baton_proto::bus::BusError),
    /// The durable consumer of gate requests could not be made or bound, at start.
    #[error(
        "cannot create or bind the gate consumer `{}` on stream {}: {source} — the gates' NATS user \
         must be allowed to create it (see deploy/nats/auth/baton-auth.conf); a consumer of that \
         name made otherwise (push, not pull) must be deleted first: `nats consumer rm {} {}`",
        subjects::GATES_CONSUMER,
        subjects::GATES_STREAM,
        subjects::GATES_STREAM,
        subjects::GATES_CONSUMER
    )]
    Consumer {
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    /// Pulling from the consumer could not start.
    #[error(
        "cannot start pulling gate requests from consumer `{}`: {source} — check that NATS is \
         reachable and the gates' NATS user may pull from {}, then restart the gates",
        subjects::GATES_CONSUMER,
        subjects::GATES_STREAM
    )]
    Subscribe {
        #[source]
        source: async_nats::jetstream::consumer::StreamError,
    },
    /// A message on the gate queue is not a gate request: it is dropped (acknowledged).
    #[error(
        "the message on `{subject}` is not a gate request ({source}); it is dropped — a \
         coordinator of another Baton version may be publishing it: run one version of Baton"
    )]
    Decode {
        subject: String,
        #[source]
        source: prost::DecodeError,
    },
    /// A verdict could not be published: the request is not acknowledged, so
    /// JetStream delivers it again.
    #[error(
        "the verdict of gate {gate} of phase `{phase}` of run {run} is not published: {source} — \
         the request is delivered again; if this repeats, check that NATS is up and the gates' \
         NATS user may publish verdicts (baton.evt.*.gate)"
    )]
    Publish {
        run: String,
        phase: String,
        gate: u32,
        #[source]
        source: async_nats::Error,
    },
    /// The request loop stopped while the gates served, or did not stop in time.
    #[error("{0}")]
    Stopped(#[from] baton_proto::supervise::Stopped),
}
