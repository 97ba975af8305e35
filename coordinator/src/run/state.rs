//! The state of one run: what the fold reads and writes, and what a snapshot stores.

use std::collections::BTreeMap;

use baton_plan::Plan;
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
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled_back",
            RunStatus::Halted => "halted",
            RunStatus::Cancelled => "cancelled",
        }
    }
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
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
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStatus::Pending => "pending",
            PhaseStatus::Running => "running",
            PhaseStatus::Gating => "gating",
            PhaseStatus::Passed => "passed",
            PhaseStatus::Failed => "failed",
            PhaseStatus::RolledBack => "rolled_back",
            PhaseStatus::Holding => "holding",
            PhaseStatus::Skipped => "skipped",
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
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::AwaitingApproval => "awaiting_approval",
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::RetryWait => "retry_wait",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Cancelled => "cancelled",
        }
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
