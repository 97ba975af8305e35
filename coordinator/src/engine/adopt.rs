//! Taking a run over: its snapshot, then the events after the snapshot's
//! sequence, then whatever the previous owner may not have sent: a dispatch
//! not in the queue, a gate question unanswered, an announcement not on the
//! stream, a retry timer. Nothing already done is done again, however long
//! ago the previous owner died (message-id deduplication only covers two
//! minutes, so the stream and the queue are asked instead).

use std::collections::HashSet;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::kv::Operation;
use baton_proto::v1;
use baton_proto::{codec, subjects};
use futures::StreamExt;

use super::{Engine, Owned, REPLAY_WAIT};
use crate::run::{Command, PhaseStatus, RunState, TaskStatus};
use crate::state_store::snapshot::{self, Unresolved};

impl Engine {
    /// Fold a run whose lease this coordinator just took.
    pub(super) async fn adopt(&self, run: &str, own: &mut Owned) {
        let started = std::time::Instant::now();
        let (from, rev) = match self.store.bucket.entry(run).await {
            Ok(Some(e)) if e.operation == Operation::Put => match snapshot::read(&e.value) {
                // Its status is in the head, split or not: nothing to read back.
                Ok(head) if head.status().is_terminal() => {
                    self.leases.finish(run).await;
                    return;
                }
                Ok(head) => match self.store.resolve(run, head).await {
                    Ok(st) => {
                        let from = st.last_seq + 1;
                        own.runs.insert(run.to_string(), st);
                        (from, Some(e.revision))
                    }
                    Err(Unresolved::Bus(err)) => {
                        tracing::warn!(run, error = %err, "cannot read the snapshot's parts back from the run's events; not taken over");
                        self.leases.forget(run);
                        return;
                    }
                    Err(Unresolved::Missing(err)) => {
                        tracing::error!(run, error = %err, "the snapshot's parts are not in the run's events; rebuilding the run from its events");
                        (1, Some(e.revision))
                    }
                },
                Err(err) => {
                    tracing::error!(run, error = %err, "unreadable snapshot; rebuilding the run from its events");
                    (1, Some(e.revision))
                }
            },
            Ok(_) => (1, None),
            Err(e) => {
                // Let the lease lapse; a peer (or this coordinator) tries again.
                tracing::warn!(run, error = %e, "cannot read the run's snapshot; not taken over");
                self.leases.forget(run);
                return;
            }
        };
        own.snaps.rev.insert(run.to_string(), rev);
        let head = match self.audit_head(run).await {
            Ok(h) => h,
            Err(e) => return self.abandon(own, run, &e, "cannot read the run's audit head"),
        };
        // Replay from the older of snapshot and audit head: the fold skips
        // what the snapshot holds, the audit what the chain holds.
        let from = from.min(head.event_seq() + 1);
        own.audit.adopt(run, head);
        let (owed, replayed) = match self.replay(run, from, own).await {
            Ok(r) => r,
            Err(e) => return self.abandon(own, run, &e, "cannot replay the run's events"),
        };
        let Some(st) = own.runs.get(run) else {
            // A lease without a submission: the submit failed after taking it.
            self.leases.finish(run).await;
            return;
        };
        let mut todo = owed;
        todo.extend(self.missing_work(st).await);
        let todo: Vec<(String, Command)> = todo.into_iter().map(|c| (run.to_string(), c)).collect();
        tracing::info!(
            run,
            replayed,
            resent = todo.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "run taken over"
        );
        // Written at once: the new snapshot revision fences the old owner out.
        self.execute(own, todo, &[run.to_string()]).await;
    }

    /// Give a half-adopted run up, `why`: forget what was folded of it and
    /// let its lease lapse, so a peer (or this coordinator) tries again.
    fn abandon(&self, own: &mut Owned, run: &str, error: &dyn std::fmt::Display, why: &str) {
        tracing::warn!(run, error = %error, "{why}; not taken over");
        own.drop_run(&self.store, run);
        self.leases.forget(run);
    }

    /// Fold the run's events from `from` to the end of the stream, and
    /// return the announcements it derived that the stream does not hold.
    async fn replay(
        &self,
        run: &str,
        from: u64,
        own: &mut Owned,
    ) -> Result<(Vec<Command>, u64), async_nats::Error> {
        let consumer = self
            .topo
            .events
            .create_consumer(OrderedConfig {
                filter_subject: subjects::run_events(run),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await?;
        let mut pending = consumer.cached_info().num_pending;
        let mut msgs = consumer.messages().await?;
        let mut published = HashSet::new();
        let mut replayed = 0u64;
        // Commands of the replay are dropped: what they asked for either
        // happened (and shows in the events) or is found missing below.
        let mut discard = Vec::new();
        let mut dirty = Vec::new();
        while pending > 0 {
            let m = match tokio::time::timeout(REPLAY_WAIT, msgs.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(e.into()),
                _ => return Err("replay stalled".into()),
            };
            pending -= 1;
            if let Some(id) = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            {
                published.insert(id.to_string());
            }
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            if let Some(ev) = self.bind(&m.subject, &m.payload) {
                self.fold(own, ev, seq, &mut discard, &mut dirty);
                replayed += 1;
            }
            discard.retain(|(_, c)| matches!(c, Command::Emit { .. }));
        }
        // Announcements are the one output the state does not show: keep
        // those of the replay the stream does not hold yet.
        let owed = discard
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| matches!(c, Command::Emit { msg_id, .. } if !published.contains(msg_id)))
            .collect();
        Ok((owed, replayed))
    }

    /// What the state says is under way but may never have been sent.
    async fn missing_work(&self, st: &RunState) -> Vec<Command> {
        let mut out = Vec::new();
        for t in st.tasks.values() {
            match t.status {
                TaskStatus::Queued => {
                    if self.queued(st, &t.id, &t.role, t.attempt).await {
                        continue;
                    }
                    if let Some(Ok(d)) = st.dispatch_message(&t.id, t.attempt, t.dispatched_ms) {
                        out.push(Command::Dispatch(d));
                    }
                }
                TaskStatus::RetryWait => out.push(Command::StartTimer {
                    task_id: t.id.clone(),
                    attempt: t.attempt,
                    at_ms: t.retry_at_ms,
                }),
                _ => {}
            }
        }
        if let Some(p) = st.phases.get(st.current) {
            // A canary hold, a closed window, an approval's expiry: their
            // timers died with the old owner.
            out.extend(st.stage_timers());
            if p.status == PhaseStatus::Gating {
                // Asking again is harmless: evaluation is pure, and the fold
                // takes one answer per gate and round.
                out.extend(st.gate_requests(st.current).into_iter().filter(|c| {
                    matches!(c, Command::AskGate { request, .. }
                        if p.gates.get(request.gate_index as usize).is_none_or(|g| g.verdict.is_none()))
                }));
            }
        }
        out
    }

    /// Whether this attempt's work message sits in the queue (taken or not:
    /// a message leaves the work queue only when its worker acknowledges it,
    /// after publishing the outcome).
    async fn queued(&self, st: &RunState, task: &str, role: &str, attempt: u32) -> bool {
        let subject = subjects::task(role, &st.run_id, task);
        match self
            .topo
            .tasks
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(raw) => {
                codec::decode::<v1::TaskDispatch>(&raw.payload).is_ok_and(|d| d.attempt == attempt)
            }
            Err(_) => false,
        }
    }
}
