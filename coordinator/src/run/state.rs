//! The state of one run: what the fold reads and writes, and what a snapshot stores.
//!
//! The status enums here are the states a run, a stage and a task can be
//! in; they convert to the wire's (`v1::RunStatus`, ...), whose names they
//! take. Snapshots store them as those lowercase snake_case names.

use std::collections::BTreeMap;

use baton_plan::Plan;
use baton_proto::v1;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    RolledBack,
    Halted,
    Cancelled,
}

impl RunStatus {
    /// Its name in snapshots, views and audit records: the wire's.
    pub fn as_str(self) -> &'static str {
        v1::RunStatus::from(self).as_str()
    }
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }
}

impl From<RunStatus> for v1::RunStatus {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Running => v1::RunStatus::Running,
            RunStatus::Succeeded => v1::RunStatus::Succeeded,
            RunStatus::Failed => v1::RunStatus::Failed,
            RunStatus::RolledBack => v1::RunStatus::RolledBack,
            RunStatus::Halted => v1::RunStatus::Halted,
            RunStatus::Cancelled => v1::RunStatus::Cancelled,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    Pending,
    Running,
    /// Tasks are done; the gates were asked.
    Gating,
    Passed,
    Failed,
    RolledBack,
    /// A canary step's tasks are done; its gates wait for the hold to end.
    Holding,
    /// Its `when` was false, or a loop went green before it.
    Skipped,
}

impl PhaseStatus {
    /// Its name in snapshots, views and audit records: the wire's.
    pub fn as_str(self) -> &'static str {
        v1::PhaseStatus::from(self).as_str()
    }
}

impl From<PhaseStatus> for v1::PhaseStatus {
    fn from(s: PhaseStatus) -> Self {
        match s {
            PhaseStatus::Pending => v1::PhaseStatus::Pending,
            PhaseStatus::Running => v1::PhaseStatus::Running,
            PhaseStatus::Gating => v1::PhaseStatus::Gating,
            PhaseStatus::Passed => v1::PhaseStatus::Passed,
            PhaseStatus::Failed => v1::PhaseStatus::Failed,
            PhaseStatus::RolledBack => v1::PhaseStatus::RolledBack,
            PhaseStatus::Holding => v1::PhaseStatus::Holding,
            PhaseStatus::Skipped => v1::PhaseStatus::Skipped,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    AwaitingApproval,
    /// Published to the role's queue; no worker has said it started.
    Queued,
    Running,
    /// Failed an attempt; the next one starts when the backoff timer fires.
    RetryWait,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl TaskStatus {
    /// Its name in snapshots, views and gate requests: the wire's.
    pub fn as_str(self) -> &'static str {
        v1::TaskStatus::from(self).as_str()
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded
                | TaskStatus::Failed
                | TaskStatus::Skipped
                | TaskStatus::Cancelled
        )
    }
}

impl From<TaskStatus> for v1::TaskStatus {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Pending => v1::TaskStatus::Pending,
            TaskStatus::AwaitingApproval => v1::TaskStatus::AwaitingApproval,
            TaskStatus::Queued => v1::TaskStatus::Queued,
            TaskStatus::Running => v1::TaskStatus::Running,
            TaskStatus::RetryWait => v1::TaskStatus::RetryWait,
            TaskStatus::Succeeded => v1::TaskStatus::Succeeded,
            TaskStatus::Failed => v1::TaskStatus::Failed,
            TaskStatus::Skipped => v1::TaskStatus::Skipped,
            TaskStatus::Cancelled => v1::TaskStatus::Cancelled,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    pub kind: String,
    /// `None` until the evaluator answers this round.
    pub verdict: Option<Verdict>,
    pub reasons: Vec<String>,
    /// A loop's `until` gate: failing it means "iterate again".
    #[serde(default)]
    pub until: bool,
    /// A pending window's next opening (ms since the epoch), 0 when none.
    #[serde(default)]
    pub retry_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Pending,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Pending => "pending",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub approve: bool,
    pub by: String,
    pub reason: String,
    pub time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseState {
    pub id: String,
    pub status: PhaseStatus,
    /// Bumped each time the gates are asked; answers for an older round are stale.
    pub round: u32,
    /// Times the phase was run again under `on_fail: retry`.
    pub retries_used: u32,
    pub gates: Vec<GateState>,
    /// Decisions of people on this phase's approval gates.
    pub decisions: Vec<DecisionRecord>,
    pub reason: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// When the stage's timer (a canary hold, a closed window) fires; 0 when none.
    #[serde(default)]
    pub timer_at_ms: i64,
    /// When the stage's approval expires (ms since the epoch), set when its
    /// gates are first asked; 0 when no approval gate of it expires.
    #[serde(default)]
    pub approval_expires_ms: i64,
    /// The stage's tasks as they ended (a later stage may run them again).
    #[serde(default)]
    pub outcomes: Vec<Outcome>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub task_id: String,
    pub status: TaskStatus,
    pub error: String,
    pub outputs: serde_json::Map<String, serde_json::Value>,
    pub artifacts: Vec<ArtifactRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub object: String,
}

impl From<&baton_proto::v1::Artifact> for ArtifactRecord {
    fn from(a: &baton_proto::v1::Artifact) -> Self {
        ArtifactRecord {
            path: a.path.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            object: a.object.clone(),
        }
    }
}

impl From<&ArtifactRecord> for baton_proto::v1::Artifact {
    fn from(a: &ArtifactRecord) -> Self {
        baton_proto::v1::Artifact {
            path: a.path.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            object: a.object.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub kind: String,
    pub phase: String,
    pub reasons: Vec<String>,
    pub time_ms: i64,
    pub stop: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    pub id: String,
    pub phase: String,
    pub role: String,
    pub rollback: bool,
    pub status: TaskStatus,
    /// The current attempt, 1-based; 0 before the first dispatch.
    pub attempt: u32,
    pub max_attempts: u32,
    pub exit_code: Option<i64>,
    /// The task's report as JSON text, empty when none.
    pub report_json: String,
    pub outputs: serde_json::Map<String, serde_json::Value>,
    pub error: String,
    pub duration_ms: u64,
    pub trace_id: String,
    pub worker: String,
    pub approved_by: Option<DecisionRecord>,
    pub retry_at_ms: i64,
    pub dispatched_ms: i64,
    /// Attempts lost with their worker; they do not use up retries.
    #[serde(default)]
    pub lost: u32,
    /// Late results of superseded attempts: recorded, never folded.
    #[serde(default)]
    pub stale: Vec<StaleResult>,
    #[serde(default)]
    pub dead_lettered: bool,
    /// The stage (index into `RunState::phases`) the task last ran in.
    #[serde(default)]
    pub stage: usize,
    /// Skipped because its `when` was false: counts as done, not as failed.
    #[serde(default)]
    pub by_condition: bool,
    /// Attempts made in earlier stages: views count attempts from here.
    #[serde(default)]
    pub base_attempt: u32,
    #[serde(default)]
    pub artifacts: Vec<ArtifactRecord>,
    /// Who claimed each attempt (the first claim on the stream wins):
    /// results and losses count only when they match it.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<u32, super::claims::ClaimRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StaleResult {
    pub attempt: u32,
    pub worker: String,
    pub ok: bool,
    pub time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Mode {
    Forward,
    /// Rollback steps in the order they run; `pos` is the step running now.
    RollingBack {
        steps: Vec<String>,
        pos: usize,
        any_failed: bool,
    },
    Done,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    /// Shared, so the fold can walk the plan while it changes the state.
    pub plan: std::sync::Arc<Plan>,
    pub plan_yaml: String,
    pub plan_file: String,
    pub inputs: BTreeMap<String, String>,
    pub status: RunStatus,
    pub reason: String,
    pub created_ms: i64,
    pub finished_ms: i64,
    pub traceparent: String,
    pub submitted_by: String,
    /// Index of the phase moving forward now (or the one that failed).
    pub current: usize,
    pub phases: Vec<PhaseState>,
    /// Every task and rollback step by id, in plan order of insertion.
    pub tasks: BTreeMap<String, TaskState>,
    /// Plan order of `tasks`, for views.
    pub task_order: Vec<String>,
    pub mode: Mode,
    /// Stream sequence of the last event folded; replay skips anything at or below it.
    pub last_seq: u64,
    #[serde(default)]
    pub incidents: Vec<IncidentRecord>,
    /// Per canary phase (`<phase>` or `<phase>@<env>`): the last weight that passed.
    #[serde(default)]
    pub known_good: BTreeMap<String, u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots store the serde names: they must stay the wire's names.
    #[test]
    fn statuses_serialize_as_their_wire_names() {
        fn name<S: Serialize>(s: S) -> String {
            serde_json::to_value(s)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }
        use RunStatus as R;
        let runs = [
            R::Running,
            R::Succeeded,
            R::Failed,
            R::RolledBack,
            R::Halted,
            R::Cancelled,
        ];
        for s in runs {
            assert_eq!(s.as_str(), name(s));
        }
        use PhaseStatus as P;
        let phases = [
            P::Pending,
            P::Running,
            P::Gating,
            P::Passed,
            P::Failed,
            P::RolledBack,
            P::Holding,
            P::Skipped,
        ];
        for s in phases {
            assert_eq!(s.as_str(), name(s));
        }
        use TaskStatus as T;
        let tasks = [
            T::Pending,
            T::AwaitingApproval,
            T::Queued,
            T::Running,
            T::RetryWait,
            T::Succeeded,
            T::Failed,
            T::Skipped,
            T::Cancelled,
        ];
        for s in tasks {
            assert_eq!(s.as_str(), name(s));
        }
    }
}
