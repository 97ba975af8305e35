//! Where admin calls read runs from: this coordinator's folded state first,
//! then the `runs` bucket, so that any coordinator answers about any run.

use std::sync::Arc;

use async_nats::jetstream::kv;
use dashmap::DashMap;
use futures::StreamExt;

use crate::run::RunState;
use crate::Error;

/// A cheap, cloneable handle to the runs this process knows.
#[derive(Clone)]
pub struct RunStore {
    pub local: Arc<DashMap<String, Arc<RunState>>>,
    pub bucket: kv::Store,
    /// For runs accepted but not folded yet: their submission is their state.
    pub events: async_nats::jetstream::stream::Stream,
    /// Woken whenever the fold changes a run.
    pub changed: Arc<tokio::sync::Notify>,
}

impl RunStore {
    pub fn new(bucket: kv::Store, events: async_nats::jetstream::stream::Stream) -> Self {
        Self {
            local: Arc::new(DashMap::new()),
            bucket,
            events,
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub async fn get(&self, run_id: &str) -> Result<Arc<RunState>, Error> {
        if let Some(r) = self.local.get(run_id) {
            return Ok(r.clone());
        }
        if !valid_id(run_id) {
            return Err(Error::RunNotFound(run_id.to_string()));
        }
        match self.bucket.get(run_id).await {
            Ok(Some(bytes)) => serde_json::from_slice::<RunState>(&bytes)
                .map(Arc::new)
                .map_err(|e| {
                    Error::Bus(format!("snapshot of run {run_id} is unreadable: {e}").into())
                }),
            Ok(None) => self.just_submitted(run_id).await,
            Err(e) => Err(Error::Bus(e.into())),
        }
    }

    /// A run whose submission is on the bus but not folded yet: folding the
    /// submission alone (the fold is pure) gives exactly its first state.
    async fn just_submitted(&self, run_id: &str) -> Result<Arc<RunState>, Error> {
        let subject = baton_proto::kinds::EventKind::RunSubmitted.subject(run_id);
        let Ok(raw) = self.events.get_last_raw_message_by_subject(&subject).await else {
            return Err(Error::RunNotFound(run_id.to_string()));
        };
        let ev =
            baton_proto::codec::decode::<baton_proto::v1::Event>(&raw.payload).map_err(|e| {
                Error::Bus(format!("submission of run {run_id} is unreadable: {e}").into())
            })?;
        match ev.body {
            Some(baton_proto::v1::event::Body::RunSubmitted(sub)) => {
                let (st, _) = RunState::submitted(run_id, &sub, ev.time_ms)?;
                Ok(Arc::new(st))
            }
            _ => Err(Error::RunNotFound(run_id.to_string())),
        }
    }

    /// Newest first, at most `limit`.
    pub async fn list(&self, limit: usize) -> Result<Vec<Arc<RunState>>, Error> {
        let mut ids: Vec<String> = Vec::new();
        match self.bucket.keys().await {
            Ok(mut keys) => {
                while let Some(k) = keys.next().await {
                    if let Ok(k) = k {
                        ids.push(k);
                    }
                }
            }
            Err(e) => return Err(Error::Bus(e.into())),
        }
        for r in self.local.iter() {
            ids.push(r.key().clone());
        }
        // Run ids start with the creation time in hex, so they sort by age.
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        let mut out = Vec::new();
        for id in ids.into_iter().take(limit) {
            if let Ok(r) = self.get(&id).await {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Run ids are what `new_run_id` makes, tokens of the bus
/// ([`baton_proto::subjects::valid_token`]); anything else cannot be a key.
pub fn valid_id(id: &str) -> bool {
    baton_proto::subjects::valid_token(id)
}

/// A new run id: creation time in milliseconds then randomness, hex, so that
/// ids sort by age and are valid subject tokens.
pub fn new_run_id() -> String {
    let ms = baton_proto::codec::now_ms() as u64;
    let r: u32 = rand::random();
    format!("{ms:011x}{r:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_tokens() {
        for _ in 0..100 {
            let id = new_run_id();
            assert!(valid_id(&id), "{id}");
        }
        for bad in ["", "a.b", "r1.>", "*", "R1", &"a".repeat(64)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
