//! The life of a stage (a phase as it runs: per environment, canary step or
//! loop iteration): start or skip it, dispatch what is ready, hold, ask the
//! gates, then promote, iterate, retry, halt or hand over to rollback; and
//! the run's end.

use std::sync::Arc;

use baton_plan::{OnFail, Risk};
use baton_proto::kinds;
use baton_proto::v1::{self, event::Body};

use super::fold::{fnv, new_task, Command};
use super::state::*;

impl RunState {
    pub(super) fn start_phase(&mut self, si: usize, now: i64, out: &mut Vec<Command>) {
        self.current = si;
        let plan = Arc::clone(&self.plan);
        let stage = &plan.stages[si];
        let plan_phase = &plan.phases[stage.phase];
        let phase = &mut self.phases[si];
        phase.status = PhaseStatus::Running;
        phase.started_ms = now;
        phase.gates.clear();
        phase.reason.clear();
        phase.timer_at_ms = 0;
        phase.approval_expires_ms = 0;
        if let Some(when) = &plan_phase.when {
            match self.condition(when, si) {
                Ok((true, _)) => {}
                Ok((false, why)) => {
                    return self.skip_stage(si, format!("when {why}"), now, out);
                }
                Err(e) => {
                    let reason = format!("its `when` could not be decided: {e}");
                    return self.phase_failed(si, reason, now, out);
                }
            }
        }
        for t in &plan_phase.tasks {
            let mut fresh = new_task(t, &stage.id, false);
            fresh.stage = si;
            // A phase run again keeps counting attempts: attempt numbers are
            // part of message ids, and a reused id would be dropped as a duplicate.
            if let Some(old) = self.tasks.get(&t.id) {
                fresh.attempt = old.attempt;
                fresh.max_attempts += old.attempt;
                // A new stage (environment, canary step, iteration) counts its
                // own attempts; a phase retried in place keeps counting.
                fresh.base_attempt = if old.stage == si && old.attempt > 0 {
                    old.base_attempt
                } else {
                    old.attempt
                };
            }
            self.tasks.insert(t.id.clone(), fresh);
        }
        self.phase_changed(si, v1::PhaseStatus::Running, String::new(), out);
        self.advance_phase(now, out);
    }

    /// Start what is ready in the current stage; hold or ask the gates when all is done.
    pub(super) fn advance_phase(&mut self, now: i64, out: &mut Vec<Command>) {
        if self.mode != Mode::Forward || self.status.is_terminal() {
            return;
        }
        let si = self.current;
        let plan = Arc::clone(&self.plan);
        let stage = &plan.stages[si];
        let plan_phase = &plan.phases[stage.phase];
        // Skips can cascade down the DAG; loop until nothing changes.
        loop {
            let mut changed = false;
            for task in &plan_phase.tasks {
                if self.tasks[&task.id].status != TaskStatus::Pending {
                    continue;
                }
                let blocked = task.needs.iter().find(|n| {
                    let t = &self.tasks[*n];
                    matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled)
                        || (t.status == TaskStatus::Skipped && !t.by_condition)
                });
                if let Some(b) = blocked {
                    let t = self.tasks.get_mut(&task.id).expect("task of the plan");
                    t.status = TaskStatus::Skipped;
                    t.error = format!("skipped: needs {b}, which did not succeed");
                    changed = true;
                    continue;
                }
                // A task skipped by its own `when` counts as done for those that need it.
                let ready = task.needs.iter().all(|n| {
                    let t = &self.tasks[n];
                    t.status == TaskStatus::Succeeded
                        || (t.status == TaskStatus::Skipped && t.by_condition)
                });
                if !ready {
                    continue;
                }
                changed = true;
                if let Some(when) = &task.when {
                    let decided = self.condition(when, si);
                    let t = self.tasks.get_mut(&task.id).expect("task of the plan");
                    match decided {
                        Ok((true, _)) => {}
                        Ok((false, why)) => {
                            t.status = TaskStatus::Skipped;
                            t.by_condition = true;
                            t.error = format!("skipped: when {why}");
                            continue;
                        }
                        Err(e) => {
                            t.status = TaskStatus::Failed;
                            t.error = format!("its `when` could not be decided: {e}");
                            continue;
                        }
                    }
                }
                if self.plan.roles[&task.role].risk == Risk::ApprovalRequired {
                    self.tasks.get_mut(&task.id).expect("task").status =
                        TaskStatus::AwaitingApproval;
                    let reason = format!(
                        "task {} (role {}) waits for an approval",
                        task.id, task.role
                    );
                    self.phase_changed(si, v1::PhaseStatus::AwaitingApproval, reason, out);
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
        if all_done && self.phases[si].status == PhaseStatus::Running {
            self.phases[si].gates = plan
                .stage_gates(stage)
                .iter()
                .map(|g| GateState {
                    kind: gate_kind(&g.spec).to_string(),
                    verdict: None,
                    reasons: Vec::new(),
                    until: g.until,
                    retry_at_ms: 0,
                })
                .collect();
            let hold = plan_phase.canary.as_ref().map(|c| c.hold);
            match (stage.canary, hold) {
                (Some(step), Some(hold)) if !hold.is_zero() => {
                    self.phases[si].status = PhaseStatus::Holding;
                    let hold_ms = i64::try_from(hold.as_millis()).unwrap_or(i64::MAX);
                    let at_ms = now.saturating_add(hold_ms);
                    self.phases[si].timer_at_ms = at_ms;
                    let reason = format!(
                        "canary at {}% holds {} before its gates",
                        step.weight,
                        baton_plan::format_duration(hold)
                    );
                    self.phase_changed(si, v1::PhaseStatus::Holding, reason, out);
                    out.push(self.stage_timer(si, at_ms));
                }
                _ => {
                    self.phases[si].status = PhaseStatus::Gating;
                    self.phase_changed(si, v1::PhaseStatus::Gating, String::new(), out);
                    self.ask_gates(si, now, out);
                }
            }
        }
    }

    pub(super) fn phase_passed(&mut self, si: usize, now: i64, out: &mut Vec<Command>) {
        self.end_stage(si, PhaseStatus::Passed, now);
        let stage = self.plan.stages[si].clone();
        let mut reason = String::new();
        if let Some(step) = stage.canary {
            self.known_good.insert(self.canary_key(si), step.weight);
            if step.weight == 100 {
                reason = "canary promoted: every step passed".to_string();
            }
        }
        let green = stage.iteration.filter(|it| it.last);
        if let Some(it) = green {
            let id = &self.plan.repeats[it.repeat].id;
            reason = format!("loop {id} green at iteration {}", it.n);
        }
        self.phases[si].reason = reason.clone();
        self.phase_changed(si, v1::PhaseStatus::Passed, reason, out);
        let after = match green {
            Some(_) => self.skip_rest_of_loop(si, now, out),
            None => si,
        };
        self.next_stage(after, now, out);
    }

    pub(super) fn phase_failed(
        &mut self,
        si: usize,
        reason: String,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        self.end_stage(si, PhaseStatus::Failed, now);
        self.phases[si].reason = reason.clone();
        let plan = Arc::clone(&self.plan);
        let stage = &plan.stages[si];
        let plan_phase = &plan.phases[stage.phase];
        let id = stage.id.clone();
        let phase = &mut self.phases[si];
        match plan_phase.on_fail {
            OnFail::Retry if phase.retries_used < plan_phase.max_retries => {
                phase.retries_used += 1;
                let n = phase.retries_used;
                self.phase_changed(
                    si,
                    v1::PhaseStatus::Retrying,
                    format!("{reason} (retry {n})"),
                    out,
                );
                self.start_phase(si, now, out);
            }
            OnFail::Retry => {
                self.phase_changed(si, v1::PhaseStatus::Failed, reason.clone(), out);
                let n = plan_phase.max_retries;
                self.finish(
                    RunStatus::Failed,
                    format!("phase {id} failed after {n} retries: {reason}"),
                    now,
                    out,
                );
            }
            OnFail::Halt => {
                self.phase_changed(si, v1::PhaseStatus::Failed, reason.clone(), out);
                self.raise_incident("halt", si, vec![reason.clone()], false, now, out);
                self.finish(
                    RunStatus::Halted,
                    format!("phase {id} halted the run: {reason}"),
                    now,
                    out,
                );
            }
            OnFail::Rollback => {
                self.phase_changed(si, v1::PhaseStatus::Failed, reason.clone(), out);
                if let Some(step) = stage.canary {
                    let good = self.known_good.get(&self.canary_key(si)).copied();
                    let known = match good {
                        Some(w) => format!("last known good: {w}%"),
                        None => "no step had passed; known good is the version before it".into(),
                    };
                    let why = vec![
                        format!("canary breached at {}%: {reason}", step.weight),
                        known,
                    ];
                    self.raise_incident("canary_breach", si, why, false, now, out);
                }
                self.begin_rollback(si, format!("phase {id} failed: {reason}"), now, out);
            }
        }
    }

    pub(super) fn phase_changed(
        &self,
        si: usize,
        status: v1::PhaseStatus,
        reason: String,
        out: &mut Vec<Command>,
    ) {
        let p = &self.phases[si];
        out.push(Command::Emit {
            msg_id: format!(
                "{}:{}:{:x}",
                baton_proto::subjects::msg_id::phase(&self.run_id, &p.id, status.as_str(), p.round),
                p.retries_used,
                fnv(reason.as_bytes())
            ),
            body: Body::PhaseChanged(kinds::phase_changed(p.id.clone(), status, reason)),
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
            body: Body::RunFinished(kinds::run_finished(status.into(), reason)),
        });
    }
}

pub use super::gates::gate_kind;
