//! The audit trail: one SHA-256 hash chain per run on `baton.audit.<run>`
//! (stream `BATON_AUDIT`), one record per decision-bearing event.
//!
//! # Layout
//! - [`chain`]: the record, its canonical bytes and hash, and [`chain::verify`].
//! - [`record`]: which events are audited and what their records say (pure).
//!
//! The writer is the run's owner, in the fold loop (`engine::audit`); the
//! verifier (`baton audit verify`) reads the stream without the coordinator.

pub mod chain;
pub mod record;

pub use chain::{verify, Finding, Record, Tamper, Verified, GENESIS};
pub use record::{from_event, Entry};
