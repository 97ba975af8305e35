//! The plan as the coordinator uses it, after parsing and validation.
//!
//! Every type here is plain data: the fold clones nothing from YAML at run time,
//! and a plan is stored (as its YAML source) inside the `RunSubmitted` event so
//! that replaying a run re-parses exactly what was submitted.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::schema::Schema;

/// A validated plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    /// Declared inputs, in declaration order.
    pub inputs: Vec<InputSpec>,
    /// Roles by id.
    pub roles: BTreeMap<String, Role>,
    /// Ordered phases.
    pub phases: Vec<Phase>,
    /// `environments:`: the groups of `per_environment` phases run once per entry, in order.
    #[serde(default)]
    pub environments: Vec<Environment>,
    /// `repeat:` loops over consecutive phases.
    #[serde(default)]
    pub repeats: Vec<Repeat>,
    /// `stop_when:` expressions: when one holds, the run stops at once and rolls back.
    #[serde(default)]
    pub stop_when: Vec<String>,
    /// `incidents: { webhook }`: where halts, stops and canary breaches are POSTed.
    #[serde(default)]
    pub incident_webhook: Option<String>,
    /// `workspace:` shared by the run's tasks (per role access, see `Role::workspace`).
    #[serde(default)]
    pub workspace: Option<WorkspaceSpec>,
    /// `artifacts: { max_bytes }`: per attempt; 0 = the worker's default.
    #[serde(default)]
    pub max_artifact_bytes: u64,
    /// The phases as they run: expanded per environment, canary step and
    /// loop iteration (see `stages`). Filled by `load`.
    #[serde(default)]
    pub stages: Vec<super::stages::Stage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    /// Promotion gates of this environment, asked after the group's last phase.
    pub gates: Vec<GateSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    /// Names the loop in reports; defaults to its first phase's id.
    pub id: String,
    /// Consecutive phase ids, in plan order.
    pub phases: Vec<String>,
    /// Asked after each iteration's last phase passed; all pass = green.
    pub until: Vec<GateSpec>,
    pub max: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// Traffic weights in percent, increasing, ending at 100.
    pub steps: Vec<u32>,
    /// Observation time at each step before its gates are asked.
    #[serde(with = "duration_ms")]
    pub hold: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkspaceSource {
    /// A Docker volume made for the run (`baton-ws-<run>`).
    Volume,
    /// A host path, absolute once rendered; may hold `${{ inputs.x }}`.
    HostPath(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    pub source: WorkspaceSource,
    pub mount: String,
    /// Where `host_path` is written (line, column), for warnings.
    #[serde(skip)]
    pub at: (usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceAccess {
    None,
    #[default]
    ReadOnly,
    ReadWrite,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    /// `None` means the input is required.
    pub default: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    #[default]
    Auto,
    ApprovalRequired,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub image: String,
    pub risk: Risk,
    /// How the role's tasks see the plan's workspace (read-only unless said).
    #[serde(default)]
    pub workspace: WorkspaceAccess,
    /// What tasks of this role take in `with:`; empty = not declared.
    #[serde(default)]
    pub inputs: Schema,
    /// What a successful result must report; empty = not declared.
    #[serde(default)]
    pub outputs: Schema,
    /// What its tasks ask beyond the strict sandbox (`sandbox:`).
    #[serde(default)]
    pub sandbox: super::sandbox::RoleSandbox,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Run the rollback steps of every phase started so far, newest first.
    #[default]
    Rollback,
    /// Run the whole phase again, up to `Phase::max_retries` more times.
    Retry,
    /// Stop the run and leave it for a person.
    Halt,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub id: String,
    pub tasks: Vec<Task>,
    /// Gates as written. When no `tasks` gate is written, the coordinator
    /// adds an implicit `tasks: all_ok` in front (see `Phase::effective_gates`).
    pub gates: Vec<GateSpec>,
    pub on_fail: OnFail,
    /// With `on_fail: retry`: how many more times the phase may run. Default 2.
    pub max_retries: u32,
    pub rollback: Vec<Task>,
    /// `when:`: the phase runs only if this expression holds when it would start.
    #[serde(default)]
    pub when: Option<String>,
    /// Runs once per plan environment (with its neighbours that say so too).
    #[serde(default)]
    pub per_environment: bool,
    #[serde(default)]
    pub canary: Option<Canary>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GateSpec {
    /// `tasks: all_ok` (`min_ok: None`) or `tasks: { min_ok: N }`.
    Tasks { min_ok: Option<u32> },
    /// `expr: "<expression>"`, parsed by [`crate::expr`].
    Expr { expr: String },
    /// `approval: { quorum, allow_self_approval, expires, on_expiry }` or
    /// `approval: {}`; people decide.
    Approval(ApprovalSpec),
    /// `window: { cron, duration, timezone }`: open while a maintenance window is.
    Window {
        cron: String,
        #[serde(with = "duration_ms")]
        duration: Duration,
        timezone: String,
    },
}

/// Who must approve, and how long they have. Defaults are those of
/// [`ApprovalSpec::default`]; a snapshot written before a field existed reads
/// its default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalSpec {
    /// Distinct people who must approve.
    pub quorum: u32,
    /// Whether the run's submitter counts towards the quorum.
    #[serde(default = "yes")]
    pub allow_self_approval: bool,
    /// How long the gate waits for its quorum, from when it is first asked;
    /// zero waits forever.
    #[serde(default, with = "duration_ms")]
    pub expires: Duration,
    #[serde(default)]
    pub on_expiry: OnExpiry,
}

impl Default for ApprovalSpec {
    /// One approval, by anyone (the submitter too), with no deadline: what an
    /// Argo `suspend` or a GitHub environment reviewer gives out of the box.
    fn default() -> Self {
        ApprovalSpec {
            quorum: 1,
            allow_self_approval: true,
            expires: Duration::ZERO,
            on_expiry: OnExpiry::Fail,
        }
    }
}

fn yes() -> bool {
    true
}

/// What an approval that expired does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// The phase fails; its `on_fail` (rollback by default) applies.
    #[default]
    Fail,
    /// A `halt` incident; the run stops where it is.
    Halt,
}

impl OnExpiry {
    pub fn as_str(self) -> &'static str {
        match self {
            OnExpiry::Fail => "fail",
            OnExpiry::Halt => "halt",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub role: String,
    /// argv; templates (`${{ inputs.x }}`, `${{ tasks.t.outputs.k }}`) are rendered at dispatch.
    pub run: Vec<String>,
    /// Environment; values may hold templates too.
    pub env: BTreeMap<String, String>,
    pub needs: Vec<String>,
    /// Per-attempt limit. Default 10 minutes.
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Extra attempts after the first one fails. Default 0.
    pub retries: u32,
    /// Declared output names; empty means "not declared" (any key allowed).
    pub outputs: Vec<String>,
    /// `when:`: the task runs only if this holds when it is ready; otherwise
    /// it is skipped, does not count for the phase's `tasks` gate, and tasks
    /// that need it still run.
    #[serde(default)]
    pub when: Option<String>,
    /// Values for the role's declared inputs (may hold templates); given to
    /// the task as `BATON_INPUT_<NAME>` variables.
    #[serde(default)]
    pub with: BTreeMap<String, String>,
    /// Secrets by reference (`env: { N: { secret: … } }` and `secrets:`);
    /// the worker resolves them, the plan never holds a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
}

/// A secret the worker reads on its own host when the attempt starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// The environment variable, or the file name under `/run/secrets/`.
    pub name: String,
    pub source: SecretSource,
    /// Delivered as a file under `/run/secrets/` rather than a variable.
    pub as_file: bool,
}

/// Where the worker finds the value; there is no variant holding one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// A variable of the worker's own environment.
    FromEnv(String),
    /// An absolute path on the worker host.
    FromFile(String),
}

impl Phase {
    /// The gates the coordinator asks, in order: an implicit `tasks: all_ok`
    /// first when the plan wrote no `tasks` gate, so a failed task never
    /// slips through a phase that only checks an expression.
    pub fn effective_gates(&self) -> Vec<GateSpec> {
        let has_tasks_gate = self
            .gates
            .iter()
            .any(|g| matches!(g, GateSpec::Tasks { .. }));
        let mut gates = Vec::with_capacity(self.gates.len() + 1);
        if !has_tasks_gate {
            gates.push(GateSpec::Tasks { min_ok: None });
        }
        gates.extend(self.gates.iter().cloned());
        gates
    }
}

impl Plan {
    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.get(id)
    }
}

pub mod duration_ms {
    //! Durations travel as whole milliseconds so snapshots stay readable.
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
