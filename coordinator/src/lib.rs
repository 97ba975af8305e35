//! The coordinator: the run state machine, the JetStream topology, the
//! admin gRPC server and the triggers. The plan format it runs is `baton-plan`.
//!
//! # Layout
//! Linked modules are public: other crates use them (the `baton` binary and
//! its tests, this crate's tests). The rest are private.
//!
//! - [`run`]: one run's state and the pure fold `state + event → state + commands`.
//! - `engine`: the loop that folds the runs this coordinator owns, and takes over orphaned ones.
//! - `deadletter`: task messages and gate requests the queues gave up on, moved where people
//!   see them (on the advisory, and by a periodic sweep for advisories nobody heard).
//! - `admin`: the tonic admin service (with server reflection).
//! - `follow`: `Logs` and `WatchRun` streams, which end (and drop their consumer) with their client.
//! - [`audit`]: the hash-chained audit trail: records, hashing, verifying.
//! - `approvals`: people's decisions, over gRPC or NATS (`baton.approve.<identity>.<run>`), checked and published alike.
//! - [`auth`]: who calls the admin API ([`auth::Identity`]) and with which role.
//! - [`evidence`]: signed evidence of ended runs (in-toto in DSSE, ed25519).
//! - `roles`: the role registry (`baton role apply`), roles plans use without declaring.
//! - `submit`: accepting a run, shared by gRPC and triggers.
//! - [`incident`]: incidents out to `baton.incident.<run>` and the plan's webhook.
//! - `requests`: the NATS request loop triggers and approvals share (queue group, JSON replies).
//! - `trigger`: `baton.trigger.<plan>` requests.
//! - [`hooks`]: HTTP webhook triggers (`POST /hooks/<plan>`): signatures, bodies, Alertmanager.
//! - `lease`: run ownership across coordinators: leases renewed by compare-and-swap.
//! - `state_store`: runs as this process folded them, or as their snapshots say.
//! - `telemetry`: spans for runs, phases and gates.
//! - `workers`: the live workers from the `workers` bucket.
//! - `service`: [`Options`] → `build()` → [`Coordinator::run`]`(cancel)`.
//! - `error`: [`Error`], the crate's one error type.
#![forbid(unsafe_code)]

mod admin;
mod approvals;
pub mod audit;
pub mod auth;
mod deadletter;
mod engine;
mod error;
pub mod evidence;
mod follow;
pub mod hooks;
pub mod incident;
mod lease;
mod requests;
mod roles;
pub mod run;
mod service;
mod state_store;
mod submit;
mod telemetry;
mod trigger;
mod workers;

pub use error::Error;
pub use service::{Coordinator, Handle, Options};
