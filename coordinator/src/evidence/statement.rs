//! The in-toto Statement v1 that an envelope carries, and Baton's predicate:
//! what happened in one run. Field names are the wire format of the
//! predicate type [`PREDICATE_TYPE`]; change them only with a new type URI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://example.invalid/baton/evidence/v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Evidence,
}

/// What the statement is about: the plan, and every artifact of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    /// `{"sha256": <lowercase hex>}`.
    pub digest: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub run_id: String,
    pub status: String,
    pub reason: String,
    pub created_ms: i64,
    pub finished_ms: i64,
    pub submitted_by: String,
    pub plan: PlanRef,
    /// Names only: values may be secrets.
    pub input_names: Vec<String>,
    pub tasks: Vec<TaskEvidence>,
    pub gates: Vec<GateEvidence>,
    pub approvals: Vec<Approval>,
    pub decisions: Vec<DecisionEvidence>,
    /// The last record of the run's audit chain when the evidence was made;
    /// null when there is no audit trail for the run.
    pub audit_head: Option<AuditHead>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub name: String,
    pub file: String,
    /// SHA-256 of the plan's YAML exactly as submitted.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEvidence {
    pub task_id: String,
    pub phase: String,
    pub role: String,
    pub rollback: bool,
    pub status: String,
    pub attempts: Vec<AttemptEvidence>,
}

/// One attempt: its result when one came, its log digest when it logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptEvidence {
    pub attempt: u32,
    /// `finished`, `lost` (its worker vanished) or `unfinished`.
    pub outcome: String,
    pub ok: bool,
    pub exit_code: Option<i64>,
    pub error: String,
    pub worker: String,
    pub duration_ms: u64,
    /// SHA-256 of the task's report JSON text; empty when it gave none.
    pub report_sha256: String,
    pub artifacts: Vec<ArtifactEvidence>,
    pub log: LogDigest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEvidence {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// SHA-256 over the attempt's log lines in stream order, each line's bytes
/// followed by one `\n` (see docs/security.md#signed-evidence).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDigest {
    pub lines: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateEvidence {
    pub phase: String,
    pub gate_index: u32,
    pub round: u32,
    pub kind: String,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approve: bool,
    pub by: String,
    pub reason: String,
    /// Empty when the decision was for whatever waited in the run.
    pub task_id: String,
    pub time_ms: i64,
}

/// A step of the run's course that the coordinator took or was told to take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionEvidence {
    Phase {
        phase: String,
        status: String,
        reason: String,
        time_ms: i64,
    },
    Cancel {
        by: String,
        reason: String,
        time_ms: i64,
    },
    Incident {
        incident: String,
        phase: String,
        reasons: Vec<String>,
        time_ms: i64,
    },
    End {
        status: String,
        reason: String,
        time_ms: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub n: u64,
    pub hash: String,
}
