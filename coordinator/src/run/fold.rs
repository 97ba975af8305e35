//! The run state machine as a pure fold: `state + event → state + commands`.
//!
//! Nothing here does I/O or reads a clock: time comes in on the event, and
//! everything the coordinator must do comes out as [`Command`]s. Replaying a
//! run's events therefore rebuilds exactly the same state.

use std::collections::BTreeMap;

use baton_plan::{self as plan, Plan, Task};
use baton_proto::v1::{self, event::Body, Event};

use super::state::*;

/// What the coordinator must do after folding an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Publish to `baton.task.<role>.<run>.<task>`.
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
    /// Publish a `TimerFired` for this stage and gate round at `at_ms`.
    StartStageTimer {
        phase_id: String,
        round: u32,
        at_ms: i64,
    },
    /// Publish a derived event on the run's subject of its kind,
    /// `baton.evt.<run>.<kind>` (`baton_proto::kinds::EventKind`), for watchers.
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
        let roles = ev.roles.clone().into_iter().collect();
        let plan = plan::load_with_roles(&ev.plan_file, &ev.plan_yaml, &roles)?;
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
            .stages
            .iter()
            .map(|p| PhaseState {
                timer_at_ms: 0,
                approval_expires_ms: 0,
                outcomes: Vec::new(),
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
            incidents: Vec::new(),
            known_good: BTreeMap::new(),
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
        // The engine logs and counts a refusal before it gets here; the
        // fold on its own must not act on one either.
        if self.admit(ev).is_err() {
            return out;
        }
        match body {
            Body::TaskStarted(s) => {
                self.claimed(s);
                if let Some(t) = self.tasks.get_mut(&s.task_id) {
                    if t.attempt == s.attempt && t.status == TaskStatus::Queued {
                        t.status = TaskStatus::Running;
                        t.worker = s.worker.clone();
                    }
                }
            }
            Body::TaskFinished(f) => self.task_finished(f, now, &mut out),
            Body::TimerFired(tf) if !tf.phase_id.is_empty() => {
                self.stage_timer_fired(tf, now, &mut out)
            }
            Body::TimerFired(tf) => {
                let due = self
                    .tasks
                    .get(&tf.task_id)
                    .is_some_and(|t| t.status == TaskStatus::RetryWait && t.attempt == tf.attempt);
                if due {
                    self.dispatch(&tf.task_id, now, &mut out);
                }
            }
            Body::TaskLost(l) => self.task_lost(l, now, &mut out),
            Body::TaskDeadLettered(d) => self.task_dead_lettered(d, now, &mut out),
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
            Body::RunSubmitted(_)
            | Body::PhaseChanged(_)
            | Body::RunFinished(_)
            | Body::Incident(_) => {}
        }
        out
    }

    fn task_finished(&mut self, f: &v1::TaskFinished, now: i64, out: &mut Vec<Command>) {
        let Some(t) = self.tasks.get_mut(&f.task_id) else {
            return;
        };
        // A superseded attempt (its worker was taken for lost, then answered)
        // is recorded, not folded; a duplicate of the current one changes nothing.
        if f.attempt < t.attempt {
            Self::record_stale(t, f, now);
            return;
        }
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
        t.artifacts = f.artifacts.iter().map(ArtifactRecord::from).collect();
        t.trace_id = f.trace_id.clone();
        t.worker = f.worker.clone();
        let (ok, error) = super::schema_check::outcome(&self.plan, &t.role, f, &t.outputs);
        if ok {
            t.status = TaskStatus::Succeeded;
            t.error.clear();
        } else if t.attempt - t.lost.min(t.attempt) < t.max_attempts && !f.permanent {
            t.status = TaskStatus::RetryWait;
            t.error = error;
            t.retry_at_ms = now + backoff_ms(&self.run_id, &t.id, t.attempt);
            out.push(Command::StartTimer {
                task_id: t.id.clone(),
                attempt: t.attempt,
                at_ms: t.retry_at_ms,
            });
            return;
        } else {
            t.status = TaskStatus::Failed;
            t.error = error;
        }
        let id = t.id.clone();
        self.task_ended(&id, now, out);
        self.check_stop_conditions(now, out);
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
}

pub(super) fn new_task(t: &Task, phase: &str, rollback: bool) -> TaskState {
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
        lost: 0,
        stale: Vec::new(),
        dead_lettered: false,
        stage: 0,
        by_condition: false,
        base_attempt: 0,
        artifacts: Vec::new(),
        claims: Default::default(),
    }
}

pub(super) fn find_task<'a>(plan: &'a Plan, id: &str) -> Option<&'a Task> {
    plan.phases
        .iter()
        .flat_map(|p| p.tasks.iter().chain(p.rollback.iter()))
        .find(|t| t.id == id)
}

pub(super) fn who(by: &str) -> &str {
    if by.is_empty() {
        "someone"
    } else {
        by
    }
}

/// FNV-1a: a stable hash for jitter and message ids (std's hasher is seeded per process).
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    h
}
