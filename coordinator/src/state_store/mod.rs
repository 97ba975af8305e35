//! Where admin calls read runs from: this coordinator's folded state first,
//! then the `runs` bucket, so that any coordinator answers about any run.
//!
//! [`snapshot`] is how a state is written to the bucket and read back:
//! whole, or split when it is too big for one NATS message (its plan,
//! reports and outputs are then read back from the run's own events).

pub mod snapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::kv::{self, Operation};
use baton_proto::kinds::EventKind;
use baton_proto::v1::{self, event::Body};
use dashmap::DashMap;
use futures::StreamExt;

use crate::run::RunState;
use crate::Error;
use snapshot::{Head, Source, Split, Unresolved};

/// A cheap, cloneable handle to the runs this process knows.
#[derive(Clone)]
pub struct RunStore {
    pub local: Arc<DashMap<String, Arc<RunState>>>,
    pub bucket: kv::Store,
    /// For runs accepted but not folded yet: their submission is their state.
    /// Also where a split snapshot's parts are read back from.
    pub events: async_nats::jetstream::stream::Stream,
    /// Woken whenever the fold changes a run.
    pub changed: Arc<tokio::sync::Notify>,
    /// Snapshot writes that failed since this process started.
    unwritten: Arc<AtomicU64>,
    /// Split snapshots put back together, by run, with their revision: a
    /// revision never changes, and reading the parts back costs a scan of
    /// the run's results.
    resolved: Arc<DashMap<String, (u64, Arc<RunState>)>>,
}

/// How many put-together split snapshots [`RunStore`] keeps.
const RESOLVED_KEPT: usize = 64;

/// How long a read of a run's events may stall before it is given up.
const READ_WAIT: Duration = Duration::from_secs(10);

impl RunStore {
    pub fn new(bucket: kv::Store, events: async_nats::jetstream::stream::Stream) -> Self {
        Self {
            local: Arc::new(DashMap::new()),
            bucket,
            events,
            changed: Arc::new(tokio::sync::Notify::new()),
            unwritten: Arc::new(AtomicU64::new(0)),
            resolved: Arc::new(DashMap::new()),
        }
    }

    /// Snapshot writes that failed (too large, or refused by the bus) since
    /// this process started: each one logged as an error.
    pub fn snapshots_not_written(&self) -> u64 {
        self.unwritten.load(Ordering::Relaxed)
    }

    pub(crate) fn count_not_written(&self) {
        self.unwritten.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn get(&self, run_id: &str) -> Result<Arc<RunState>, Error> {
        if let Some(r) = self.local.get(run_id) {
            return Ok(r.clone());
        }
        if !valid_id(run_id) {
            return Err(Error::RunNotFound(run_id.to_string()));
        }
        match self.bucket.entry(run_id).await {
            Ok(Some(e)) if e.operation == Operation::Put => {
                self.decode(run_id, e.revision, &e.value).await
            }
            Ok(_) => self.just_submitted(run_id).await,
            Err(e) => Err(Error::Bus(e.into())),
        }
    }

    /// A snapshot read from the bucket, at `revision`, as a state.
    async fn decode(
        &self,
        run_id: &str,
        revision: u64,
        bytes: &[u8],
    ) -> Result<Arc<RunState>, Error> {
        let unreadable =
            |e: String| Error::Bus(format!("snapshot of run {run_id} is unreadable: {e}").into());
        let split = match snapshot::read(bytes).map_err(|e| unreadable(e.to_string()))? {
            Head::Whole(st) => return Ok(Arc::new(*st)),
            Head::Split(split) => split,
        };
        if let Some(hit) = self.resolved.get(run_id) {
            if hit.0 == revision {
                return Ok(hit.1.clone());
            }
        }
        let ended = split.status().is_terminal();
        let st = match self.put_together(run_id, split).await {
            Ok(st) => Arc::new(st),
            // Its events were purged (docs/operations.md, "a full disk"):
            // an ended run is still answered, without its plan, reports
            // and outputs.
            Err(Unresolved::Missing(e)) if ended => {
                tracing::warn!(
                    run = %run_id,
                    error = %e,
                    "the ended run's plan, reports and outputs are no longer in its events; \
                     answering with its status, times and errors only"
                );
                let Ok(Head::Split(split)) = snapshot::read(bytes) else {
                    return Err(unreadable(e.to_string()));
                };
                return split
                    .without_parts()
                    .map(Arc::new)
                    .map_err(|e| unreadable(e.to_string()));
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        if self.resolved.len() >= RESOLVED_KEPT {
            self.resolved.clear();
        }
        self.resolved
            .insert(run_id.to_string(), (revision, st.clone()));
        Ok(st)
    }

    /// The state a snapshot holds, a split one's parts read back from the
    /// run's events.
    pub(crate) async fn resolve(&self, run_id: &str, head: Head) -> Result<RunState, Unresolved> {
        match head {
            Head::Whole(st) => Ok(*st),
            Head::Split(split) => self.put_together(run_id, split).await,
        }
    }

    async fn put_together(&self, run_id: &str, split: Split) -> Result<RunState, Unresolved> {
        let submitted = if split.needs(Source::Submitted) {
            match self.submission(run_id).await {
                Ok(Some(st)) => Some(st),
                Ok(None) => {
                    return Err(Unresolved::Missing(
                        "the run's submission is not on the stream".into(),
                    ))
                }
                Err(Error::Bus(e)) => return Err(Unresolved::Bus(e.to_string())),
                // The submission does not decode, or its plan no longer
                // loads: asking again changes nothing.
                Err(e) => return Err(Unresolved::Missing(e.to_string())),
            }
        } else {
            None
        };
        let finished = if split.needs(Source::TaskFinished) {
            self.finished_values(run_id, split.wanted())
                .await
                .map_err(|e| Unresolved::Bus(e.to_string()))?
        } else {
            HashMap::new()
        };
        split.restore(submitted.as_ref(), &finished)
    }

    /// The values of the run's `task_finished` events (reports and their
    /// outputs) whose hash is `wanted`, by hash.
    async fn finished_values(
        &self,
        run_id: &str,
        mut wanted: std::collections::HashSet<String>,
    ) -> Result<HashMap<String, serde_json::Value>, async_nats::Error> {
        let consumer = self
            .events
            .create_consumer(OrderedConfig {
                filter_subject: EventKind::TaskFinished.subject(run_id),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut pending = consumer.cached_info().num_pending;
        let mut msgs = consumer.messages().await?;
        let mut found = HashMap::new();
        while pending > 0 && !wanted.is_empty() {
            let m = match tokio::time::timeout(READ_WAIT, msgs.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(e.into()),
                _ => return Err(format!("reading run {run_id}'s results stalled").into()),
            };
            pending -= 1;
            let Ok(ev) = baton_proto::codec::decode_event(&m.subject, &m.payload) else {
                continue;
            };
            if let Some(Body::TaskFinished(f)) = &ev.body {
                for v in snapshot::finished_values(f) {
                    let sha = snapshot::sha256_of(&v);
                    if wanted.remove(&sha) {
                        found.insert(sha, v);
                    }
                }
            }
        }
        Ok(found)
    }

    /// A run whose submission is on the bus but not folded yet: folding the
    /// submission alone (the fold is pure) gives exactly its first state.
    async fn just_submitted(&self, run_id: &str) -> Result<Arc<RunState>, Error> {
        match self.submission(run_id).await? {
            Some(st) => Ok(Arc::new(st)),
            None => Err(Error::RunNotFound(run_id.to_string())),
        }
    }

    /// The state the run's submission alone folds to; `None` when the
    /// stream holds no submission of it.
    async fn submission(&self, run_id: &str) -> Result<Option<RunState>, Error> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
        let subject = EventKind::RunSubmitted.subject(run_id);
        let raw = match self.events.get_last_raw_message_by_subject(&subject).await {
            Ok(raw) => raw,
            Err(e) if matches!(e.kind(), Kind::NoMessageFound | Kind::InvalidSubject) => {
                return Ok(None)
            }
            Err(e) => return Err(Error::Bus(e.into())),
        };
        let ev = baton_proto::codec::decode::<v1::Event>(&raw.payload).map_err(|e| {
            Error::Bus(format!("submission of run {run_id} is unreadable: {e}").into())
        })?;
        match ev.body {
            Some(Body::RunSubmitted(sub)) => {
                let (st, _) = RunState::submitted(run_id, &sub, ev.time_ms)?;
                Ok(Some(st))
            }
            _ => Ok(None),
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
mod tests;
