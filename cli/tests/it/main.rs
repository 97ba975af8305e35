//! The `baton` crate's integration tests, as one binary: one module per
//! area, all on what [`support`] shares. One binary links the product once,
//! where one binary per file linked it nineteen times.
//!
//! They run against a real nats-server (`BATON_NATS_SERVER`) and real
//! Docker, in parallel threads of one process: see [`support`] for what
//! that asks of a test. Run one area with its module path, e.g.
//! `cargo test -p baton --test it e2e_docker::`.

mod support;

mod approvals;
mod audit;
mod chaos;
mod cli;
mod deadletter_sweep;
mod e2e_api;
mod e2e_auth;
mod e2e_docker;
mod e2e_hooks;
mod e2e_incidents;
mod e2e_recovery;
mod e2e_reliability;
mod e2e_takeover;
mod evidence;
mod examples;
mod follow_streams;
mod large_snapshots;
mod lease_stall;
mod limits;
mod nats_permissions;
mod roles;
mod sandbox;
mod secrets_canary;
