//! The run state machine as a pure fold: `state + event → state + commands`.
//!
//! Nothing here does I/O or reads a clock: time comes in on the event, and
//! everything the coordinator must do comes out as [`Command`]s. Replaying a
//! run's events therefore rebuilds exactly the same state.

use std::collections::BTreeMap;

use baton_proto::v1::{self, event::Body, Event};

use super::state::*;
use crate::plan::{self, GateSpec, OnFail, Plan, Risk, Task};

/// What the coordinator must do after folding an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Publish to `baton.task.<role>`.
    Dispatch(v1::TaskDispatch),
    /// Publish to `baton.gate.<kind>`.
    AskGate {
        kind: String,
        request: v1::GateRequest,
    },
    /// Publish a `TimerFired` for this attempt at `at_ms`.
    StartTimer {
        task_id: String,
        attempt: u32,
        at_ms: i64,
    },
    /// Publish a derived event on the run's subject, for watchers.
    Emit { msg_id: String, body: Body },
}

/// Backoff before retry `attempt + 1`: 500 ms doubling per attempt, capped at 30 s,
/// with ±20 % jitter derived from the task, so that replays agree and
/// retries of many tasks failing together do not land at once.
pub fn backoff_ms(run_id: &str, task_id: &str, attempt: u32) -> i64 {
    let base = 500i64
        .saturating_mul(1i64 << attempt.saturating_sub(1).min(10))
        .min(30_000);
    let key: Vec<u8> = run_id
        .bytes()
        .chain(task_id.bytes())
        .chain(attempt.to_le_bytes())
        .collect();
    let h = fnv(&key);
    let jitter = (h % 401) as i64 - 200; // -200..=200 per mille
    base + base * jitter / 1000
}

impl RunState {
    /// A new run from its `RunSubmitted` event. The plan was validated on submit;
    /// a plan that no longer loads (a newer Baton) is reported, not panicked on.
    pub fn submitted(
        run_id: &str,
        ev: &v1::RunSubmitted,
        time_ms: i64,
    ) -> Result<(RunState, Vec<Command>), plan::PlanError> {
        let plan = plan::load(&ev.plan_file, &ev.plan_yaml)?;
        let mut tasks = BTreeMap::new();
        let mut task_order = Vec::new();
        for phase in &plan.phases {
            for (t, rollback) in phase
                .tasks
                .iter()
                .map(|t| (t, false))
                .chain(phase.rollback.iter().map(|t| (t, true)))
            {
                task_order.push(t.id.clone());
                tasks.insert(t.id.clone(), new_task(t, &phase.id, rollback));
            }
        }
        let phases = plan
            .phases
            .iter()
            .map(|p| PhaseState {
                id: p.id.clone(),
                status: PhaseStatus::Pending,
                round: 0,
                retries_used: 0,
                gates: Vec::new(),
                decisions: Vec::new(),
                reason: String::new(),
                started_ms: 0,
                finished_ms: 0,
            })
            .collect();
        let mut st = RunState {
            run_id: run_id.to_string(),
            plan: std::sync::Arc::new(plan),
            plan_yaml: ev.plan_yaml.clone(),
            plan_file: ev.plan_file.clone(),
            inputs: ev.inputs.clone().into_iter().collect(),
            status: RunStatus::Running,
            reason: String::new(),
            created_ms: time_ms,
            finished_ms: 0,
            traceparent: ev.traceparent.clone(),
            submitted_by: ev.submitted_by.clone(),
            current: 0,
            phases,
            tasks,
            task_order,
            mode: Mode::Forward,
            last_seq: 0,
        };
        let mut out = Vec::new();
        st.start_phase(0, time_ms, &mut out);
        Ok((st, out))
    }

    /// Fold one event. Events for a finished run, stale attempts, stale gate
    /// rounds and duplicates change nothing and yield no commands.
    pub fn apply(&mut self, ev: &Event) -> Vec<Command> {
        let mut out = Vec::new();
        let now = ev.time_ms;
        let Some(body) = &ev.body else { return out };
        if self.status.is_terminal() {
            return out;
        }
        match body {
            Body::TaskStarted(s) => {
                if let Some(t) = self.tasks.get_mut(&s.task_id) {
                    if t.attempt == s.attempt && t.status == TaskStatus::Queued {
                        t.status = TaskStatus::Running;
                        t.worker = s.worker.clone();
                    }
                }
            }
            Body::TaskFinished(f) => self.task_finished(f, now, &mut out),
            Body::TimerFired(tf) => {
                let due = self
                    .tasks
                    .get(&tf.task_id)
                    .is_some_and(|t| t.status == TaskStatus::RetryWait && t.attempt == tf.attempt);
                if due {
                    self.dispatch(&tf.task_id, now, &mut out);
                }
            }
            Body::GateEvaluated(g) => self.gate_evaluated(g, now, &mut out),
            Body::Decision(d) => self.decision(d, now, &mut out),
            Body::CancelRequested(c) => {
                for t in self.tasks.values_mut() {
                    if !t.status.is_terminal() && t.status != TaskStatus::Pending {
                        t.status = TaskStatus::Cancelled;
                        t.error = format!("run cancelled by {}", who(&c.by));
                    }
                }
                let reason = if c.reason.is_empty() {
                    format!("cancelled by {}", who(&c.by))
                } else {
                    format!("cancelled by {}: {}", who(&c.by), c.reason)
                };
                self.finish(RunStatus::Cancelled, reason, now, &mut out);
            }
            // Submissions create state (see `submitted`); derived events are our own output.
            Body::RunSubmitted(_) | Body::PhaseChanged(_) | Body::RunFinished(_) => {}
        }
        out
    }

    fn task_finished(&mut self, f: &v1::TaskFinished, now: i64, out: &mut Vec<Command>) {
        let Some(t) = self.tasks.get_mut(&f.task_id) else {
            return;
        };
        // A stale attempt (a redelivery that raced a retry) or a duplicate is recorded nowhere.
        if t.attempt != f.attempt || !matches!(t.status, TaskStatus::Queued | TaskStatus::Running) {
            return;
        }
        t.exit_code = f.exit_code;
        t.report_json = f.report_json.clone();
        t.outputs = serde_json::from_str::<serde_json::Value>(&f.report_json)
            .ok()
            .and_then(|v| v.get("outputs").and_then(|o| o.as_object()).cloned())
            .unwrap_or_default();
        t.duration_ms = f.duration_ms;
        t.trace_id = f.trace_id.clone();
        t.worker = f.worker.clone();
        if f.ok {
            t.status = TaskStatus::Succeeded;
            t.error.clear();
        } else if t.attempt < t.max_attempts && !f.permanent {
            t.status = TaskStatus::RetryWait;
            t.error = f.error.clone();
            t.retry_at_ms = now + backoff_ms(&self.run_id, &t.id, t.attempt);
            out.push(Command::StartTimer {
                task_id: t.id.clone(),
                attempt: t.attempt,
                at_ms: t.retry_at_ms,
            });
            return;
        } else {
            t.status = TaskStatus::Failed;
            t.error = f.error.clone();
        }
        let rollback = t.rollback;
        let ok = t.status == TaskStatus::Succeeded;
        if rollback {
            self.rollback_step_done(ok, now, out);
        } else {
            self.advance_phase(now, out);
        }
    }

    fn gate_evaluated(&mut self, g: &v1::GateEvaluated, now: i64, out: &mut Vec<Command>) {
        let Some(pi) = self.phases.iter().position(|p| p.id == g.phase_id) else {
            return;
        };
        let phase = &mut self.phases[pi];
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
        if phase.gates.iter().any(|g| g.verdict == Some(Verdict::Fail)) {
            let reasons: Vec<String> = phase
                .gates
                .iter()
                .filter(|g| g.verdict == Some(Verdict::Fail))
                .flat_map(|g| g.reasons.iter().map(move |r| format!("{}: {r}", g.kind)))
                .collect();
            self.phase_failed(pi, format!("gate failed: {}", reasons.join("; ")), now, out);
        } else if phase.gates.iter().all(|g| g.verdict == Some(Verdict::Pass)) {
            self.phase_passed(pi, now, out);
        } else if phase.gates.iter().all(|g| g.verdict.is_some()) {
            let id = phase.id.clone();
            self.phase_changed(
                pi,
                "awaiting_approval",
                format!("phase {id} waits for an approval"),
                out,
            );
        }
    }

    fn decision(&mut self, d: &v1::Decision, now: i64, out: &mut Vec<Command>) {
        let record = DecisionRecord {
            approve: d.approve,
            by: d.by.clone(),
            reason: d.reason.clone(),
            time_ms: now,
        };
        let waiting: Vec<String> = self
            .task_order
            .iter()
            .filter(|id| {
                let t = &self.tasks[*id];
                t.status == TaskStatus::AwaitingApproval
                    && (d.task_id.is_empty() || d.task_id == t.id)
            })
            .cloned()
            .collect();
        for id in &waiting {
            let t = self.tasks.get_mut(id).expect("listed above");
            t.approved_by = Some(record.clone());
            if d.approve {
                self.dispatch(id, now, out);
            } else {
                t.status = TaskStatus::Failed;
                t.error = format!("rejected by {}: {}", who(&d.by), d.reason);
            }
        }
        if !waiting.is_empty() {
            if !d.approve {
                self.advance_phase(now, out);
            }
            return;
        }
        // Otherwise the decision is for the current phase's approval gates.
        let pi = self.current;
        let gating = self.mode == Mode::Forward
            && self.phases[pi].status == PhaseStatus::Gating
            && self.phases[pi].gates.iter().any(|g| g.kind == "approval");
        if gating && d.task_id.is_empty() {
            self.phases[pi].decisions.push(record);
            self.ask_gates(pi, now, out);
        }
    }

    fn start_phase(&mut self, pi: usize, now: i64, out: &mut Vec<Command>) {
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
    fn advance_phase(&mut self, now: i64, out: &mut Vec<Command>) {
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

    fn ask_gates(&mut self, pi: usize, _now: i64, out: &mut Vec<Command>) {
        let plan_phase = &self.plan.phases[pi];
        let phase = &mut self.phases[pi];
        phase.round += 1;
        for g in &mut phase.gates {
            g.verdict = None;
            g.reasons.clear();
        }
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
    }

    fn phase_passed(&mut self, pi: usize, now: i64, out: &mut Vec<Command>) {
        self.phases[pi].status = PhaseStatus::Passed;
        self.phases[pi].finished_ms = now;
        self.phase_changed(pi, "passed", String::new(), out);
        if pi + 1 < self.phases.len() {
            self.start_phase(pi + 1, now, out);
        } else {
            self.finish(RunStatus::Succeeded, String::new(), now, out);
        }
    }

    fn phase_failed(&mut self, pi: usize, reason: String, now: i64, out: &mut Vec<Command>) {
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

    fn rollback_step_done(&mut self, ok: bool, now: i64, out: &mut Vec<Command>) {
        if let Mode::RollingBack {
            pos, any_failed, ..
        } = &mut self.mode
        {
            *pos += 1;
            *any_failed |= !ok;
        }
        self.next_rollback_step(now, out);
    }

    fn next_rollback_step(&mut self, now: i64, out: &mut Vec<Command>) {
        let Mode::RollingBack {
            steps,
            pos,
            any_failed,
        } = &self.mode
        else {
            return;
        };
        if let Some(id) = steps.get(*pos).cloned() {
            // Rollback steps restore a known-good state, so they never wait for
            // an approval: an automatic rollback that blocks on a person is not one.
            self.dispatch(&id, now, out);
            return;
        }
        let any_failed = *any_failed;
        for pi in (0..=self.current).rev() {
            if !any_failed {
                self.phases[pi].status = PhaseStatus::RolledBack;
                self.phase_changed(pi, "rolled_back", String::new(), out);
            }
        }
        let reason = std::mem::take(&mut self.reason);
        if any_failed {
            let failed: Vec<&str> = self
                .tasks
                .values()
                .filter(|t| t.rollback && t.status == TaskStatus::Failed)
                .map(|t| t.id.as_str())
                .collect();
            let why = format!("{reason}; rollback step(s) failed: {}", failed.join(", "));
            self.finish(RunStatus::Failed, why, now, out);
        } else {
            self.finish(RunStatus::RolledBack, reason, now, out);
        }
    }

    /// Dispatch the next attempt of a task, rendering its templates now that
    /// the outputs it needs exist.
    fn dispatch(&mut self, task_id: &str, now: i64, out: &mut Vec<Command>) {
        let Some(task) = find_task(&self.plan, task_id) else {
            return;
        };
        // Most tasks have no templates: do not copy every output for them.
        let templated = task
            .run
            .iter()
            .chain(task.env.values())
            .any(|s| s.contains("${{"));
        let outputs: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = if templated {
            self.tasks
                .values()
                .filter(|t| t.status == TaskStatus::Succeeded)
                .map(|t| (t.id.clone(), t.outputs.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let argv: Result<Vec<String>, String> = task
            .run
            .iter()
            .map(|a| plan::render(a, &self.inputs, &outputs))
            .collect();
        let env: Result<BTreeMap<String, String>, String> = task
            .env
            .iter()
            .map(|(k, v)| plan::render(v, &self.inputs, &outputs).map(|v| (k.clone(), v)))
            .collect();
        let role = &self.plan.roles[&task.role];
        let image = role.image.clone();
        let timeout_ms = task.timeout.as_millis() as u64;
        let t = self.tasks.get_mut(task_id).expect("task of the plan");
        t.attempt += 1;
        t.dispatched_ms = now;
        let (argv, env) = match (argv, env) {
            (Ok(a), Ok(e)) => (a, e),
            (Err(e), _) | (_, Err(e)) => {
                // Rendering is deterministic: retrying cannot help.
                t.status = TaskStatus::Failed;
                t.error = format!("cannot render the task's templates: {e}");
                let rollback = t.rollback;
                if rollback {
                    self.rollback_step_done(false, now, out);
                } else {
                    self.advance_phase(now, out);
                }
                return;
            }
        };
        t.status = TaskStatus::Queued;
        out.push(Command::Dispatch(v1::TaskDispatch {
            run_id: self.run_id.clone(),
            phase_id: t.phase.clone(),
            task_id: t.id.clone(),
            attempt: t.attempt,
            role: t.role.clone(),
            image,
            argv,
            env: env.into_iter().collect(),
            timeout_ms,
            rollback: t.rollback,
            traceparent: self.traceparent.clone(),
            dispatched_at_ms: now,
        }));
    }

    fn phase_changed(&self, pi: usize, status: &str, reason: String, out: &mut Vec<Command>) {
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

    fn finish(&mut self, status: RunStatus, reason: String, now: i64, out: &mut Vec<Command>) {
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

fn new_task(t: &Task, phase: &str, rollback: bool) -> TaskState {
    TaskState {
        id: t.id.clone(),
        phase: phase.to_string(),
        role: t.role.clone(),
        rollback,
        status: TaskStatus::Pending,
        attempt: 0,
        max_attempts: 1 + t.retries,
        exit_code: None,
        report_json: String::new(),
        outputs: Default::default(),
        error: String::new(),
        duration_ms: 0,
        trace_id: String::new(),
        worker: String::new(),
        approved_by: None,
        retry_at_ms: 0,
        dispatched_ms: 0,
    }
}

fn find_task<'a>(plan: &'a Plan, id: &str) -> Option<&'a Task> {
    plan.phases
        .iter()
        .flat_map(|p| p.tasks.iter().chain(p.rollback.iter()))
        .find(|t| t.id == id)
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

fn who(by: &str) -> &str {
    if by.is_empty() {
        "someone"
    } else {
        by
    }
}

/// FNV-1a: a stable hash for jitter and message ids (std's hasher is seeded per process).
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    h
}
