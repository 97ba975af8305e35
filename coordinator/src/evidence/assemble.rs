//! Evidence from a run's final state and its events: pure, so that what
//! goes into a signed statement is tested without a bus.

use std::collections::{BTreeMap, BTreeSet};

use baton_proto::kinds;
use baton_proto::v1::{self, event::Body};
use sha2::{Digest, Sha256};

use super::statement::*;
use crate::run::RunState;

/// Log digests by (task, attempt), fed line by line in stream order.
#[derive(Default)]
pub struct LogHasher {
    open: BTreeMap<(String, u32), (u64, Sha256)>,
}

impl LogHasher {
    pub fn add(&mut self, task: &str, attempt: u32, line: &[u8]) {
        let (n, h) = self
            .open
            .entry((task.to_string(), attempt))
            .or_insert_with(|| (0, Sha256::new()));
        *n += 1;
        h.update(line);
        h.update(b"\n");
    }

    pub fn finish(self) -> BTreeMap<(String, u32), LogDigest> {
        self.open
            .into_iter()
            .map(|(k, (lines, h))| {
                let sha256 = hex::encode(h.finalize());
                (k, LogDigest { lines, sha256 })
            })
            .collect()
    }
}

/// The digest of an attempt that logged nothing: zero lines, sha256 of "".
pub fn empty_log() -> LogDigest {
    LogDigest {
        lines: 0,
        sha256: hex::encode(Sha256::digest(b"")),
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn assemble(
    st: &RunState,
    events: &[v1::Event],
    logs: &BTreeMap<(String, u32), LogDigest>,
    audit_head: Option<AuditHead>,
) -> Statement {
    let plan = PlanRef {
        name: st.plan.name.clone(),
        file: st.plan_file.clone(),
        sha256: sha256_hex(st.plan_yaml.as_bytes()),
    };
    let mut subject = vec![Subject {
        name: format!("plan/{}", plan.name),
        digest: sha256_map(&plan.sha256),
    }];
    let mut finished: BTreeMap<(&str, u32), &v1::TaskFinished> = BTreeMap::new();
    let mut lost: BTreeSet<(&str, u32)> = BTreeSet::new();
    let mut gates = Vec::new();
    let mut approvals = Vec::new();
    let mut decisions = Vec::new();
    // Only what the fold acted on: a result from a worker that did not
    // claim the attempt is no evidence of anything (the caller has bound
    // each event to its subject already).
    for ev in events.iter().filter(|e| st.admit(e).is_ok()) {
        let t = ev.time_ms;
        match &ev.body {
            // The first result of an attempt is the one the fold took.
            Some(Body::TaskFinished(f)) => {
                finished.entry((f.task_id.as_str(), f.attempt)).or_insert(f);
            }
            Some(Body::TaskLost(l)) => {
                lost.insert((l.task_id.as_str(), l.attempt));
            }
            Some(Body::GateEvaluated(g)) => gates.push(GateEvidence {
                phase: g.phase_id.clone(),
                gate_index: g.gate_index,
                round: g.round,
                kind: g.kind.clone(),
                verdict: verdict(g.verdict).into(),
                reasons: g.reasons.clone(),
                time_ms: t,
            }),
            Some(Body::Decision(d)) => approvals.push(Approval {
                approve: d.approve,
                by: d.by.clone(),
                reason: d.reason.clone(),
                task_id: d.task_id.clone(),
                time_ms: t,
            }),
            Some(Body::PhaseChanged(p)) => decisions.push(DecisionEvidence::Phase {
                phase: p.phase_id.clone(),
                status: kinds::phase_status(p).as_str().to_string(),
                reason: p.reason.clone(),
                time_ms: t,
            }),
            Some(Body::CancelRequested(c)) => decisions.push(DecisionEvidence::Cancel {
                by: c.by.clone(),
                reason: c.reason.clone(),
                time_ms: t,
            }),
            Some(Body::Incident(i)) => decisions.push(DecisionEvidence::Incident {
                incident: i.kind.clone(),
                phase: i.phase_id.clone(),
                reasons: i.reasons.clone(),
                time_ms: t,
            }),
            Some(Body::RunFinished(r)) => decisions.push(DecisionEvidence::End {
                status: kinds::run_status(r).as_str().to_string(),
                reason: r.reason.clone(),
                time_ms: t,
            }),
            _ => {}
        }
    }
    let mut tasks = Vec::new();
    for id in &st.task_order {
        let Some(ts) = st.tasks.get(id) else { continue };
        let mut numbers: BTreeSet<u32> = (1..=ts.attempt).collect();
        numbers.extend(finished.keys().filter(|k| k.0 == id).map(|k| k.1));
        numbers.extend(logs.keys().filter(|k| &k.0 == id).map(|k| k.1));
        let attempts = numbers
            .into_iter()
            .map(|n| {
                let log = logs
                    .get(&(id.clone(), n))
                    .cloned()
                    .unwrap_or_else(empty_log);
                attempt(id, n, finished.get(&(id.as_str(), n)).copied(), &lost, log)
            })
            .collect::<Vec<_>>();
        for f in finished.iter().filter(|(k, _)| k.0 == id).map(|(_, f)| f) {
            for a in &f.artifacts {
                subject.push(Subject {
                    name: format!("artifact/{}", a.object),
                    digest: sha256_map(&a.sha256),
                });
            }
        }
        tasks.push(TaskEvidence {
            task_id: id.clone(),
            phase: ts.phase.clone(),
            role: ts.role.clone(),
            rollback: ts.rollback,
            status: ts.status.as_str().into(),
            attempts,
        });
    }
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Evidence {
            run_id: st.run_id.clone(),
            status: st.status.as_str().into(),
            reason: st.reason.clone(),
            created_ms: st.created_ms,
            finished_ms: st.finished_ms,
            submitted_by: st.submitted_by.clone(),
            plan,
            input_names: st.inputs.keys().cloned().collect(),
            tasks,
            gates,
            approvals,
            decisions,
            audit_head,
        },
    }
}

fn attempt(
    task: &str,
    n: u32,
    f: Option<&v1::TaskFinished>,
    lost: &BTreeSet<(&str, u32)>,
    log: LogDigest,
) -> AttemptEvidence {
    let Some(f) = f else {
        let outcome = if lost.contains(&(task, n)) {
            "lost"
        } else {
            "unfinished"
        };
        return AttemptEvidence {
            attempt: n,
            outcome: outcome.into(),
            ok: false,
            exit_code: None,
            error: String::new(),
            worker: String::new(),
            duration_ms: 0,
            report_sha256: String::new(),
            artifacts: vec![],
            log,
        };
    };
    AttemptEvidence {
        attempt: n,
        outcome: "finished".into(),
        ok: f.ok,
        exit_code: f.exit_code,
        error: f.error.clone(),
        worker: f.worker.clone(),
        duration_ms: f.duration_ms,
        report_sha256: if f.report_json.is_empty() {
            String::new()
        } else {
            sha256_hex(f.report_json.as_bytes())
        },
        artifacts: f
            .artifacts
            .iter()
            .map(|a| ArtifactEvidence {
                path: a.path.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
            })
            .collect(),
        log,
    }
}

fn verdict(v: i32) -> &'static str {
    match v1::Verdict::try_from(v) {
        Ok(v1::Verdict::Pass) => "pass",
        Ok(v1::Verdict::Fail) => "fail",
        Ok(v1::Verdict::Pending) => "pending",
        _ => "unspecified",
    }
}

fn sha256_map(hex: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_string(), hex.to_string())])
}
