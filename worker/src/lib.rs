//! The worker: role consumers, the container runtime, the sandbox, log
//! streaming, result capture and heartbeats.
//!
//! # Layout
//! - [`artifacts`]: `/baton/out` files to the object store (size limit, SHA-256) and inputs back to `/baton/in`.
//! - [`runtime`]: how one attempt runs: Docker (sandboxed), process (unsandboxed), noop (benchmarks).
//! - [`service`]: `Options` → `build(runtime)` → `Worker::run(cancel)`: consumers and fetch loops.
//! - [`task`]: one task message from start to end, in three steps: claim (`task/claim_step.rs`) → run (`task/run_step.rs`) → report (`task/report_step.rs`).
//! - [`secrets`]: secret references resolved on this host; [`redact`]: their values out of every output.
//! - [`registry`]: this worker's entry in the `workers` bucket.
//! - [`claim`]: one worker per attempt, whatever the queue delivers.
//! - [`cancel`]: running tasks by run, so that cancelling a run kills them.
#![forbid(unsafe_code)]

pub mod artifacts;
pub mod cancel;
pub mod claim;
pub mod redact;
pub mod registry;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod task;

pub use service::{Options, Worker};

/// Why the worker could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no roles given — pass --roles arch,sec,…")]
    NoRoles,
    #[error("role `{0}` is not a valid id — use lowercase letters, digits, - and _")]
    BadRole(String),
    /// A role's durable consumer on the tasks stream, at start.
    #[error("cannot create or find the consumer `{consumer}` of role `{role}` on the tasks stream: {source} — check that NATS is reachable, that a coordinator created the streams, and that this worker's NATS user may create consumers for role `{role}`")]
    Consumer {
        role: String,
        consumer: String,
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    /// The core NATS subscriptions through which cancellations and stops arrive.
    #[error("cannot subscribe to `{subject}`: {source} — check the connection to NATS and that this worker's NATS user may subscribe to `{subject}`")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The registry's bucket was deleted while the worker served: it would
    /// run on unseen, so it stops.
    #[error("the workers bucket `{bucket}` is gone, so this worker can no longer register: {source} — restart the worker (or a coordinator), which creates the bucket again")]
    RegistryGone {
        bucket: String,
        #[source]
        source: async_nats::jetstream::kv::PutError,
    },
    /// Could not connect, or find the streams and buckets, at start.
    #[error(transparent)]
    Bus(#[from] baton_proto::bus::BusError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    /// A part of the worker stopped while it served, or did not stop in time.
    #[error("{0}")]
    Stopped(#[from] baton_proto::supervise::Stopped),
}
