//! Records, their canonical bytes and hashes, and walking a chain.
//!
//! Canonical bytes are the record serialised as JSON with its fields in
//! declaration order, `detail` keys sorted (a `BTreeMap`), and without
//! `hash`: the same bytes on every machine and every version of serde_json,
//! so an auditor can recompute each hash with nothing but the stream.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::record::Entry;

/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub run: String,
    /// 0, 1, 2… along the run's chain.
    pub n: u64,
    /// Hex SHA-256 of the previous record's canonical bytes; [`GENESIS`] for n = 0.
    pub prev: String,
    /// The EVENTS stream sequence of the event this record stands for.
    pub event_seq: u64,
    pub time_ms: i64,
    pub kind: String,
    pub actor: String,
    pub reason: String,
    pub subject: String,
    pub detail: BTreeMap<String, String>,
    /// Hex SHA-256 of the canonical bytes; evidence bundles take `n` and
    /// `hash` of the last record as the run's audit head.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

impl Record {
    /// The record that follows `prev_hash` as number `n`, hashed.
    pub fn seal(run: &str, n: u64, prev_hash: &str, e: &Entry) -> Record {
        let mut r = Record {
            run: run.to_string(),
            n,
            prev: prev_hash.to_string(),
            event_seq: e.event_seq,
            time_ms: e.time_ms,
            kind: e.kind.to_string(),
            actor: e.actor.clone(),
            reason: e.reason.clone(),
            subject: e.subject.clone(),
            detail: e.detail.clone(),
            hash: String::new(),
        };
        r.hash = r.content_hash();
        r
    }

    /// The bytes the hash covers: everything but `hash`.
    pub fn canonical(&self) -> Vec<u8> {
        let bare = Record {
            hash: String::new(),
            ..self.clone()
        };
        // A struct of strings, integers and a string map always serialises.
        serde_json::to_vec(&bare).unwrap_or_default()
    }

    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical()))
    }

    /// The bytes stored on the stream.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What kind of tampering a record shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Its hash does not match its content (or it is not a record at all).
    Changed,
    /// The numbering or the link skips: records before it are missing.
    Removed,
    /// A second successor of a record, a repeated number, a record of another
    /// run, or one its event does not back.
    Inserted,
}

impl Tamper {
    pub fn as_str(self) -> &'static str {
        match self {
            Tamper::Changed => "changed",
            Tamper::Removed => "removed",
            Tamper::Inserted => "inserted",
        }
    }
}

/// The first bad record of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub tamper: Tamper,
    /// Its sequence in the AUDIT stream.
    pub stream_seq: u64,
    /// Its `n`, when it could be read.
    pub n: Option<u64>,
    pub why: String,
}

/// A chain that checks out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    /// Hash of the last record ([`GENESIS`] for an empty chain).
    pub head: String,
}

/// Walk one run's records in stream order: `(stream sequence, bytes)`.
/// `backs(record)` checks a well-linked record against the event it names
/// (`Err(why)` when the event does not back it); pass `|_| Ok(())` to check
/// the chain alone.
pub fn verify(
    run: &str,
    stored: &[(u64, Vec<u8>)],
    mut backs: impl FnMut(&Record) -> Result<(), String>,
) -> Result<Verified, Finding> {
    let mut head = GENESIS.to_string();
    let mut next = 0u64;
    let mut last_event = 0u64;
    let mut linked: HashSet<String> = HashSet::new();
    for (seq, bytes) in stored {
        let bad = |tamper, n, why: String| Finding {
            tamper,
            stream_seq: *seq,
            n,
            why,
        };
        let r: Record = serde_json::from_slice(bytes).map_err(|e| {
            bad(
                Tamper::Changed,
                None,
                format!("not a well-formed record: {e}"),
            )
        })?;
        let n = Some(r.n);
        if r.content_hash() != r.hash {
            return Err(bad(
                Tamper::Changed,
                n,
                "its hash does not match its content".into(),
            ));
        }
        if r.run != run {
            return Err(bad(
                Tamper::Inserted,
                n,
                format!("it belongs to run {}", r.run),
            ));
        }
        if r.n < next {
            return Err(bad(
                Tamper::Inserted,
                n,
                format!("record {} is already in the chain", r.n),
            ));
        }
        if r.prev != head && linked.contains(&r.prev) {
            return Err(bad(
                Tamper::Inserted,
                n,
                "its prev points at a record that already has a successor".into(),
            ));
        }
        if r.n > next {
            let missing = if r.n == next + 1 {
                format!("record {next} is missing")
            } else {
                format!("records {next}..{} are missing", r.n - 1)
            };
            return Err(bad(Tamper::Removed, n, missing));
        }
        if r.prev != head {
            return Err(bad(
                Tamper::Removed,
                n,
                format!(
                    "its prev is not the hash of record {}",
                    next.wrapping_sub(1)
                ),
            ));
        }
        if r.n > 0 && r.event_seq <= last_event {
            return Err(bad(
                Tamper::Inserted,
                n,
                format!(
                    "its event {} is not after the previous record's {last_event}",
                    r.event_seq
                ),
            ));
        }
        backs(&r).map_err(|why| bad(Tamper::Inserted, n, why))?;
        linked.insert(r.hash.clone());
        head = r.hash;
        last_event = r.event_seq;
        next += 1;
    }
    Ok(Verified {
        records: next,
        head,
    })
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
