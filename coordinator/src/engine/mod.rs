//! The fold loop: read every run's events in order, fold those of the runs
//! this coordinator holds the lease of, carry out the commands, and write
//! snapshots.
//!
//! # Layout
//! - this file: the loop, and folding one event.
//! - `execute`: publishing commands and writing fenced snapshots.
//! - `adopt`: taking a run over from a coordinator that is gone.
//! - `audit`: appending the runs' audit records, exactly once.
//! - [`refusals`]: events dropped because their subject or their claim does
//!   not bind them (see `baton_proto::codec::decode_event` and `run::claims`).
//!
//! Every coordinator reads the whole EVENTS stream through its own ordered
//! consumer and skips the runs it does not hold; nothing is acknowledged, so
//! a snapshot's `last_seq` is the only checkpoint. Events are taken in
//! chunks so that under load one round of publishes and snapshot writes
//! serves many events; with no load a chunk is one event.

mod adopt;
mod audit;
mod execute;
pub mod refusals;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::{self};
use baton_proto::kinds::EventKind;
use baton_proto::supervise::Supervisor;
use baton_proto::v1::{self, event::Body};
use baton_proto::{codec, subjects};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lease::{Change, Leases};
use crate::run::{Command, RunState};
use crate::state_store::RunStore;
use crate::telemetry;
use crate::Error;

pub struct Engine {
    pub js: jetstream::Context,
    pub topo: baton_proto::topology::Topology,
    pub store: RunStore,
    pub timers: TaskTracker,
    pub leases: Arc<Leases>,
    /// Signs ended runs' evidence; `None` without a key.
    pub evidence: Option<crate::evidence::Sealer>,
    pub refusals: refusals::Refusals,
}

/// Every run's events, from when [`Engine::subscribe`] was called.
pub struct Feed(async_nats::jetstream::consumer::pull::Ordered);

/// The runs this coordinator folds, and their snapshots' bookkeeping.
#[derive(Default)]
pub(crate) struct Owned {
    pub runs: HashMap<String, RunState>,
    pub snaps: execute::Snapshots,
    pub audit: audit::Chains,
}

impl Owned {
    fn drop_run(&mut self, store: &RunStore, run: &str) {
        self.runs.remove(run);
        store.local.remove(run);
        self.snaps.forget(run);
        self.audit.forget(run);
    }

    /// An ended run goes; its audit chain stays until the run's `finished`
    /// event (published after this) is on it.
    fn retire(&mut self, store: &RunStore, run: &str) {
        self.runs.remove(run);
        store.local.remove(run);
        self.snaps.forget(run);
        self.audit.close(run);
    }
}

impl Engine {
    /// Start reading every run's events from now on. Call it before anything
    /// can accept a run, so that no submission goes unseen.
    pub async fn subscribe(&self) -> Result<Feed, Error> {
        // Replays of adopted runs overlap this feed; `last_seq` drops what
        // was folded twice.
        let consumer = self
            .topo
            .events
            .create_consumer(OrderedConfig {
                filter_subject: subjects::EVENTS_ALL.into(),
                deliver_policy: DeliverPolicy::New,
                // Short pulls mean a 1 s idle heartbeat: a restarted server
                // is noticed (and the consumer recreated where it left off)
                // within seconds, not the default's 30.
                max_expires: FEED_PULL,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Bus(e.into()))?;
        consumer
            .messages()
            .await
            .map(Feed)
            .map_err(|e| Error::Bus(e.into()))
    }

    /// Two parts under one [`Supervisor`]: the lease loop (renew, watch,
    /// expire) and the fold loop (recover, then fold). Either ending stops
    /// the other, so a failed recovery, say, no longer leaves leases renewed
    /// for runs nobody folds. On the way out the fold loop writes the newest
    /// snapshots first, the lease loop stops after it, and only then are the
    /// leases given back: a peer takes the runs over at once and replays
    /// next to nothing.
    pub async fn run(self, feed: Feed, cancel: CancellationToken) -> Result<(), Error> {
        let (tx, changes) = mpsc::unbounded_channel();
        let leases = self.leases.clone();
        let mut parts = Supervisor::new("engine", &cancel);
        // Stopped by the fold loop, once it is done (however it ends).
        let lease_stop = CancellationToken::new();
        let (l, stop, engine_stop) = (leases.clone(), lease_stop.clone(), parts.token());
        parts.spawn("lease loop", async move {
            l.run(tx, stop).await;
            // Its end is the fold loop's doing: reported once the engine
            // stops, so that the fold loop's own end is what counts.
            engine_stop.cancelled().await;
            Ok(())
        });
        let stop = parts.token();
        parts.spawn("fold loop", async move {
            let _leases_after = lease_stop.drop_guard();
            self.fold_loop(feed, changes, stop).await
        });
        let r = parts.run().await;
        leases.release_all().await;
        r
    }

    async fn fold_loop(
        self,
        feed: Feed,
        mut changes: mpsc::UnboundedReceiver<Change>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let messages = feed.0;
        let mut chunks = messages.ready_chunks(1000);
        let mut own = Owned::default();
        // After the lease loop started: adopting a run takes its lease, which
        // must be renewed while the run's events are replayed.
        self.recover(&mut own).await?;
        let mut tick = tokio::time::interval(execute::SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => break,
                Some(change) = changes.recv() => {
                    match change {
                        Change::Lost(run) => own.drop_run(&self.store, &run),
                        Change::Orphaned { run, rev } => {
                            if !own.runs.contains_key(&run) && self.leases.take_over(&run, rev).await {
                                self.adopt(&run, &mut own).await;
                            }
                        }
                    }
                    continue;
                }
                _ = tick.tick() => {
                    let due: Vec<String> = own.snaps.pending.drain().collect();
                    self.write_snapshots(&mut own, &due).await;
                    self.flush_audit(&mut own.audit).await;
                    continue;
                }
                // The feed ended: the supervisor takes that for a failure.
                c = chunks.next() => match c { Some(c) => c, None => break },
            };
            let mut commands: Vec<(String, Command)> = Vec::new();
            let mut dirty: Vec<String> = Vec::new();
            for m in chunk {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream hiccup");
                        continue;
                    }
                };
                let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                // Bad input never stops the loop: it is counted and skipped.
                if let Some(ev) = self.bind(&m.subject, &m.payload) {
                    self.fold(&mut own, ev, seq, &mut commands, &mut dirty);
                }
            }
            dirty.sort_unstable();
            dirty.dedup();
            self.execute(&mut own, commands, &dirty).await;
            self.flush_audit(&mut own.audit).await;
            self.retire_finished(&mut own).await;
        }
        // The newest state before the leases go (see `run`).
        let all: Vec<String> = own.runs.keys().cloned().collect();
        self.flush_audit(&mut own.audit).await;
        self.write_snapshots(&mut own, &all).await;
        Ok(())
    }

    /// Finished runs live on in the bucket; their leases go, and so does
    /// their memory.
    async fn retire_finished(&self, own: &mut Owned) {
        let done: Vec<String> = own
            .runs
            .iter()
            .filter(|(_, r)| r.status.is_terminal())
            .map(|(id, _)| id.clone())
            .collect();
        if done.is_empty() {
            return;
        }
        futures::future::join_all(done.iter().map(|id| self.leases.finish(id))).await;
        for id in &done {
            own.retire(&self.store, id);
        }
    }

    /// At start: runs left unfinished whose lease nobody holds (their
    /// coordinator gave it back, or there was none) are taken now; runs whose
    /// lease is still held wait until it expires (see [`crate::lease`]).
    async fn recover(&self, own: &mut Owned) -> Result<(), Error> {
        let mut keys = self
            .store
            .bucket
            .keys()
            .await
            .map_err(|e| Error::Bus(e.into()))?;
        let mut ids = Vec::new();
        while let Some(k) = keys.next().await {
            if let Ok(k) = k {
                ids.push(k);
            }
        }
        for id in ids {
            let unfinished = match self.store.bucket.get(&id).await {
                Ok(Some(bytes)) => serde_json::from_slice::<RunState>(&bytes)
                    .map(|st| !st.status.is_terminal())
                    .unwrap_or(true),
                _ => false,
            };
            if unfinished && self.leases.take_over(&id, None).await {
                self.adopt(&id, own).await;
            }
        }
        Ok(())
    }

    /// The event on `subject`, if its body is what the subject says.
    fn bind(&self, subject: &str, payload: &[u8]) -> Option<v1::Event> {
        match codec::decode_event(subject, payload) {
            Ok(ev) => Some(ev),
            Err(refused) => {
                let kind = codec::decode::<v1::Event>(payload)
                    .ok()
                    .and_then(|e| e.body.as_ref().map(EventKind::of));
                self.refusals.record(subject, kind, &refused);
                None
            }
        }
    }

    fn fold(
        &self,
        own: &mut Owned,
        ev: v1::Event,
        seq: u64,
        commands: &mut Vec<(String, Command)>,
        dirty: &mut Vec<String>,
    ) {
        let run_id = ev.run_id.clone();
        let runs = &mut own.runs;
        if let Some(Body::RunSubmitted(sub)) = &ev.body {
            if runs.contains_key(&run_id) || !self.leases.holds(&run_id) {
                return; // a redelivered submission, or another coordinator's run
            }
            match RunState::submitted(&run_id, sub, ev.time_ms) {
                Ok((mut st, cmds)) => {
                    st.last_seq = seq;
                    telemetry::run_started(&st);
                    commands.extend(cmds.into_iter().map(|c| (run_id.clone(), c)));
                    runs.insert(run_id.clone(), st);
                    own.audit.start(&run_id);
                    own.audit.observe(&ev, seq, self.leases.me());
                    dirty.push(run_id);
                }
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "submitted plan no longer loads; run ignored")
                }
            }
            return;
        }
        // A result or a loss must match its attempt's claim. Asked before
        // the audit sees the event, so that a refused one is never audited;
        // claims never change, so the answer holds for a replayed event too.
        if let Some(st) = runs.get(&run_id) {
            if let Err(refused) = st.admit(&ev) {
                if seq > st.last_seq {
                    let kind = ev.body.as_ref().map(EventKind::of);
                    let name = kind.map_or("none", EventKind::as_str);
                    self.refusals
                        .record(&subjects::event(&run_id, name), kind, &refused);
                }
                return;
            }
        } else if matches!(ev.body, Some(Body::TaskFinished(_) | Body::TaskLost(_))) {
            // No claims to check against (another's run, or one that just
            // ended): a worker's report is not audited here.
            return;
        }
        // Before the state's own check: the audit may lag the snapshot
        // (adopt replays from the older of the two), and a run's `finished`
        // event comes back after the run was retired.
        own.audit.observe(&ev, seq, self.leases.me());
        let Some(st) = runs.get_mut(&run_id) else {
            return; // a run this coordinator does not fold (another's, or finished)
        };
        if seq != 0 && seq <= st.last_seq {
            return;
        }
        st.last_seq = seq;
        if let Some(body) = &ev.body {
            telemetry::event_folded(st, body, ev.time_ms);
        }
        let cmds = st.apply(&ev);
        if !cmds.is_empty()
            || !matches!(
                ev.body,
                Some(Body::PhaseChanged(_)) | Some(Body::RunFinished(_))
            )
        {
            dirty.push(run_id.clone());
        }
        commands.extend(cmds.into_iter().map(|c| (run_id.clone(), c)));
    }
}

/// The longest pull of the live feed; its idle heartbeat is half of it.
pub(crate) const FEED_PULL: Duration = Duration::from_secs(2);

/// How long a freshly started ordered consumer may take to deliver a replay.
const REPLAY_WAIT: Duration = Duration::from_secs(10);
