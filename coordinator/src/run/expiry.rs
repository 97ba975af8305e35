//! Approvals that expire: `approval: { expires: 4h, on_expiry: fail | halt }`.
//!
//! The deadline is set when a stage's gates are first asked and kept in the
//! state (`PhaseState::approval_expires_ms`), so a coordinator taking the run
//! over re-arms the same stage timer. A timer is armed each time the approval
//! answers pending; whichever fires at or after the deadline while the
//! approval is still pending expires it. An answer still in flight wins over
//! the timer: the expiry then comes with that answer, if it is pending.

use baton_plan::{format_duration, ApprovalSpec, GateSpec, OnExpiry};
use baton_proto::v1;

use super::fold::Command;
use super::state::*;

impl RunState {
    /// The approval gate of stage `si` that expires first, if any expires.
    fn expiring_approval(&self, si: usize) -> Option<ApprovalSpec> {
        let stage = &self.plan.stages[si];
        self.plan
            .stage_gates(stage)
            .iter()
            .filter_map(|g| match &g.spec {
                GateSpec::Approval(a) if !a.expires.is_zero() => Some(a.clone()),
                _ => None,
            })
            .min_by_key(|a| a.expires)
    }

    /// Start the approval's clock the first time a stage's gates are asked;
    /// later rounds (each decision asks again) keep the deadline.
    pub(super) fn start_approval_clock(&mut self, si: usize, now: i64) {
        if self.phases[si].approval_expires_ms > 0 {
            return;
        }
        if let Some(a) = self.expiring_approval(si) {
            // Plans cap `expires` at 90 days; saturate anyway, since the
            // fold must never panic on what a stored plan says.
            let expires = i64::try_from(a.expires.as_millis()).unwrap_or(i64::MAX);
            self.phases[si].approval_expires_ms = now.saturating_add(expires);
        }
    }

    /// An approval gate of the stage answered pending this round.
    pub(super) fn approval_pending(&self, si: usize) -> bool {
        self.phases[si]
            .gates
            .iter()
            .any(|g| g.kind == "approval" && g.verdict == Some(Verdict::Pending))
    }

    /// At `t`, the stage's approval is past its deadline and still pending.
    pub(super) fn approval_due(&self, si: usize, t: i64) -> bool {
        let p = &self.phases[si];
        p.status == PhaseStatus::Gating
            && p.approval_expires_ms > 0
            && t >= p.approval_expires_ms
            && self.approval_pending(si)
    }

    /// Approvals that count towards the quorum: distinct people, with a
    /// reason, and not the submitter when self-approval is forbidden (the
    /// same rule the gate evaluator applies).
    fn counted_approvals(&self, si: usize, spec: &ApprovalSpec) -> usize {
        let mut who: Vec<&str> = self.phases[si]
            .decisions
            .iter()
            .filter(|d| d.approve && !d.reason.trim().is_empty())
            .filter(|d| spec.allow_self_approval || d.by != self.submitted_by)
            .map(|d| d.by.as_str())
            .collect();
        who.sort_unstable();
        who.dedup();
        who.len()
    }

    /// The approval ran out of time: fail the stage (its `on_fail` applies)
    /// or halt the run with an incident.
    pub(super) fn approval_expired(&mut self, si: usize, now: i64, out: &mut Vec<Command>) {
        let Some(spec) = self.expiring_approval(si) else {
            return;
        };
        let reason = format!(
            "approval expired after {} ({}/{} approvals)",
            format_duration(spec.expires),
            self.counted_approvals(si, &spec),
            spec.quorum
        );
        match spec.on_expiry {
            OnExpiry::Fail => self.phase_failed(si, reason, now, out),
            OnExpiry::Halt => {
                self.end_stage(si, PhaseStatus::Failed, now);
                self.phases[si].reason = reason.clone();
                self.phase_changed(si, v1::PhaseStatus::Failed, reason.clone(), out);
                self.raise_incident("halt", si, vec![reason.clone()], false, now, out);
                let id = self.phases[si].id.clone();
                self.finish(
                    RunStatus::Halted,
                    format!("phase {id} halted the run: {reason}"),
                    now,
                    out,
                );
            }
        }
    }

    /// The stage timers the state holds for the current stage: a canary
    /// hold, a closed window, an approval's expiry. A coordinator taking the
    /// run over arms them again, since they died with the previous owner.
    pub fn stage_timers(&self) -> Vec<Command> {
        let Some(p) = self.phases.get(self.current) else {
            return Vec::new();
        };
        if self.mode != Mode::Forward || self.status.is_terminal() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if p.timer_at_ms > 0 && matches!(p.status, PhaseStatus::Holding | PhaseStatus::Gating) {
            out.push(self.stage_timer(self.current, p.timer_at_ms));
        }
        if p.status == PhaseStatus::Gating && p.approval_expires_ms > 0 {
            out.push(self.stage_timer(self.current, p.approval_expires_ms));
        }
        out
    }
}
