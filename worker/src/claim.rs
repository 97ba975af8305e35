//! Claiming an attempt before running it.
//!
//! The work queue delivers at least once, and a nats-server that crashes can
//! forget that it handed a message out: the message then comes back as a
//! first delivery while its first worker still runs it. Message ids and
//! attempt numbers cannot tell the two apart; the stream can. The claim is
//! the attempt's `TaskStarted` event, published on a subject of its own with
//! `Nats-Expected-Last-Subject-Sequence: 0`, so the stream stores it for one
//! worker only. A worker that loses the claim does not run the attempt.
//!
//! The claim carries the SHA-256 of a secret only this handling holds
//! ([`Proof`]); the attempt's result reveals it, so the coordinator counts
//! a result only from the worker that claimed the attempt, whatever name a
//! result says it comes from.

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::stream::DirectGetError;
use async_nats::jetstream::{self, message::PublishMessage};
use baton_proto::v1::{self, event::Body};
use baton_proto::{codec, subjects};
use sha2::{Digest, Sha256};

use crate::task::Ctx;

/// The secret behind a claim's `claim_digest`, revealed with the result.
pub struct Proof(String);

impl Proof {
    fn new() -> (Proof, String) {
        let secret: [u8; 32] = rand::random();
        let digest = hex::encode(Sha256::digest(secret));
        (Proof(hex::encode(secret)), digest)
    }

    /// Hex, as `TaskFinished.claim_proof` carries it.
    pub fn reveal(&self) -> String {
        self.0.clone()
    }
}

pub enum Claim {
    /// Ours, claimed just now: nobody started this attempt before.
    Won(Proof),
    /// Claimed by this very handling, whose publish ack was lost.
    WonEarlier(Proof),
    /// Claimed from this message by an earlier handling under this worker's
    /// id (this worker before the server forgot its delivery, or a
    /// predecessor under the same id).
    ClaimedBefore,
    /// Someone runs this attempt from another copy of the message: this copy
    /// is surplus and can go.
    DuplicateMessage { holder: String },
    /// Someone runs this attempt from this very message (the server lost
    /// track of the delivery). Leave it: if the holder dies, the message
    /// comes back and is reported lost.
    HeldElsewhere { holder: String },
}

/// Why a claim neither won nor lost: the attempt goes back to the queue.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("cannot publish the claim on {subject}: {source} — check the connection to NATS and that this worker's NATS user may publish claims of its roles")]
    Publish {
        subject: String,
        #[source]
        source: PublishError,
    },
    /// The claim was taken; who holds it could not be read.
    #[error("cannot read the claim on {subject} back: {source} — check the connection to NATS and that the events stream allows direct gets")]
    ReadBack {
        subject: String,
        #[source]
        source: DirectGetError,
    },
    #[error("claim subject {subject} holds something else: {source}")]
    Decode {
        subject: String,
        #[source]
        source: codec::Refused,
    },
    #[error("claim subject {subject} holds something else")]
    NotAClaim { subject: String },
}

pub async fn claim(
    ctx: &Ctx,
    msg: &jetstream::Message,
    d: &v1::TaskDispatch,
) -> Result<Claim, ClaimError> {
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    let claim_id = format!("{:016x}", rand::random::<u64>());
    let (proof, claim_digest) = Proof::new();
    let subject = subjects::task_claim(&d.run_id, &d.role, &d.task_id, d.attempt);
    let started = Body::TaskStarted(v1::TaskStarted {
        task_id: d.task_id.clone(),
        attempt: d.attempt,
        worker: ctx.worker_id.clone(),
        queue_seq: seq,
        claim_id: claim_id.clone(),
        claim_digest,
        role: d.role.clone(),
    });
    let mut p = PublishMessage::build()
        .payload(codec::encode(&codec::event_now(&d.run_id, started)))
        .message_id(subjects::msg_id::started(&d.run_id, &d.task_id, d.attempt))
        .expected_last_subject_sequence(0);
    if !d.traceparent.is_empty() {
        p = p.header(subjects::TRACEPARENT_HEADER, d.traceparent.as_str());
    }
    let mut tries = 0u32;
    loop {
        let r = match ctx.js.send_publish(subject.clone(), p.clone()).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match r {
            // A duplicate ack means an earlier claim with the same id stands.
            Ok(ack) if !ack.duplicate => return Ok(Claim::Won(proof)),
            Ok(_) => break,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => break,
            Err(e) => {
                tries += 1;
                if tries == 5 {
                    return Err(ClaimError::Publish { subject, source: e });
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
            }
        }
    }
    // Claimed already: by whom, and from which message?
    // A direct get of the claim subject alone: worker credentials may read
    // claims, not the rest of the events (plans, inputs).
    let raw = match ctx.events.direct_get_last_for_subject(&subject).await {
        Ok(raw) => raw,
        Err(source) => return Err(ClaimError::ReadBack { subject, source }),
    };
    let ev = match codec::decode_event(&subject, &raw.payload) {
        Ok(ev) => ev,
        Err(source) => return Err(ClaimError::Decode { subject, source }),
    };
    let Some(Body::TaskStarted(s)) = ev.body else {
        return Err(ClaimError::NotAClaim { subject });
    };
    Ok(if s.claim_id == claim_id {
        Claim::WonEarlier(proof)
    } else if s.worker == ctx.worker_id && s.queue_seq == seq {
        Claim::ClaimedBefore
    } else if s.queue_seq != seq {
        Claim::DuplicateMessage { holder: s.worker }
    } else {
        Claim::HeldElsewhere { holder: s.worker }
    })
}
