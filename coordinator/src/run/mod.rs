//! One run: its state, the pure fold over its events, and views of it.
//!
//! # Layout
//! - `state`: `RunState` and the status enums; what a snapshot stores.
//! - `fold`: `RunState::submitted` and `RunState::apply`: events in, [`Command`]s out.
//! - `phase`: a stage's life: `when`, ready tasks, canary holds, promotion, `on_fail`, the run's end.
//! - `gates`: asking a stage's gates and folding their answers (windows, loops' `until`).
//! - `flow`: between stages: skips, timers, loop iterations, `stop_when`, incidents, rollback start.
//! - `expiry`: approvals that expire (`fail` or `halt`), and the stage timers a takeover re-arms.
//! - `rollback`: rollback steps, newest phase first.
//! - `claims`: who may report an attempt: the worker that claimed it (results and losses are checked against the claim).
//! - `lost`: attempts lost with their worker, dead-lettered, or answering late.
//! - `schema_check`: a successful result against its role's declared outputs.
//! - `dispatch`: one attempt of a task, with its templates rendered.
//! - `view`: the admin API's `Run`, the gate context, "what it waits for".

pub(crate) mod claims;
mod dispatch;
mod expiry;
mod flow;
pub mod fold;
mod gates;
mod lost;
mod phase;
mod rollback;
mod schema_check;
pub mod state;
pub mod view;

#[cfg(test)]
mod tests;

pub use claims::{digest_of, ClaimRecord};
pub use fold::{backoff_ms, Command};
pub use phase::gate_kind;
pub use state::*;
