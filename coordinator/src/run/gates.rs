//! A stage's gates: asking them, and folding their answers into promotion,
//! another loop iteration, a wait (a person, a window) or a failure.

use baton_plan::GateSpec;
use baton_proto::{kinds, v1};

use super::fold::Command;
use super::state::*;

impl RunState {
    pub(super) fn ask_gates(&mut self, si: usize, now: i64, out: &mut Vec<Command>) {
        self.start_approval_clock(si, now);
        let phase = &mut self.phases[si];
        phase.round += 1;
        phase.timer_at_ms = 0;
        for g in &mut phase.gates {
            g.verdict = None;
            g.reasons.clear();
            g.retry_at_ms = 0;
        }
        out.extend(self.gate_requests(si));
    }

    /// The gate requests of a stage's current round, built from the state as
    /// it is (so a coordinator taking over can ask again what went unanswered).
    pub fn gate_requests(&self, si: usize) -> Vec<Command> {
        let stage = &self.plan.stages[si];
        let plan_phase = &self.plan.phases[stage.phase];
        let context = super::view::gate_context(self, si);
        let phase = &self.phases[si];
        // Tasks skipped by their own `when` did not run by design: the
        // `tasks` gate counts the tasks that were meant to run.
        let summaries: Vec<v1::TaskSummary> = plan_phase
            .tasks
            .iter()
            .map(|t| &self.tasks[&t.id])
            .filter(|s| !s.by_condition)
            .map(|s| kinds::task_summary(s.id.clone(), s.status.into(), s.error.clone()))
            .collect();
        let decisions: Vec<v1::Decision> = phase
            .decisions
            .iter()
            .map(|d| v1::Decision {
                approve: d.approve,
                by: d.by.clone(),
                reason: d.reason.clone(),
                task_id: String::new(),
            })
            .collect();
        self.plan
            .stage_gates(stage)
            .iter()
            .enumerate()
            .map(|(i, g)| Command::AskGate {
                kind: gate_kind(&g.spec).to_string(),
                request: v1::GateRequest {
                    run_id: self.run_id.clone(),
                    phase_id: phase.id.clone(),
                    gate_index: i as u32,
                    round: phase.round,
                    spec: Some(gate_spec(&g.spec)),
                    tasks: summaries.clone(),
                    context_json: context.clone(),
                    decisions: decisions.clone(),
                    traceparent: self.traceparent.clone(),
                    submitted_by: self.submitted_by.clone(),
                },
            })
            .collect()
    }

    pub(super) fn gate_evaluated(
        &mut self,
        g: &v1::GateEvaluated,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        let Some(si) = self.phases.iter().position(|p| p.id == g.phase_id) else {
            return;
        };
        let phase = &mut self.phases[si];
        if phase.round != g.round || phase.status != PhaseStatus::Gating {
            return;
        }
        let Some(gate) = phase.gates.get_mut(g.gate_index as usize) else {
            return;
        };
        if gate.verdict.is_some() && gate.verdict != Some(Verdict::Pending) {
            return;
        }
        gate.verdict = Some(match v1::Verdict::try_from(g.verdict) {
            Ok(v1::Verdict::Pass) => Verdict::Pass,
            Ok(v1::Verdict::Pending) => Verdict::Pending,
            _ => Verdict::Fail,
        });
        gate.reasons = g.reasons.clone();
        gate.retry_at_ms = g.retry_at_ms;
        let main_failed = failed(phase, false);
        if !main_failed.is_empty() {
            let reason = format!("gate failed: {}", main_failed.join("; "));
            return self.phase_failed(si, reason, now, out);
        }
        if phase.gates.iter().all(|g| g.verdict == Some(Verdict::Pass)) {
            return self.phase_passed(si, now, out);
        }
        if !phase.gates.iter().all(|g| g.verdict.is_some()) {
            return;
        }
        // Every gate answered and an approval is still short of its quorum.
        if self.approval_due(si, now) {
            return self.approval_expired(si, now, out);
        }
        let expires = self.phases[si].approval_expires_ms;
        let phase = &self.phases[si];
        let pending: Vec<&GateState> = phase
            .gates
            .iter()
            .filter(|g| g.verdict == Some(Verdict::Pending))
            .collect();
        if pending.is_empty() {
            // Only `until` gates failed: the iteration is not green.
            let why = failed(phase, true).join("; ");
            return self.iteration_not_green(si, why, now, out);
        }
        let next_window = pending
            .iter()
            .map(|g| g.retry_at_ms)
            .filter(|&t| t > 0)
            .min();
        let id = phase.id.clone();
        let reasons: Vec<String> = pending
            .iter()
            .flat_map(|g| g.reasons.iter().map(move |r| format!("{}: {r}", g.kind)))
            .collect();
        if let Some(at_ms) = next_window {
            self.phases[si].timer_at_ms = at_ms;
            self.phase_changed(si, v1::PhaseStatus::Waiting, reasons.join("; "), out);
            out.push(self.stage_timer(si, at_ms));
        } else {
            self.phase_changed(
                si,
                v1::PhaseStatus::AwaitingApproval,
                format!("phase {id} waits for an approval"),
                out,
            );
        }
        if expires > 0 && self.approval_pending(si) {
            out.push(self.stage_timer(si, expires));
        }
    }
}

/// Reasons of the failed gates: the stage's own (`until` false) or its loop's.
fn failed(phase: &PhaseState, until: bool) -> Vec<String> {
    phase
        .gates
        .iter()
        .filter(|g| g.until == until && g.verdict == Some(Verdict::Fail))
        .flat_map(|g| g.reasons.iter().map(move |r| format!("{}: {r}", g.kind)))
        .collect()
}

pub fn gate_kind(g: &GateSpec) -> &'static str {
    match g {
        GateSpec::Tasks { .. } => "tasks",
        GateSpec::Expr { .. } => "expr",
        GateSpec::Approval { .. } => "approval",
        GateSpec::Window { .. } => "window",
    }
}

fn gate_spec(g: &GateSpec) -> v1::GateSpec {
    use v1::gate_spec::Kind;
    v1::GateSpec {
        kind: Some(match g {
            GateSpec::Tasks { min_ok } => Kind::Tasks(v1::TasksGate {
                min_ok: min_ok.unwrap_or(0),
            }),
            GateSpec::Expr { expr } => Kind::Expr(v1::ExprGate { expr: expr.clone() }),
            GateSpec::Approval(a) => Kind::Approval(v1::ApprovalGate {
                quorum: a.quorum,
                allow_self_approval: a.allow_self_approval,
                expires_ms: a.expires.as_millis() as u64,
                on_expiry: a.on_expiry.as_str().to_string(),
            }),
            GateSpec::Window {
                cron,
                duration,
                timezone,
            } => Kind::Window(v1::WindowGate {
                cron: cron.clone(),
                duration_ms: duration.as_millis() as u64,
                timezone: timezone.clone(),
            }),
        }),
    }
}
