//! The audit writer: the run's owner appends one record per audited event
//! to `baton.audit.<run>`, in event order, exactly once.
//!
//! Exactly once under replay and takeover: a chain remembers the last
//! event it holds (read back from the stream when a run is adopted) and
//! skips events at or below it; every append names the subject sequence it
//! expects to follow (`Nats-Expected-Last-Subject-Sequence`) and carries
//! `Nats-Msg-Id: <run>:audit:<n>`, so a stale owner's append or a retried
//! one is refused, and the refusal makes the writer re-read the head.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use baton_proto::subjects;
use baton_proto::v1;
use futures::future::join_all;

use super::Engine;
use crate::audit::{self, Entry, Record, GENESIS};

/// Where a chain ends on the stream.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    next_n: u64,
    hash: String,
    /// Stream sequence of the last record; 0 when there is none.
    stream_seq: u64,
    event_seq: u64,
}

impl Head {
    pub fn event_seq(&self) -> u64 {
        self.event_seq
    }

    fn genesis() -> Head {
        Head {
            next_n: 0,
            hash: GENESIS.to_string(),
            stream_seq: 0,
            event_seq: 0,
        }
    }
}

struct Chain {
    head: Head,
    /// The newest event queued or written: replays overlap the live feed.
    observed: u64,
    pending: VecDeque<Entry>,
    /// Set when the run ended: the chain waits for its `finished` event.
    closing: Option<Instant>,
}

/// How long an ended run's chain waits for the run's `finished` event.
const CLOSING_WAIT: Duration = Duration::from_secs(30);
/// Re-reads of the head in one flush before the chain waits for the next.
const MAX_CONFLICTS: u32 = 5;

/// The chains of the runs this coordinator owns (and of those that just ended).
#[derive(Default)]
pub(crate) struct Chains(HashMap<String, Chain>);

impl Chains {
    /// A run submitted to this coordinator: its chain starts empty, unless
    /// it was adopted (and its head read) already.
    pub fn start(&mut self, run: &str) {
        self.adopt(run, Head::genesis());
    }

    pub fn adopt(&mut self, run: &str, head: Head) {
        self.0.entry(run.to_string()).or_insert(Chain {
            observed: head.event_seq,
            head,
            pending: VecDeque::new(),
            closing: None,
        });
    }

    /// Queue the record of an event of a tracked run, once.
    pub fn observe(&mut self, ev: &v1::Event, seq: u64, me: &str) {
        let Some(c) = self.0.get_mut(&ev.run_id) else {
            return;
        };
        if seq == 0 || seq <= c.observed {
            return;
        }
        c.observed = seq;
        if let Some(e) = audit::from_event(ev, seq, me) {
            c.pending.push_back(e);
        }
    }

    pub fn close(&mut self, run: &str) {
        if let Some(c) = self.0.get_mut(run) {
            c.closing.get_or_insert_with(Instant::now);
        }
    }

    pub fn forget(&mut self, run: &str) {
        self.0.remove(run);
    }
}

impl Engine {
    /// The chain's last record as the stream holds it.
    pub(super) async fn audit_head(&self, run: &str) -> Result<Head, async_nats::Error> {
        let raw = match self
            .topo
            .audit
            .get_last_raw_message_by_subject(&subjects::audit(run))
            .await
        {
            Ok(raw) => raw,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Head::genesis())
            }
            Err(e) => return Err(e.into()),
        };
        // A head that does not parse was tampered with: appending after it
        // would hide that, so the chain waits for a person.
        let r: Record = serde_json::from_slice(&raw.payload)
            .map_err(|e| format!("the last audit record of run {run} is unreadable: {e}"))?;
        Ok(Head {
            next_n: r.n + 1,
            hash: r.hash,
            stream_seq: raw.sequence,
            event_seq: r.event_seq,
        })
    }

    /// Append every chain's queued records; runs in parallel, each in order.
    pub(super) async fn flush_audit(&self, chains: &mut Chains) {
        let now = Instant::now();
        chains.0.retain(|run, c| {
            let stale = c
                .closing
                .is_some_and(|t| now.duration_since(t) > CLOSING_WAIT);
            if stale && !c.pending.is_empty() {
                tracing::error!(
                    run,
                    left = c.pending.len(),
                    "audit records not written before the run was let go"
                );
            }
            !stale
        });
        let busy: Vec<String> = chains
            .0
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(r, _)| r.clone())
            .collect();
        let work: Vec<(String, Chain)> = busy
            .into_iter()
            .filter_map(|r| chains.0.remove(&r).map(|c| (r, c)))
            .collect();
        let done = join_all(work.into_iter().map(|(run, mut c)| async move {
            let ended = self.append_pending(&run, &mut c).await;
            (run, c, ended)
        }))
        .await;
        for (run, c, ended) in done {
            if !(ended && c.closing.is_some()) {
                chains.0.insert(run, c);
            }
        }
    }

    /// Returns whether the run's `finished` record is on the chain.
    async fn append_pending(&self, run: &str, c: &mut Chain) -> bool {
        let subject = subjects::audit(run);
        let mut conflicts = 0;
        let mut ended = false;
        while let Some(e) = c.pending.front() {
            if e.event_seq <= c.head.event_seq {
                c.pending.pop_front();
                continue;
            }
            let rec = Record::seal(run, c.head.next_n, &c.head.hash, e);
            let msg = PublishMessage::build()
                .payload(rec.to_bytes().into())
                .message_id(subjects::msg_id::audit(run, rec.n))
                .expected_last_subject_sequence(c.head.stream_seq);
            let ack = match self.js.send_publish(subject.clone(), msg).await {
                Ok(f) => f.await,
                Err(e) => Err(e),
            };
            match ack {
                Ok(a) if !a.duplicate => {
                    ended |= rec.kind == "finished";
                    c.head = Head {
                        next_n: rec.n + 1,
                        hash: rec.hash,
                        stream_seq: a.sequence,
                        event_seq: rec.event_seq,
                    };
                    c.pending.pop_front();
                    continue;
                }
                Ok(_) => {}
                Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(err) => {
                    tracing::warn!(run, error = %err, "audit record not appended; trying again");
                    break;
                }
            }
            // Someone appended since: a previous owner, or an earlier try of
            // ours whose ack was lost. Continue after what the stream holds.
            conflicts += 1;
            match self.audit_head(run).await {
                Ok(h) if conflicts <= MAX_CONFLICTS => c.head = h,
                Ok(_) => break,
                Err(err) => {
                    tracing::error!(run, error = %err, "audit head unreadable; records held back");
                    break;
                }
            }
        }
        ended
    }
}
