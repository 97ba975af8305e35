//! The life of a phase: start, dispatch what is ready, ask the gates, then
//! promote, retry, halt or hand over to rollback; and the run's end.

use baton_proto::v1::{self, event::Body};

use super::fold::{fnv, new_task, Command};
use super::state::*;
use crate::plan::{GateSpec, OnFail, Risk};

impl RunState {
    pub(super) fn start_phase(&mut self, pi: usize, now: i64, out: &mut Vec<Command>) {
        self.current = pi;
        let phase = &mut self.phases[pi];
        phase.status = PhaseStatus::Running;
        phase.started_ms = now;
        phase.gates.clear();
        phase.reason.clear();
        let plan_phase = &self.plan.phases[pi];
        for t in &plan_phase.tasks {
            let mut fresh = new_task(t, &plan_phase.id, false);
            // A phase run again keeps counting attempts: attempt numbers are
            // part of message ids, and a reused id would be dropped as a duplicate.
            if let Some(old) = self.tasks.get(&t.id) {
                fresh.attempt = old.attempt;
                fresh.max_attempts += old.attempt;
            }
            self.tasks.insert(t.id.clone(), fresh);
        }
        self.phase_changed(pi, "running", String::new(), out);
        self.advance_phase(now, out);
    }

    /// Start what is ready in the current phase; ask the gates when all is done.
    pub(super) fn advance_phase(&mut self, now: i64, out: &mut Vec<Command>) {
        if self.mode != Mode::Forward || self.status.is_terminal() {
            return;
        }
        let pi = self.current;
        let plan = std::sync::Arc::clone(&self.plan);
        let plan_phase = &plan.phases[pi];
        // Skips can cascade down the DAG; loop until nothing changes.
        loop {
            let mut changed = false;
            for task in &plan_phase.tasks {
                if self.tasks[&task.id].status != TaskStatus::Pending {
                    continue;
                }
                let blocked = task.needs.iter().find(|n| {
                    matches!(
                        self.tasks[*n].status,
                        TaskStatus::Failed | TaskStatus::Skipped | TaskStatus::Cancelled
                    )
                });
                if let Some(b) = blocked {
                    let t = self.tasks.get_mut(&task.id).expect("task of the plan");
                    t.status = TaskStatus::Skipped;
                    t.error = format!("skipped: needs {b}, which did not succeed");
                    changed = true;
                    continue;
                }
                if !task
                    .needs
                    .iter()
                    .all(|n| self.tasks[n].status == TaskStatus::Succeeded)
                {
                    continue;
                }
                changed = true;
                if self.plan.roles[&task.role].risk == Risk::ApprovalRequired {
                    self.tasks.get_mut(&task.id).expect("task").status =
                        TaskStatus::AwaitingApproval;
                    let reason = format!(
                        "task {} (role {}) waits for an approval",
                        task.id, task.role
                    );
                    self.phase_changed(pi, "awaiting_approval", reason, out);
                } else {
                    self.dispatch(&task.id, now, out);
                }
            }
            if !changed {
                break;
            }
        }
        let all_done = plan_phase
            .tasks
            .iter()
            .all(|t| self.tasks[&t.id].status.is_terminal());
        if all_done && self.phases[pi].status == PhaseStatus::Running {
            self.phases[pi].gates = plan_phase
                .effective_gates()
                .iter()
                .map(|g| GateState {
                    kind: gate_kind(g).to_string(),
                    verdict: None,
                    reasons: Vec::new(),
                })
                .collect();
            self.phases[pi].status = PhaseStatus::Gating;
            self.phase_changed(pi, "gating", String::new(), out);
            self.ask_gates(pi, now, out);
        }
    }

    pub(super) fn ask_gates(&mut self, pi: usize, _now: i64, out: &mut Vec<Command>) {
        let phase = &mut self.phases[pi];
        phase.round += 1;
        for g in &mut phase.gates {
            g.verdict = None;
            g.reasons.clear();
        }
        out.extend(self.gate_requests(pi));
    }

    /// The gate requests of a phase's current round, built from the state as
    /// it is (so a coordinator taking over can ask again what went unanswered).
    pub fn gate_requests(&self, pi: usize) -> Vec<Command> {
        let plan_phase = &self.plan.phases[pi];
        let mut out = Vec::new();
        let context = super::view::gate_context(self);
        let phase = &self.phases[pi];
        let summaries: Vec<v1::TaskSummary> = plan_phase
            .tasks
            .iter()
            .map(|t| {
                let s = &self.tasks[&t.id];
                v1::TaskSummary {
                    task_id: t.id.clone(),
                    status: s.status.as_str().to_string(),
                    error: s.error.clone(),
                }
            })
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
        for (i, g) in plan_phase.effective_gates().iter().enumerate() {
            out.push(Command::AskGate {
                kind: gate_kind(g).to_string(),
                request: v1::GateRequest {
                    run_id: self.run_id.clone(),
                    phase_id: phase.id.clone(),
                    gate_index: i as u32,
                    round: phase.round,
                    spec: Some(gate_spec(g)),
                    tasks: summaries.clone(),
                    context_json: context.clone(),
                    decisions: decisions.clone(),
                    traceparent: self.traceparent.clone(),
                },
            });
        }
        out
    }

    pub(super) fn phase_passed(&mut self, pi: usize, now: i64, out: &mut Vec<Command>) {
        self.phases[pi].status = PhaseStatus::Passed;
        self.phases[pi].finished_ms = now;
        self.phase_changed(pi, "passed", String::new(), out);
        if pi + 1 < self.phases.len() {
            self.start_phase(pi + 1, now, out);
        } else {
            self.finish(RunStatus::Succeeded, String::new(), now, out);
        }
    }

    pub(super) fn phase_failed(
        &mut self,
        pi: usize,
        reason: String,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        let phase = &mut self.phases[pi];
        phase.status = PhaseStatus::Failed;
        phase.reason = reason.clone();
        phase.finished_ms = now;
        let plan_phase = &self.plan.phases[pi];
        let id = plan_phase.id.clone();
        match plan_phase.on_fail {
            OnFail::Retry if phase.retries_used < plan_phase.max_retries => {
                phase.retries_used += 1;
                let n = phase.retries_used;
                self.phase_changed(pi, "retrying", format!("{reason} (retry {n})"), out);
                self.start_phase(pi, now, out);
            }
            OnFail::Retry => {
                self.phase_changed(pi, "failed", reason.clone(), out);
                let n = self.plan.phases[pi].max_retries;
                self.finish(
                    RunStatus::Failed,
                    format!("phase {id} failed after {n} retries: {reason}"),
                    now,
                    out,
                );
            }
            OnFail::Halt => {
                self.phase_changed(pi, "failed", reason.clone(), out);
                self.finish(
                    RunStatus::Halted,
                    format!("phase {id} halted the run: {reason}"),
                    now,
                    out,
                );
            }
            OnFail::Rollback => {
                self.phase_changed(pi, "failed", reason.clone(), out);
                self.reason = format!("phase {id} failed: {reason}");
                // Every phase started so far, newest first; each phase's steps in written order.
                let steps: Vec<String> = (0..=pi)
                    .rev()
                    .flat_map(|i| self.plan.phases[i].rollback.iter().map(|t| t.id.clone()))
                    .collect();
                self.mode = Mode::RollingBack {
                    steps,
                    pos: 0,
                    any_failed: false,
                };
                self.next_rollback_step(now, out);
            }
        }
    }

    pub(super) fn phase_changed(
        &self,
        pi: usize,
        status: &str,
        reason: String,
        out: &mut Vec<Command>,
    ) {
        let p = &self.phases[pi];
        out.push(Command::Emit {
            msg_id: format!(
                "{}:{}:{:x}",
                baton_proto::subjects::msg_id::phase(&self.run_id, &p.id, status, p.round),
                p.retries_used,
                fnv(reason.as_bytes())
            ),
            body: Body::PhaseChanged(v1::PhaseChanged {
                phase_id: p.id.clone(),
                status: status.to_string(),
                reason,
            }),
        });
    }

    pub(super) fn finish(
        &mut self,
        status: RunStatus,
        reason: String,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        self.status = status;
        self.reason = reason.clone();
        self.finished_ms = now;
        self.mode = Mode::Done;
        out.push(Command::Emit {
            msg_id: baton_proto::subjects::msg_id::finished_run(&self.run_id),
            body: Body::RunFinished(v1::RunFinished {
                status: status.as_str().to_string(),
                reason,
            }),
        });
    }
}

pub fn gate_kind(g: &GateSpec) -> &'static str {
    match g {
        GateSpec::Tasks { .. } => "tasks",
        GateSpec::Expr { .. } => "expr",
        GateSpec::Approval { .. } => "approval",
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
            GateSpec::Approval { quorum } => Kind::Approval(v1::ApprovalGate { quorum: *quorum }),
        }),
    }
}
