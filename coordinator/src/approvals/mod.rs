//! People's decisions on a run, from any channel: the admin API's
//! `Approve`/`Reject` and NATS requests on `baton.approve.<identity>.<run>`.
//! Both go through [`decide`], so both check the same things and publish the
//! same `decision` event.
//!
//! # Layout
//! - [`decide`]: check a decision and publish it.
//! - [`nats`]: the `baton.approve.<identity>.<run>` listener.

pub mod nats;

use baton_plan::GateSpec;
use baton_proto::bus;
use baton_proto::v1::{self, event::Body};

use crate::run::{Mode, PhaseStatus, RunState, RunStatus, TaskStatus};
use crate::state_store::RunStore;
use crate::Error;

/// Longest reason a decision may carry: it lands in events, the audit
/// trail and the evidence, which are read by people.
pub const MAX_REASON_BYTES: usize = 4096;

/// One decision as a person made it. `by` is the identity of the credential
/// it came with (the admin token's name, or the NATS subject's identity
/// token), never a name the body claims.
#[derive(Clone, Debug)]
pub struct DecisionInput {
    pub run_id: String,
    pub by: String,
    pub approve: bool,
    pub reason: String,
    /// Empty: whatever waits for a person in the run now.
    pub task_id: String,
}

/// Check `d` against the run as it is and publish it as a `decision` event.
/// The fold and the approval gate apply the rules again when it arrives:
/// these checks exist to tell the person at once, not to enforce alone.
pub async fn decide(
    js: &async_nats::jetstream::Context,
    store: &RunStore,
    d: DecisionInput,
) -> Result<(), Error> {
    if d.reason.trim().is_empty() {
        return Err(Error::ReasonRequired {
            run: d.run_id.clone(),
        });
    }
    if d.reason.len() > MAX_REASON_BYTES {
        return Err(Error::ReasonTooLong {
            run: d.run_id.clone(),
            bytes: d.reason.len(),
        });
    }
    let st = store.get(&d.run_id).await?;
    if !awaits_decision(&st) {
        return Err(Error::NothingToDecide {
            run: st.run_id.clone(),
            status: st.status.as_str().to_string(),
        });
    }
    if d.approve && d.task_id.is_empty() && self_approval_forbidden(&st, &d.by) {
        return Err(Error::SelfApproval {
            run: st.run_id.clone(),
            who: d.by,
        });
    }
    // Each decision is its own fact; two people approving are two events.
    let id = baton_proto::subjects::msg_id::decision(&st.run_id, rand::random::<u64>());
    let body = Body::Decision(v1::Decision {
        approve: d.approve,
        by: d.by,
        reason: d.reason,
        task_id: d.task_id,
    });
    bus::publish_event(js, &st.run_id, &id, body, &st.traceparent).await?;
    Ok(())
}

/// The run folds a decision now: a task awaits approval, or the current
/// phase is gating with an approval gate. Not "the gate answered pending":
/// while the gates are asked again after one approval, a second person's
/// approval must still be taken.
fn awaits_decision(st: &RunState) -> bool {
    if st.status != RunStatus::Running {
        return false;
    }
    if st
        .tasks
        .values()
        .any(|t| t.status == TaskStatus::AwaitingApproval)
    {
        return true;
    }
    st.mode == Mode::Forward
        && st.phases.get(st.current).is_some_and(|p| {
            p.status == PhaseStatus::Gating && p.gates.iter().any(|g| g.kind == "approval")
        })
}

/// `who` submitted the run, and every approval gate the run waits on now
/// forbids self-approval (a task awaiting approval is not such a gate).
fn self_approval_forbidden(st: &RunState, who: &str) -> bool {
    if who != st.submitted_by {
        return false;
    }
    let Some(p) = st.phases.get(st.current) else {
        return false;
    };
    if p.status != PhaseStatus::Gating {
        return false;
    }
    let stage = &st.plan.stages[st.current];
    let mut approvals = st
        .plan
        .stage_gates(stage)
        .into_iter()
        .filter_map(|g| match g.spec {
            GateSpec::Approval(a) => Some(a),
            _ => None,
        })
        .peekable();
    approvals.peek().is_some() && approvals.all(|a| !a.allow_self_approval)
}
