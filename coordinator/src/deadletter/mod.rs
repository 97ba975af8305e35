//! The dead-letter path. When a consumer of a work queue gives up on a
//! message (delivered `max_deliver` times, never acknowledged), JetStream
//! says so in an advisory and leaves the message in the queue, where nobody
//! would ever look. One coordinator (a queue group) moves it to the
//! DEADLETTER stream, tells the run, and only then removes it from the queue:
//!
//! - a task message (TASKS, a role's consumer) fails its task:
//!   `TaskDeadLettered`, with where to find the message;
//! - a gate request (GATES, the evaluators' consumer) fails its gate: a
//!   `GateEvaluated` with verdict fail, in the evaluators' place and under
//!   their answer's message id, so that their late answer and this one never
//!   both count — unless the evaluators did answer (and only never
//!   acknowledged): then their answer stands.
//!
//! Advisories are core NATS: one sent while no coordinator listened (every
//! coordinator restarting, a partition) is lost, and its message would stay
//! in the queue for ever. So every coordinator also sweeps the queues, at
//! start and then every [`crate::Options::deadletter_sweep`], for messages a
//! consumer gave up on (`sweep.rs`).
//!
//! Moving is idempotent: the DEADLETTER copy and the run's event carry
//! message ids derived from the message, so two coordinators moving one
//! message at once (two sweeps, an advisory and a sweep) store one copy and
//! one event; a message already moved is gone from the queue and skipped.

use std::time::Duration;

use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use async_nats::jetstream::{self};
use baton_proto::kinds::EventKind;
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The default time between two sweeps: a message whose advisory was missed
/// waits at most this long (and [`SETTLE`]) to be moved.
pub const DEFAULT_SWEEP: Duration = Duration::from_secs(30);

/// A message a sweep finds spent is moved only if the next look, this much
/// later, finds it spent still: a message acknowledged in the meantime (its
/// removal from the queue trailing the acknowledgement) is gone by then.
const SETTLE: Duration = Duration::from_secs(1);

/// Messages one sweep moves at most (the rest wait for the next).
const MAX_PER_SWEEP: usize = 1000;

/// What the dead-letter path reads and writes.
#[derive(Clone)]
pub struct DeadLetters {
    pub js: jetstream::Context,
    pub tasks: Stream,
    pub gates: Stream,
    /// Where the run's events are: a gate's answers are looked up there.
    pub events: Stream,
}

/// The work queues whose messages may be dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Tasks,
    Gates,
}

impl Queue {
    fn named(stream: &str) -> Option<Queue> {
        match stream {
            subjects::TASKS_STREAM => Some(Queue::Tasks),
            subjects::GATES_STREAM => Some(Queue::Gates),
            _ => None,
        }
    }
}

impl DeadLetters {
    fn queue(&self, q: Queue) -> &Stream {
        match q {
            Queue::Tasks => &self.tasks,
            Queue::Gates => &self.gates,
        }
    }
}

/// Who noticed the spent message, for the log.
#[derive(Clone, Copy, Debug)]
enum FoundBy {
    Advisory,
    Sweep,
}

impl FoundBy {
    fn as_str(self) -> &'static str {
        match self {
            FoundBy::Advisory => "advisory",
            FoundBy::Sweep => "sweep",
        }
    }
}

/// What [`move_one`] did.
#[derive(Debug, PartialEq, Eq)]
enum Moved {
    Moved,
    /// Not in the queue (any more): moved by someone else, or answered.
    Gone,
}

/// The fields of `io.nats.jetstream.advisory.v1.max_deliver` Baton reads.
#[derive(Deserialize)]
struct MaxDeliveries {
    stream: String,
    stream_seq: u64,
    deliveries: u64,
}

/// Listen for max-deliveries advisories of the TASKS and GATES consumers
/// and move each message they name.
pub async fn run(
    client: async_nats::Client,
    dl: DeadLetters,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut subs = Vec::new();
    for subject in [
        subjects::MAX_DELIVERIES_ADVISORY,
        subjects::MAX_DELIVERIES_ADVISORY_GATES,
    ] {
        subs.push(
            client
                .queue_subscribe(subject, "baton-deadletter".into())
                .await
                .map_err(|e| Error::Bus(e.into()))?,
        );
    }
    let mut advisories = futures::stream::select_all(subs);
    loop {
        let m = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = advisories.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Ok(a) = serde_json::from_slice::<MaxDeliveries>(&m.payload) else {
            tracing::warn!("unreadable max-deliveries advisory skipped");
            continue;
        };
        let Some(queue) = Queue::named(&a.stream) else {
            continue;
        };
        let deliveries = a.deliveries as u32;
        if let Err(e) = move_one(&dl, queue, a.stream_seq, deliveries, FoundBy::Advisory).await {
            tracing::error!(stream = %a.stream, seq = a.stream_seq, error = %e, "message not dead-lettered; it stays in the queue until a sweep moves it");
        }
    }
}

/// Move the message at `seq` of `queue` to DEADLETTER, tell its run, and
/// remove it from the queue.
async fn move_one(
    dl: &DeadLetters,
    queue: Queue,
    seq: u64,
    deliveries: u32,
    by: FoundBy,
) -> Result<Moved, async_nats::Error> {
    let stream = dl.queue(queue);
    let raw = match stream.get_raw_message(seq).await {
        Ok(raw) => raw,
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(Moved::Gone),
        Err(e) => return Err(e.into()),
    };
    match queue {
        Queue::Tasks => move_task(dl, &raw, deliveries, by).await?,
        Queue::Gates => move_gate(dl, &raw, deliveries, by).await?,
    }
    if let Err(e) = stream.delete_message(seq).await {
        // Removed meanwhile by another coordinator moving it too: fine.
        if !matches!(stream.get_raw_message(seq).await, Err(g) if g.kind() == RawMessageErrorKind::NoMessageFound)
        {
            return Err(e.into());
        }
    }
    Ok(Moved::Moved)
}

/// Store `raw` in DEADLETTER under `subject`, with where it came from; its
/// sequence there (the first copy's, for a duplicate).
async fn copy(
    js: &jetstream::Context,
    raw: &StreamMessage,
    subject: String,
    msg_id: String,
    deliveries: u32,
) -> Result<u64, async_nats::Error> {
    let mut headers = raw.headers.clone();
    headers.insert("Baton-Original-Subject", raw.subject.as_str());
    headers.insert("Baton-Deliveries", deliveries.to_string().as_str());
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
    let ack = js
        .send_publish(
            subject,
            PublishMessage::build()
                .payload(raw.payload.clone())
                .headers(headers),
        )
        .await?
        .await?;
    Ok(ack.sequence)
}

/// A task message: the task fails with where to find it (`TaskDeadLettered`).
async fn move_task(
    dl: &DeadLetters,
    raw: &StreamMessage,
    deliveries: u32,
    by: FoundBy,
) -> Result<(), async_nats::Error> {
    let d = codec::decode::<v1::TaskDispatch>(&raw.payload)?;
    let dlq_seq = copy(
        &dl.js,
        raw,
        subjects::deadletter(&d.role),
        subjects::msg_id::deadletter_copy(raw.sequence),
        deliveries,
    )
    .await?;
    let body = Body::TaskDeadLettered(v1::TaskDeadLettered {
        task_id: d.task_id.clone(),
        attempt: d.attempt,
        deliveries,
        dlq_seq,
    });
    let id = subjects::msg_id::dead_lettered(&d.run_id, &d.task_id, d.attempt);
    bus::publish_event(&dl.js, &d.run_id, &id, body, &d.traceparent).await?;
    tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, deliveries, dlq_seq, found_by = by.as_str(), "task message dead-lettered");
    Ok(())
}

/// Why a gate fails whose request no evaluator answered.
fn gate_reason(kind: &str, req: &v1::GateRequest, deliveries: u32, dlq_seq: u64) -> String {
    format!(
        "gate {kind} #{} of phase {}: the request was delivered {deliveries} times and never answered — see {} seq {dlq_seq}",
        req.gate_index,
        req.phase_id,
        subjects::DEADLETTER_STREAM,
    )
}

/// A gate request: unless the evaluators answered it (and only never
/// acknowledged it), the gate fails with where to find the request.
async fn move_gate(
    dl: &DeadLetters,
    raw: &StreamMessage,
    deliveries: u32,
    by: FoundBy,
) -> Result<(), async_nats::Error> {
    let req = codec::decode::<v1::GateRequest>(&raw.payload)?;
    let kind = raw
        .subject
        .strip_prefix("baton.gate.")
        .filter(|k| subjects::valid_token(k))
        .unwrap_or("unknown");
    let dlq_seq = copy(
        &dl.js,
        raw,
        subjects::deadletter_gate(kind),
        subjects::msg_id::deadletter_gate_copy(raw.sequence),
        deliveries,
    )
    .await?;
    if answered(&dl.events, &req).await? {
        tracing::warn!(run = %req.run_id, phase = %req.phase_id, gate = req.gate_index, round = req.round, deliveries, dlq_seq, found_by = by.as_str(), "gate request dead-lettered; its answer was published, and stands");
        return Ok(());
    }
    let body = Body::GateEvaluated(v1::GateEvaluated {
        phase_id: req.phase_id.clone(),
        gate_index: req.gate_index,
        round: req.round,
        verdict: v1::Verdict::Fail as i32,
        reasons: vec![gate_reason(kind, &req, deliveries, dlq_seq)],
        kind: kind.to_string(),
        retry_at_ms: 0,
    });
    // The evaluators' answer's id: within the duplicate window, whichever of
    // the two comes second is dropped; after it, the fold takes the first.
    let id = subjects::msg_id::gate_result(&req.run_id, &req.phase_id, req.gate_index, req.round);
    bus::publish_event(&dl.js, &req.run_id, &id, body, &req.traceparent).await?;
    tracing::warn!(run = %req.run_id, phase = %req.phase_id, gate = req.gate_index, round = req.round, deliveries, dlq_seq, found_by = by.as_str(), "gate request dead-lettered; its gate fails");
    Ok(())
}

/// Whether the run's events hold an answer to `req` (its gate and round).
async fn answered(events: &Stream, req: &v1::GateRequest) -> Result<bool, async_nats::Error> {
    let subject = EventKind::GateEvaluated.subject(&req.run_id);
    let mut from = 1;
    loop {
        let m = match events
            .get_first_raw_message_by_subject(&subject, from)
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        from = m.sequence + 1;
        if let Ok(v1::Event {
            body: Some(Body::GateEvaluated(g)),
            ..
        }) = codec::decode_event(&m.subject, &m.payload)
        {
            if g.phase_id == req.phase_id && g.gate_index == req.gate_index && g.round == req.round
            {
                return Ok(true);
            }
        }
    }
}

mod sweep;
#[cfg(test)]
mod tests;

pub use sweep::sweep;
#[cfg(test)]
use sweep::sweep_once;
