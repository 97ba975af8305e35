//! The fold loop: read the EVENTS stream in order, fold each event into its
//! run, carry out the commands, write snapshots, then acknowledge.
//!
//! Events are taken in chunks so that under load one round of publishes and
//! snapshot writes serves many events; with no load a chunk is one event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, AckKind};
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use futures::{future::join_all, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::run::{Command, RunState};
use crate::state_store::RunStore;
use crate::telemetry;
use crate::Error;

pub struct Engine {
    pub js: jetstream::Context,
    pub topo: baton_proto::topology::Topology,
    pub store: RunStore,
    pub timers: TaskTracker,
}

impl Engine {
    pub async fn run(self, cancel: CancellationToken) -> Result<(), Error> {
        let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = self
            .topo
            .events
            .get_or_create_consumer(
                subjects::COORDINATOR_CONSUMER,
                pull::Config {
                    durable_name: Some(subjects::COORDINATOR_CONSUMER.into()),
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::Bus(e.into()))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(1000)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| Error::Bus(e.into()))?;
        let mut chunks = messages.ready_chunks(1000);
        let mut runs: HashMap<String, RunState> = HashMap::new();
        let mut snaps = Snapshots::default();
        self.recover(&mut runs, &mut snaps).await?;
        let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let due: Vec<String> = snaps.pending.drain().collect();
                    self.write_snapshots(&runs, &due, &mut snaps).await;
                    continue;
                }
                c = chunks.next() => match c { Some(c) => c, None => break },
            };
            let mut commands: Vec<(String, Command)> = Vec::new();
            let mut dirty: Vec<String> = Vec::new();
            let mut last = None;
            for m in chunk {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream hiccup");
                        continue;
                    }
                };
                let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                match codec::decode::<v1::Event>(&m.payload) {
                    Ok(ev) => self.fold(&mut runs, ev, seq, &mut commands, &mut dirty),
                    // Bad input never stops the loop: log it and move on.
                    Err(e) => {
                        tracing::error!(subject = %m.subject, error = %e, "undecodable event skipped")
                    }
                }
                last = Some(m);
            }
            dirty.sort_unstable();
            dirty.dedup();
            self.execute(&runs, commands, &dirty, &mut snaps).await;
            if let Some(m) = last {
                // AckPolicy::All: this acknowledges the whole chunk.
                if let Err(e) = m.ack_with(AckKind::Ack).await {
                    tracing::warn!(error = %e, "ack of folded events failed; they will be redelivered and ignored");
                }
            }
            // Finished runs live on in the bucket (written above); keep memory bounded.
            runs.retain(|id, r| {
                let keep = !r.status.is_terminal();
                if !keep {
                    self.store.local.remove(id);
                    snaps.forget(id);
                }
                keep
            });
        }
        Ok(())
    }

    /// Pick up the runs a previous coordinator left running: each from its
    /// snapshot, then the events after the snapshot's sequence (acknowledged
    /// events never come back through the durable consumer), then the retry
    /// timers its state says are due. Commands replay publishes carry the same
    /// message ids, so the server drops what was already sent.
    async fn recover(
        &self,
        runs: &mut HashMap<String, RunState>,
        snaps: &mut Snapshots,
    ) -> Result<(), Error> {
        let mut keys = match self.store.bucket.keys().await {
            Ok(k) => k,
            Err(e) => return Err(Error::Bus(e.into())),
        };
        let mut ids = Vec::new();
        while let Some(k) = keys.next().await {
            if let Ok(k) = k {
                ids.push(k);
            }
        }
        let mut commands = Vec::new();
        let mut dirty = Vec::new();
        for id in ids {
            let Ok(Some(bytes)) = self.store.bucket.get(&id).await else {
                continue;
            };
            let Ok(st) = serde_json::from_slice::<RunState>(&bytes) else {
                tracing::error!(run = %id, "unreadable snapshot; run not recovered");
                continue;
            };
            if st.status.is_terminal() {
                continue;
            }
            let from = st.last_seq + 1;
            runs.insert(id.clone(), st);
            let consumer = self
                .topo
                .events
                .create_consumer(OrderedConfig {
                    filter_subject: subjects::run_events(&id),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: from,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::Bus(e.into()))?;
            let mut pending = consumer.cached_info().num_pending;
            let mut msgs = consumer
                .messages()
                .await
                .map_err(|e| Error::Bus(e.into()))?;
            let mut replayed = 0u64;
            while pending > 0 {
                let Ok(Some(Ok(m))) =
                    tokio::time::timeout(Duration::from_secs(10), msgs.next()).await
                else {
                    break;
                };
                pending -= 1;
                let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                if let Ok(ev) = codec::decode::<v1::Event>(&m.payload) {
                    self.fold(runs, ev, seq, &mut commands, &mut dirty);
                    replayed += 1;
                }
            }
            let st = &runs[&id];
            for t in st
                .tasks
                .values()
                .filter(|t| t.status == crate::run::TaskStatus::RetryWait)
            {
                commands.push((
                    id.clone(),
                    Command::StartTimer {
                        task_id: t.id.clone(),
                        attempt: t.attempt,
                        at_ms: t.retry_at_ms,
                    },
                ));
            }
            tracing::info!(run = %id, replayed, "run recovered");
            dirty.push(id);
        }
        dirty.sort_unstable();
        dirty.dedup();
        self.execute(runs, commands, &dirty, snaps).await;
        Ok(())
    }

    fn fold(
        &self,
        runs: &mut HashMap<String, RunState>,
        ev: v1::Event,
        seq: u64,
        commands: &mut Vec<(String, Command)>,
        dirty: &mut Vec<String>,
    ) {
        let run_id = ev.run_id.clone();
        if let Some(Body::RunSubmitted(sub)) = &ev.body {
            if runs.contains_key(&run_id) || self.store.local.contains_key(&run_id) {
                return; // a redelivered submission
            }
            match RunState::submitted(&run_id, sub, ev.time_ms) {
                Ok((mut st, cmds)) => {
                    st.last_seq = seq;
                    telemetry::run_started(&st);
                    commands.extend(cmds.into_iter().map(|c| (run_id.clone(), c)));
                    runs.insert(run_id.clone(), st);
                    dirty.push(run_id);
                }
                Err(e) => {
                    tracing::error!(run = %run_id, error = %e, "submitted plan no longer loads; run ignored")
                }
            }
            return;
        }
        let Some(st) = runs.get_mut(&run_id) else {
            return; // a run this coordinator does not fold (finished, or unknown)
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

    /// Publish commands and write snapshots concurrently, then announce the
    /// runs that finished, so that a watcher who sees `finished` reads the final state.
    async fn execute(
        &self,
        runs: &HashMap<String, RunState>,
        commands: Vec<(String, Command)>,
        dirty: &[String],
        snaps: &mut Snapshots,
    ) {
        // Runs whose phase or end changed are written before that news goes
        // out; the rest at most every SNAPSHOT_EVERY, so that a long run is not
        // re-serialised on every event.
        let urgent: std::collections::HashSet<String> = commands
            .iter()
            .filter(|(_, c)| matches!(c, Command::Emit { .. }))
            .map(|(r, _)| r.clone())
            .collect();
        let now = std::time::Instant::now();
        let mut write_now = Vec::new();
        for id in dirty {
            if urgent.contains(id) || snaps.due(id, now) {
                snaps.pending.remove(id);
                write_now.push(id.clone());
            } else {
                snaps.pending.insert(id.clone());
            }
        }
        let mut finishes = Vec::new();
        let mut publishes = Vec::new();
        for (run_id, cmd) in commands {
            let tp = runs
                .get(&run_id)
                .map(|r| r.traceparent.clone())
                .unwrap_or_default();
            match cmd {
                Command::Dispatch(d) => {
                    let id = subjects::msg_id::dispatch(&d.run_id, &d.task_id, d.attempt);
                    publishes.push(self.publish(
                        subjects::task(&d.role),
                        id,
                        codec::encode(&d),
                        tp,
                    ));
                }
                Command::AskGate { kind, request } => {
                    let id = subjects::msg_id::gate_request(
                        &request.run_id,
                        &request.phase_id,
                        request.gate_index,
                        request.round,
                    );
                    publishes.push(self.publish(
                        subjects::gate(&kind),
                        id,
                        codec::encode(&request),
                        tp,
                    ));
                }
                Command::Emit { msg_id, body } => {
                    let subject = subjects::event(&run_id, codec::event_kind(&body));
                    let ev = codec::event_now(&run_id, body);
                    if matches!(ev.body, Some(Body::RunFinished(_))) {
                        finishes.push((subject, msg_id, ev, tp));
                    } else {
                        publishes.push(self.publish(subject, msg_id, codec::encode(&ev), tp));
                    }
                }
                Command::StartTimer {
                    task_id,
                    attempt,
                    at_ms,
                } => {
                    let js = self.js.clone();
                    self.timers.spawn(async move {
                        let wait = (at_ms - codec::now_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        let id = subjects::msg_id::timer(&run_id, &task_id, attempt);
                        let body = Body::TimerFired(v1::TimerFired { task_id, attempt });
                        if let Err(e) = bus::publish_event(&js, &run_id, &id, body, &tp).await {
                            tracing::error!(run = %run_id, error = %e, "retry timer could not be published");
                        }
                    });
                }
            }
        }
        let (_, results) = futures::join!(
            self.write_snapshots(runs, &write_now, snaps),
            join_all(publishes)
        );
        for r in results {
            if let Err(e) = r {
                tracing::error!(error = %e, "command could not be published");
            }
        }
        for (subject, msg_id, ev, tp) in finishes {
            if let Some(st) = runs.get(&ev.run_id) {
                telemetry::run_finished(st);
            }
            if let Err(e) = bus::publish_acked(&self.js, subject, &msg_id, &ev, &tp).await {
                tracing::error!(error = %e, "run end could not be announced");
            }
        }
    }

    async fn publish(
        &self,
        subject: String,
        msg_id: String,
        payload: bytes::Bytes,
        tp: String,
    ) -> Result<(), async_nats::Error> {
        bus::publish_bytes_acked(&self.js, subject, &msg_id, payload, &tp).await
    }

    async fn write_snapshots(
        &self,
        runs: &HashMap<String, RunState>,
        ids: &[String],
        snaps: &mut Snapshots,
    ) {
        let now = std::time::Instant::now();
        for id in ids {
            snaps.last.insert(id.clone(), now);
        }
        join_all(
            ids.iter()
                .filter_map(|id| runs.get(id))
                .map(|st| self.snapshot(st)),
        )
        .await;
        if !ids.is_empty() {
            self.store.changed.notify_waiters();
        }
    }

    async fn snapshot(&self, st: &RunState) {
        let arc = Arc::new(st.clone());
        self.store.local.insert(st.run_id.clone(), arc);
        match serde_json::to_vec(st) {
            Ok(bytes) => {
                if let Err(e) = self.store.bucket.put(&st.run_id, bytes.into()).await {
                    tracing::warn!(run = %st.run_id, error = %e, "snapshot not written");
                }
            }
            Err(e) => tracing::error!(run = %st.run_id, error = %e, "snapshot not serialisable"),
        }
    }
}

/// How stale a running run's snapshot may get while events keep coming.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Snapshots {
    last: HashMap<String, std::time::Instant>,
    pending: std::collections::HashSet<String>,
}

impl Snapshots {
    fn due(&self, id: &str, now: std::time::Instant) -> bool {
        self.last
            .get(id)
            .is_none_or(|t| now.duration_since(*t) >= SNAPSHOT_EVERY)
    }
    fn forget(&mut self, id: &str) {
        self.last.remove(id);
        self.pending.remove(id);
    }
}
