//! The coordinator: plans, the run state machine, the JetStream topology, the
//! admin gRPC server and the triggers.
//!
//! # Layout
//! - [`plan`]: the plan format: parse YAML with positions, validate, render templates.
//! - [`run`]: one run's state and the pure fold `state + event → state + commands`.
//! - [`engine`]: the loop that folds the EVENTS stream and carries out commands.
//! - [`admin`]: the tonic admin service (with server reflection).
//! - [`submit`]: accepting a run, shared by gRPC and triggers.
//! - [`trigger`]: `baton.trigger.<plan>` requests.
//! - [`state_store`]: runs as this process folded them, or as their snapshots say.
//! - [`telemetry`]: spans for runs, phases and gates.
//! - [`service`]: `Options` → `build()` → `Coordinator::run(cancel)`.
//! - [`error`]: the crate's one error type.
#![forbid(unsafe_code)]

pub mod admin;
pub mod engine;
pub mod error;
pub mod plan;
pub mod run;
pub mod service;
pub mod state_store;
pub mod submit;
pub mod telemetry;
pub mod trigger;

pub use error::Error;
pub use service::{Coordinator, Handle, Options};
