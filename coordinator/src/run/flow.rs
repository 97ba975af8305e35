//! Moving between stages: `when` conditions, skipping, canary keys, stage
//! timers, loop iterations, `stop_when`, incidents and the start of a rollback.

use std::sync::Arc;

use baton_proto::v1::{self, event::Body};

use super::fold::Command;
use super::state::*;

impl RunState {
    /// Evaluate a `when`/`stop_when` expression in stage `si`'s context:
    /// `(verdict, "`expr` is false (name = value, ...)")`.
    pub(super) fn condition(&self, expr: &str, si: usize) -> Result<(bool, String), String> {
        let parsed = baton_plan::expr::parse(expr).map_err(|e| e.message)?;
        let ctx = super::view::context(self, si);
        let verdict = parsed.eval_bool(&ctx).map_err(|e| e.message)?;
        let why = format!("`{expr}` is {verdict} ({})", parsed.explain(&ctx));
        Ok((verdict, why))
    }

    pub(super) fn skip_stage(
        &mut self,
        si: usize,
        reason: String,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        self.mark_skipped(si, reason, now, out);
        self.next_stage(si, now, out);
    }

    fn mark_skipped(&mut self, si: usize, reason: String, now: i64, out: &mut Vec<Command>) {
        let p = &mut self.phases[si];
        p.status = PhaseStatus::Skipped;
        p.reason = reason.clone();
        p.finished_ms = now;
        self.phase_changed(si, v1::PhaseStatus::Skipped, reason, out);
    }

    /// After stage `si` passed or was skipped: start the next stage, or end the run.
    pub(super) fn next_stage(&mut self, si: usize, now: i64, out: &mut Vec<Command>) {
        if si + 1 < self.phases.len() {
            self.start_phase(si + 1, now, out);
        } else {
            self.finish(RunStatus::Succeeded, String::new(), now, out);
        }
    }

    /// Close a stage: its status, end time and the outcome of each of its tasks.
    pub(super) fn end_stage(&mut self, si: usize, status: PhaseStatus, now: i64) {
        let plan = Arc::clone(&self.plan);
        let phase = &plan.phases[plan.stages[si].phase];
        let outcomes = phase
            .tasks
            .iter()
            .map(|t| {
                let s = &self.tasks[&t.id];
                Outcome {
                    task_id: t.id.clone(),
                    status: s.status,
                    error: s.error.clone(),
                    outputs: s.outputs.clone(),
                    artifacts: s.artifacts.clone(),
                }
            })
            .collect();
        let p = &mut self.phases[si];
        p.status = status;
        p.finished_ms = now;
        p.timer_at_ms = 0;
        p.outcomes = outcomes;
    }

    /// Known-good weights are kept per phase and environment.
    pub(super) fn canary_key(&self, si: usize) -> String {
        let stage = &self.plan.stages[si];
        let phase = &self.plan.phases[stage.phase].id;
        match &stage.environment {
            Some(env) => format!("{phase}@{env}"),
            None => phase.clone(),
        }
    }

    pub(super) fn stage_timer(&self, si: usize, at_ms: i64) -> Command {
        let p = &self.phases[si];
        Command::StartStageTimer {
            phase_id: p.id.clone(),
            round: p.round,
            at_ms,
        }
    }

    /// A stage timer fired: a canary hold ended, or a closed window may be open now.
    pub(super) fn stage_timer_fired(
        &mut self,
        tf: &v1::TimerFired,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        let Some(si) = self.phases.iter().position(|p| p.id == tf.phase_id) else {
            return;
        };
        if si != self.current || self.mode != Mode::Forward || self.phases[si].round != tf.round {
            return;
        }
        match self.phases[si].status {
            PhaseStatus::Holding => {
                self.phases[si].status = PhaseStatus::Gating;
                self.phase_changed(si, v1::PhaseStatus::Gating, String::new(), out);
                self.ask_gates(si, now, out);
            }
            PhaseStatus::Gating if self.approval_due(si, tf.due_ms.max(now)) => {
                self.approval_expired(si, now, out)
            }
            PhaseStatus::Gating if self.phases[si].timer_at_ms > 0 => self.ask_gates(si, now, out),
            _ => {}
        }
    }

    /// The iteration's own gates passed but its loop's `until` did not.
    pub(super) fn iteration_not_green(
        &mut self,
        si: usize,
        why: String,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        let plan = Arc::clone(&self.plan);
        let Some(it) = plan.stages[si].iteration else {
            return self.phase_failed(si, why, now, out);
        };
        let rep = &plan.repeats[it.repeat];
        if it.n >= rep.max {
            let reason = format!(
                "repeat {} gave up: not green after {} iterations ({why})",
                rep.id, rep.max
            );
            return self.phase_failed(si, reason, now, out);
        }
        self.end_stage(si, PhaseStatus::Passed, now);
        let reason = format!("iteration {} of {} not green: {why}", it.n, rep.id);
        self.phases[si].reason = reason.clone();
        self.phase_changed(si, v1::PhaseStatus::Passed, reason, out);
        self.next_stage(si, now, out);
    }

    /// A loop went green at stage `si`: skip the iterations it no longer needs.
    /// Returns the stage to continue after.
    pub(super) fn skip_rest_of_loop(
        &mut self,
        si: usize,
        now: i64,
        out: &mut Vec<Command>,
    ) -> usize {
        let Some(it) = self.plan.stages[si].iteration else {
            return si;
        };
        let mut last = si;
        for sj in si + 1..self.phases.len() {
            match self.plan.stages[sj].iteration {
                Some(other) if other.repeat == it.repeat => {
                    let reason = format!("loop green at iteration {}", it.n);
                    self.mark_skipped(sj, reason, now, out);
                    last = sj;
                }
                _ => break,
            }
        }
        last
    }

    pub(super) fn raise_incident(
        &mut self,
        kind: &str,
        si: usize,
        reasons: Vec<String>,
        stop: bool,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        let phase = self.phases[si].id.clone();
        self.incidents.push(IncidentRecord {
            kind: kind.to_string(),
            phase: phase.clone(),
            reasons: reasons.clone(),
            time_ms: now,
            stop,
        });
        out.push(Command::Emit {
            msg_id: baton_proto::subjects::msg_id::incident(&self.run_id, kind, &phase),
            body: Body::Incident(v1::Incident {
                kind: kind.to_string(),
                run_id: self.run_id.clone(),
                plan: self.plan.name.clone(),
                phase_id: phase,
                reasons,
                // Never in the event: the engine takes it from the plan.
                webhook: String::new(),
                time_ms: now,
                stop,
            }),
        });
    }

    /// After a task's result: does a `stop_when` hold? Then stop at once and roll back.
    pub(super) fn check_stop_conditions(&mut self, now: i64, out: &mut Vec<Command>) {
        if self.mode != Mode::Forward || self.status.is_terminal() || self.plan.stop_when.is_empty()
        {
            return;
        }
        let si = self.current;
        // A condition that cannot be evaluated yet (a task has not reported) does not hold.
        let hit = self
            .plan
            .stop_when
            .iter()
            .find_map(|e| match self.condition(e, si) {
                Ok((true, why)) => Some(why),
                _ => None,
            });
        let Some(why) = hit else { return };
        for t in self.tasks.values_mut() {
            if !t.rollback && !t.status.is_terminal() {
                t.status = TaskStatus::Cancelled;
                t.error = "stopped: a stop_when condition held".to_string();
            }
        }
        let reason = format!("stop_when {why}");
        self.raise_incident("stop_when", si, vec![reason.clone()], true, now, out);
        self.end_stage(si, PhaseStatus::Failed, now);
        self.phases[si].reason = reason.clone();
        self.phase_changed(si, v1::PhaseStatus::Failed, reason.clone(), out);
        self.begin_rollback(si, format!("stopped: {reason}"), now, out);
    }

    /// Roll back every phase started so far, newest first, each once (in the
    /// context of the last stage it ran in); each phase's steps in written order.
    pub(super) fn begin_rollback(
        &mut self,
        si: usize,
        reason: String,
        now: i64,
        out: &mut Vec<Command>,
    ) {
        self.reason = reason;
        let plan = Arc::clone(&self.plan);
        let mut seen = std::collections::BTreeSet::new();
        let mut steps = Vec::new();
        for sj in (0..=si).rev() {
            let started = !matches!(
                self.phases[sj].status,
                PhaseStatus::Pending | PhaseStatus::Skipped
            );
            let p = plan.stages[sj].phase;
            if !started || !seen.insert(p) {
                continue;
            }
            for t in &plan.phases[p].rollback {
                if let Some(state) = self.tasks.get_mut(&t.id) {
                    state.stage = sj;
                    state.phase = plan.stages[sj].id.clone();
                }
                steps.push(t.id.clone());
            }
        }
        self.mode = Mode::RollingBack {
            steps,
            pos: 0,
            any_failed: false,
        };
        self.next_rollback_step(now, out);
    }
}
