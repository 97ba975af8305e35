//! Who may report an attempt: the worker that claimed it.
//!
//! A claim (`TaskStarted`) is published on a subject of its own with
//! `Nats-Expected-Last-Subject-Sequence: 0`, so the stream holds one per
//! attempt. It names the worker and carries the SHA-256 of a secret that
//! only that worker holds; its result reveals the secret. Every worker
//! credential may publish results, and anyone who reads the stream learns a
//! claim's worker name, but only the claimer knows the secret, so a result
//! counts only from the worker that claimed the attempt.
//!
//! A loss (`TaskLost`) comes from whichever worker found the message
//! redelivered, not from the claimer (who is gone); it counts only when it
//! names the queue message the claim names. That binds it to the attempt,
//! not to a secret: a worker credential that reads the claim could still
//! report a loss, which at worst runs the attempt again (five losses fail
//! the task); it never makes a task succeed and never decides a gate.

use baton_proto::codec::Refused;
use baton_proto::v1::{self, event::Body, Event};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::state::RunState;

/// One attempt's claim, as the first `TaskStarted` for it said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub worker: String,
    /// Lowercase hex SHA-256 of the claimer's secret.
    pub digest: String,
    /// Stream sequence of the work message the claimer took.
    pub queue_seq: u64,
}

impl RunState {
    /// Whether the fold may act on `ev`: results and losses must match
    /// their attempt's claim, and an attempt has one claim. Pure, and the same however late it is asked:
    /// a claim is recorded once and never changes.
    pub fn admit(&self, ev: &Event) -> Result<(), Refused> {
        if let Some(Body::TaskStarted(s)) = &ev.body {
            // A claim under another role was published by a credential
            // that may not take this task (`worker-build` on a deploy).
            if self.tasks.get(&s.task_id).is_some_and(|t| t.role != s.role) {
                return Err(Refused::Unclaimed {
                    task: s.task_id.clone(),
                    attempt: s.attempt,
                    worker: s.worker.clone(),
                });
            }
        }
        check(ev, |task, attempt| {
            self.tasks.get(task).and_then(|t| t.claims.get(&attempt))
        })
    }

    /// Record an attempt's claim; the first one stands.
    pub(super) fn claimed(&mut self, s: &v1::TaskStarted) {
        let Some(t) = self.tasks.get_mut(&s.task_id) else {
            return;
        };
        if s.attempt == 0 || s.attempt > t.attempt {
            return;
        }
        t.claims.entry(s.attempt).or_insert_with(|| record(s));
    }
}

/// The one rule, whoever keeps the claims: `claim` finds an attempt's.
fn check<'a>(
    ev: &Event,
    claim: impl Fn(&str, u32) -> Option<&'a ClaimRecord>,
) -> Result<(), Refused> {
    let (task, attempt, worker, ok) = match &ev.body {
        // The stream admits one claim per attempt; a second one was
        // published around that rule and claims nothing.
        Some(Body::TaskStarted(s)) => {
            let ok = claim(&s.task_id, s.attempt)
                .is_none_or(|c| c.worker == s.worker && c.digest == s.claim_digest);
            (&s.task_id, s.attempt, &s.worker, ok)
        }
        Some(Body::TaskFinished(f)) => {
            let ok = claim(&f.task_id, f.attempt)
                .is_some_and(|c| c.worker == f.worker && proves(&f.claim_proof, &c.digest));
            (&f.task_id, f.attempt, &f.worker, ok)
        }
        Some(Body::TaskLost(l)) => {
            let ok = claim(&l.task_id, l.attempt).is_some_and(|c| c.queue_seq == l.queue_seq);
            (&l.task_id, l.attempt, &l.worker, ok)
        }
        _ => return Ok(()),
    };
    if ok {
        return Ok(());
    }
    Err(Refused::Unclaimed {
        task: task.clone(),
        attempt,
        worker: worker.clone(),
    })
}

fn record(s: &v1::TaskStarted) -> ClaimRecord {
    ClaimRecord {
        worker: s.worker.clone(),
        digest: s.claim_digest.clone(),
        queue_seq: s.queue_seq,
    }
}

/// Whether `proof` (hex) hashes to `digest` (hex). An empty digest (a claim
/// by a worker that predates claims with secrets) proves nothing.
fn proves(proof: &str, digest: &str) -> bool {
    if digest.is_empty() {
        return false;
    }
    let Ok(secret) = hex::decode(proof) else {
        return false;
    };
    hex::encode(Sha256::digest(&secret)) == digest
}

/// A claim's secret and its digest, as a worker makes them (tests use it too).
pub fn digest_of(secret: &[u8]) -> String {
    hex::encode(Sha256::digest(secret))
}

/// A claim and the matching proof, for tests that feed the fold by hand.
#[cfg(test)]
pub(crate) fn test_claim(
    task: &str,
    role: &str,
    attempt: u32,
    worker: &str,
) -> (v1::TaskStarted, String) {
    let secret = format!("secret of {task}#{attempt}");
    let started = v1::TaskStarted {
        task_id: task.into(),
        role: role.into(),
        attempt,
        worker: worker.into(),
        queue_seq: u64::from(attempt),
        claim_digest: digest_of(secret.as_bytes()),
        ..Default::default()
    };
    (started, hex::encode(secret))
}
