//! Signed evidence of ended runs: an in-toto Statement in a DSSE envelope,
//! signed with ed25519, stored as `<run>.intoto.json` in the object store
//! bucket `baton_evidence`.
//!
//! # Layout
//! - `statement`: the in-toto Statement and Baton's predicate (the wire format).
//! - `assemble`: the predicate from a run's state, events and log digests (pure).
//! - `dsse`: PAE, signing, and the strict, canonical reading of envelopes.
//! - `keys`: PEM PKCS#8 / SPKI key files and key ids.
//! - `collect`: reading events, logs and the audit head; storing once.
//! - this file: [`Sealer`], what the engine calls when a run ends.

pub mod assemble;
pub mod collect;
pub mod dsse;
pub mod keys;
pub mod statement;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_nats::jetstream;
use ed25519_dalek::SigningKey;

use crate::run::RunState;
use crate::Error;

/// Signs and stores the evidence of the runs that end on this coordinator.
#[derive(Clone)]
pub struct Sealer {
    pub js: jetstream::Context,
    pub topo: baton_proto::topology::Topology,
    pub key: Arc<SigningKey>,
}

impl Sealer {
    /// Assemble, sign and store; at most once per run (see [`collect::store_once`]).
    pub async fn seal(&self, st: &RunState) -> Result<bool, Error> {
        let name = collect::object_name(&st.run_id);
        if self.topo.evidence.info(&name).await.is_ok() {
            return Ok(false);
        }
        let events = collect::run_events(&self.topo.events, &st.run_id).await?;
        let logs = collect::log_digests(&self.topo.logs, &st.run_id).await?;
        let audit = collect::audit_head(&self.js, &st.run_id).await;
        let statement = assemble::assemble(st, &events, &logs, audit);
        let body = serde_json::to_vec(&statement).expect("a statement is always serialisable");
        let env = dsse::sign(dsse::PAYLOAD_TYPE, &body, &self.key);
        collect::store_once(&self.topo.evidence, &st.run_id, &dsse::to_canonical(&env)).await
    }

    /// Seal in the background, so that the fold loop never waits on it.
    pub fn spawn(&self, st: RunState) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.seal(&st).await {
                Ok(true) => tracing::info!(run = %st.run_id, "evidence signed and stored"),
                Ok(false) => tracing::debug!(run = %st.run_id, "evidence already stored"),
                Err(e) => tracing::error!(run = %st.run_id, error = %e, "evidence not stored"),
            }
        });
    }
}

/// A verified envelope's statement.
pub fn verify(
    bytes: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<statement::Statement, Error> {
    let body = dsse::open(bytes, key)?;
    let st: statement::Statement = serde_json::from_slice(&body)
        .map_err(|e| Error::EvidenceInvalid(format!("payload is not a Baton statement: {e}")))?;
    if st.type_ != statement::STATEMENT_TYPE {
        return Err(Error::EvidenceInvalid(format!(
            "statement _type is `{}`, expected `{}`",
            st.type_,
            statement::STATEMENT_TYPE
        )));
    }
    if st.predicate_type != statement::PREDICATE_TYPE {
        return Err(Error::EvidenceInvalid(format!(
            "predicateType is `{}`, expected `{}`",
            st.predicate_type,
            statement::PREDICATE_TYPE
        )));
    }
    Ok(st)
}
