//! Which events are audited, and what their records say: a pure function of
//! the event, so that the owner writes the same record after a replay and an
//! auditor can rebuild it from the EVENTS stream.
//!
//! Records carry only what events carry, and less: no inputs, no task
//! reports or outputs, no webhook URLs (they may hold tokens). A plan is
//! named by its file and the SHA-256 of its text, never copied.

use std::collections::BTreeMap;

use baton_proto::kinds;
use baton_proto::v1::{self, event::Body, PhaseStatus};
use sha2::{Digest, Sha256};

/// A record's content before it is numbered, linked and hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub event_seq: u64,
    pub time_ms: i64,
    pub kind: &'static str,
    pub actor: String,
    pub reason: String,
    pub subject: String,
    pub detail: BTreeMap<String, String>,
}

/// Longest free text (a task's error, a reason) kept in a record.
const MAX_TEXT: usize = 1000;

/// The record of event `ev` (stream sequence `seq`), or `None` for events
/// that decide nothing (timers, a phase starting or waiting). `coordinator`
/// is the actor of the coordinator's own decisions.
pub fn from_event(ev: &v1::Event, seq: u64, coordinator: &str) -> Option<Entry> {
    let body = ev.body.as_ref()?;
    let mut detail = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        detail.insert(k.to_string(), v);
    };
    let (kind, actor, reason, subject) = match body {
        Body::RunSubmitted(s) => {
            put("trigger", s.trigger.clone());
            put(
                "plan_sha256",
                hex::encode(Sha256::digest(s.plan_yaml.as_bytes())),
            );
            let by = or_unknown(&s.submitted_by);
            let why = format!("submitted via {}", or_unknown(&s.trigger));
            ("submitted", by, why, s.plan_file.clone())
        }
        Body::TaskStarted(t) => {
            put("attempt", t.attempt.to_string());
            let why = format!("attempt {} taken by worker {}", t.attempt, t.worker);
            ("dispatched", t.worker.clone(), why, t.task_id.clone())
        }
        Body::TaskFinished(t) => {
            put("attempt", t.attempt.to_string());
            put("ok", t.ok.to_string());
            put("duration_ms", t.duration_ms.to_string());
            if let Some(code) = t.exit_code {
                put("exit_code", code.to_string());
            }
            let why = if t.ok {
                "succeeded".to_string()
            } else {
                format!("failed: {}", clip(&t.error))
            };
            ("completed", t.worker.clone(), why, t.task_id.clone())
        }
        Body::GateEvaluated(g) => {
            let verdict = match v1::Verdict::try_from(g.verdict) {
                Ok(v1::Verdict::Pass) => "pass",
                Ok(v1::Verdict::Fail) => "fail",
                Ok(v1::Verdict::Pending) => "pending",
                _ => "unspecified",
            };
            put("verdict", verdict.to_string());
            put("round", g.round.to_string());
            put("gate_kind", g.kind.clone());
            let subject = format!("{}#{}", g.phase_id, g.gate_index);
            let why = clip(&g.reasons.join("; "));
            ("gate", format!("gate:{}", g.kind), why, subject)
        }
        Body::Decision(d) => {
            let kind = if d.approve { "approved" } else { "rejected" };
            (kind, or_unknown(&d.by), clip(&d.reason), d.task_id.clone())
        }
        Body::CancelRequested(c) => (
            "cancelled",
            or_unknown(&c.by),
            clip(&c.reason),
            String::new(),
        ),
        Body::TaskLost(t) => {
            put("attempt", t.attempt.to_string());
            put("deliveries", t.deliveries.to_string());
            let why = format!("attempt {} came back unacknowledged", t.attempt);
            ("task_lost", coordinator.to_string(), why, t.task_id.clone())
        }
        Body::TaskDeadLettered(t) => {
            put("attempt", t.attempt.to_string());
            put("dlq_seq", t.dlq_seq.to_string());
            let why = format!("the queue gave up after {} deliveries", t.deliveries);
            (
                "dead_lettered",
                coordinator.to_string(),
                why,
                t.task_id.clone(),
            )
        }
        Body::PhaseChanged(p) => {
            let kind = match kinds::phase_status(p) {
                PhaseStatus::Passed => "promoted",
                PhaseStatus::RolledBack => "rolled_back",
                PhaseStatus::Failed => "phase_failed",
                PhaseStatus::Retrying => "phase_retried",
                PhaseStatus::Skipped => "phase_skipped",
                // Running, gating, holding, waiting: progress, not decisions.
                _ => return None,
            };
            (
                kind,
                coordinator.to_string(),
                clip(&p.reason),
                p.phase_id.clone(),
            )
        }
        Body::RunFinished(f) => {
            put("status", kinds::run_status(f).as_str().to_string());
            (
                "finished",
                coordinator.to_string(),
                clip(&f.reason),
                String::new(),
            )
        }
        Body::Incident(i) => {
            put("incident", i.kind.clone());
            put("stop", i.stop.to_string());
            let why = clip(&i.reasons.join("; "));
            ("incident", coordinator.to_string(), why, i.phase_id.clone())
        }
        Body::TimerFired(_) => return None,
    };
    Some(Entry {
        event_seq: seq,
        time_ms: ev.time_ms,
        kind,
        actor,
        reason,
        subject,
        detail,
    })
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() { "unknown" } else { s }.to_string()
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
