//! Carrying out the fold's commands, and writing snapshots fenced by their
//! revision: a coordinator whose run was taken over fails its next write and
//! drops the run, instead of overwriting the new owner's state.
//!
//! A snapshot too big for one NATS message is split (see
//! [`crate::state_store::snapshot`]); one that still cannot be written is
//! an error, logged with the run, its size and what to do, and counted
//! ([`crate::state_store::RunStore::snapshots_not_written`]), never skipped quietly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use futures::future::join_all;

use super::{Engine, Owned};
use crate::run::{Command, RunState};
use crate::state_store::snapshot::NotEncoded;

/// How stale a running run's snapshot may get while events keep coming.
pub(super) const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(crate) struct Snapshots {
    last: HashMap<String, Instant>,
    pub pending: HashSet<String>,
    /// The revision of each run's snapshot as this coordinator last wrote or
    /// read it; `None` in the map means "not written yet" (create).
    pub rev: HashMap<String, Option<u64>>,
    /// Runs whose last snapshot write failed: when that was last logged,
    /// and the failures since the last success.
    failing: HashMap<String, (Instant, u64)>,
}

impl Snapshots {
    fn due(&self, id: &str, now: Instant) -> bool {
        self.last
            .get(id)
            .is_none_or(|t| now.duration_since(*t) >= SNAPSHOT_EVERY)
    }
    pub fn forget(&mut self, id: &str) {
        self.last.remove(id);
        self.pending.remove(id);
        self.rev.remove(id);
        self.failing.remove(id);
    }
}

enum Written {
    Rev(u64),
    /// Someone else wrote the run since: it is theirs now.
    Fenced,
    /// Not written: why, the snapshot's size, and whether trying again may help.
    Failed {
        why: String,
        bytes: usize,
        again: bool,
    },
}

/// Room left in a NATS message for the subject and headers of a KV write.
const HEADROOM: usize = 16 * 1024;

/// How often a run whose snapshots keep failing is logged again.
const LOG_AGAIN: Duration = Duration::from_secs(30);

/// Tries of an ended run's last snapshot (it is forgotten right after).
const LAST_TRIES: u32 = 3;

impl Engine {
    /// Publish commands and write snapshots concurrently, then announce the
    /// runs that finished, so that a watcher who sees `finished` reads the final state.
    pub(super) async fn execute(
        &self,
        own: &mut Owned,
        commands: Vec<(String, Command)>,
        dirty: &[String],
    ) {
        // Runs whose phase or end changed are written before that news goes
        // out; the rest at most every SNAPSHOT_EVERY, so that a long run is not
        // re-serialised on every event.
        let urgent: HashSet<&str> = commands
            .iter()
            .filter(|(_, c)| matches!(c, Command::Emit { .. }))
            .map(|(r, _)| r.as_str())
            .collect();
        let now = Instant::now();
        let mut write_now = Vec::new();
        for id in dirty {
            if urgent.contains(id.as_str()) || own.snaps.due(id, now) {
                own.snaps.pending.remove(id);
                write_now.push(id.clone());
            } else {
                own.snaps.pending.insert(id.clone());
            }
        }
        let mut finishes = Vec::new();
        let mut publishes = Vec::new();
        for (run_id, cmd) in commands {
            let tp = own
                .runs
                .get(&run_id)
                .map(|r| r.traceparent.clone())
                .unwrap_or_default();
            match cmd {
                Command::Dispatch(d) => {
                    let id = subjects::msg_id::dispatch(&d.run_id, &d.task_id, d.attempt);
                    let subject = subjects::task(&d.role, &d.run_id, &d.task_id);
                    publishes.push(self.publish(subject, id, codec::encode(&d), tp));
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
                    let subject = codec::event_subject(&run_id, &body);
                    let ev = codec::event_now(&run_id, body);
                    if let Some(Body::Incident(i)) = &ev.body {
                        // The URL stays out of the event (it may carry a
                        // token, and viewers read events): the plan has it.
                        let webhook = own
                            .runs
                            .get(&run_id)
                            .and_then(|st| st.plan.incident_webhook.clone())
                            .unwrap_or_default();
                        crate::incident::deliver(
                            self.js.client(),
                            v1::Incident {
                                webhook,
                                ..i.clone()
                            },
                        );
                    }
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
                    let id = subjects::msg_id::timer(&run_id, &task_id, attempt);
                    let fired = v1::TimerFired {
                        task_id,
                        attempt,
                        ..Default::default()
                    };
                    self.start_timer(run_id, id, fired, at_ms, tp)
                }
                Command::StartStageTimer {
                    phase_id,
                    round,
                    at_ms,
                } => {
                    // The due time is part of the id: a window that is still
                    // closed when asked again sets a new timer for the same round.
                    let id = subjects::msg_id::stage_timer(&run_id, &phase_id, round, at_ms);
                    let fired = v1::TimerFired {
                        phase_id,
                        round,
                        due_ms: at_ms,
                        ..Default::default()
                    };
                    self.start_timer(run_id, id, fired, at_ms, tp)
                }
            }
        }
        let (_, results) =
            futures::join!(self.write_snapshots(own, &write_now), join_all(publishes));
        for r in results {
            if let Err(e) = r {
                tracing::error!(error = %e, "command could not be published");
            }
        }
        for (subject, msg_id, ev, tp) in finishes {
            if let Some(st) = own.runs.get(&ev.run_id) {
                crate::telemetry::run_finished(st);
            }
            if let Err(e) = bus::publish_acked(&self.js, subject, &msg_id, &ev, &tp).await {
                tracing::error!(error = %e, "run end could not be announced");
                continue;
            }
            // After the announcement, so the evidence's events include the end.
            if let (Some(sealer), Some(st)) = (&self.evidence, own.runs.get(&ev.run_id)) {
                sealer.spawn(st.clone());
            }
        }
    }

    pub(super) fn start_timer(
        &self,
        run_id: String,
        id: String,
        fired: v1::TimerFired,
        at_ms: i64,
        tp: String,
    ) {
        let js = self.js.clone();
        self.timers.spawn(async move {
            let wait = (at_ms - codec::now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let body = Body::TimerFired(fired);
            if let Err(e) = bus::publish_event(&js, &run_id, &id, body, &tp).await {
                tracing::error!(run = %run_id, error = %e, "retry timer could not be published");
            }
        });
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

    /// Write these runs' snapshots; a run whose write is fenced is dropped.
    pub(super) async fn write_snapshots(&self, own: &mut Owned, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let now = Instant::now();
        for id in ids {
            own.snaps.last.insert(id.clone(), now);
        }
        let writes: Vec<_> = ids
            .iter()
            .filter_map(|id| own.runs.get(id))
            .map(|st| {
                let rev = own.snaps.rev.get(&st.run_id).copied().flatten();
                async move { (st.run_id.clone(), self.snapshot(st, rev).await) }
            })
            .collect();
        let mut retry = Vec::new();
        for (id, w) in join_all(writes).await {
            match w {
                Written::Rev(r) => {
                    own.snaps.rev.insert(id.clone(), Some(r));
                    if let Some((_, n)) = own.snaps.failing.remove(&id) {
                        tracing::info!(run = %id, failures = n, "snapshot written again");
                    }
                }
                Written::Fenced => {
                    tracing::warn!(run = %id, "snapshot fenced: another coordinator owns the run now; dropped");
                    self.leases.forget(&id);
                    own.drop_run(&self.store, &id);
                }
                Written::Failed { why, bytes, again } => {
                    self.not_written(own, &id, &why, bytes);
                    if again {
                        retry.push(id);
                    }
                }
            }
        }
        // An ended run is forgotten once this returns: its last snapshot
        // is tried again now (the fold waits, up to 0.6 s, only when the
        // bus refused a write). A running one waits for the next tick.
        for id in retry {
            let ended = own.runs.get(&id).is_some_and(|st| st.status.is_terminal());
            if !ended {
                own.snaps.pending.insert(id);
                continue;
            }
            for attempt in 1..LAST_TRIES {
                tokio::time::sleep(SNAPSHOT_EVERY * 2u32.pow(attempt)).await;
                let Some(st) = own.runs.get(&id) else { break };
                let rev = own.snaps.rev.get(&id).copied().flatten();
                match self.snapshot(st, rev).await {
                    Written::Rev(r) => {
                        own.snaps.rev.insert(id.clone(), Some(r));
                        own.snaps.failing.remove(&id);
                        tracing::info!(run = %id, "the ended run's snapshot is written after all");
                        break;
                    }
                    Written::Fenced => {
                        self.leases.forget(&id);
                        own.drop_run(&self.store, &id);
                        break;
                    }
                    Written::Failed { why, bytes, again } => {
                        self.not_written(own, &id, &why, bytes);
                        if !again {
                            break;
                        }
                    }
                }
            }
        }
        self.store.changed.notify_waiters();
    }

    /// A snapshot not written: counted, and logged as an error (once per
    /// [`LOG_AGAIN`] for a run whose writes keep failing).
    fn not_written(&self, own: &mut Owned, id: &str, why: &str, bytes: usize) {
        self.store.count_not_written();
        let now = Instant::now();
        let (logged, n) = own.snaps.failing.entry(id.to_string()).or_insert((now, 0));
        *n += 1;
        if *n > 1 && now.duration_since(*logged) < LOG_AGAIN {
            return;
        }
        *logged = now;
        let ended = own
            .runs
            .get(id)
            .map(|st| st.status.as_str())
            .unwrap_or("unknown");
        tracing::error!(
            run = %id,
            status = ended,
            bytes,
            limit = self.snapshot_limit(),
            failures = *n,
            not_written_total = self.store.snapshots_not_written(),
            "snapshot NOT written: {why} — other coordinators answer for the run from its last \
             snapshot written (or its submission), and a takeover or restart replays its \
             events from there. See docs/operations.md, \"A snapshot is not written\""
        );
    }

    /// The largest snapshot one NATS message carries into the `runs` bucket:
    /// the server's `max_payload` (or the bucket's `max_value_size`, if
    /// smaller), less room for the subject and headers.
    pub(super) fn snapshot_limit(&self) -> usize {
        let payload = match self.js.client().server_info().max_payload {
            0 => 1 << 20,
            n => n,
        };
        let bucket = self
            .store
            .bucket
            .stream
            .cached_info()
            .config
            .max_message_size;
        let cap = match usize::try_from(bucket) {
            Ok(b) if b > 0 => payload.min(b),
            _ => payload,
        };
        cap.saturating_sub(HEADROOM)
    }

    async fn snapshot(&self, st: &RunState, rev: Option<u64>) -> Written {
        self.store
            .local
            .insert(st.run_id.clone(), Arc::new(st.clone()));
        let encoded = match crate::state_store::snapshot::encode(st, self.snapshot_limit()) {
            Ok(e) => e,
            Err(e) => {
                let bytes = match &e {
                    NotEncoded::TooLarge { head, .. } => *head,
                    NotEncoded::Json(_) => 0,
                };
                return Written::Failed {
                    why: e.to_string(),
                    bytes,
                    again: false,
                };
            }
        };
        if encoded.parts > 0 {
            tracing::debug!(
                run = %st.run_id,
                whole = encoded.whole,
                head = encoded.bytes.len(),
                parts = encoded.parts,
                "snapshot split: its plan, reports and outputs stay in the run's events"
            );
        }
        let len = encoded.bytes.len();
        let bytes = bytes::Bytes::from(encoded.bytes);
        let r = match rev {
            Some(rev) => self
                .store
                .bucket
                .update(&st.run_id, bytes, rev)
                .await
                .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.into())),
            None => self
                .store
                .bucket
                .create(&st.run_id, bytes)
                .await
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.into())),
        };
        match r {
            Ok(rev) => Written::Rev(rev),
            Err((true, _)) => Written::Fenced,
            Err((false, e)) => {
                let e: async_nats::Error = e;
                Written::Failed {
                    why: format!("the runs bucket refused it: {e}"),
                    bytes: len,
                    again: true,
                }
            }
        }
    }
}
