//! Publishing on the bus: every message carries a `Nats-Msg-Id` derived from
//! its meaning and, where there is one, the run's W3C `traceparent`.

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use prost::Message;

use crate::subjects::TRACEPARENT_HEADER;
use crate::v1::{event::Body, Event};

pub type PublishError = async_nats::jetstream::context::PublishError;

/// Publish `msg` and return the ack future, so that callers can pipeline
/// many publishes and await their acks together.
pub async fn publish<M: Message>(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    msg: &M,
    traceparent: &str,
) -> Result<PublishAckFuture, PublishError> {
    let mut p = PublishMessage::build()
        .payload(msg.encode_to_vec().into())
        .message_id(msg_id);
    if !traceparent.is_empty() {
        p = p.header(TRACEPARENT_HEADER, traceparent);
    }
    js.send_publish(subject, p).await
}

/// Publish and wait for the server's ack, retrying a few times with the same
/// message id (the server drops the copy if an earlier try did land).
pub async fn publish_acked<M: Message>(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    msg: &M,
    traceparent: &str,
) -> Result<(), async_nats::Error> {
    let mut last: Option<async_nats::Error> = None;
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        }
        match publish(js, subject.clone(), msg_id, msg, traceparent).await {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e.into()),
            },
            Err(e) => last = Some(e.into()),
        }
        tracing::warn!(
            subject,
            msg_id,
            attempt,
            "publish not acknowledged; retrying"
        );
    }
    Err(last.expect("at least one attempt"))
}

/// Publish an event of a run on `baton.evt.<run>.<kind>`.
pub async fn publish_event(
    js: &jetstream::Context,
    run_id: &str,
    msg_id: &str,
    body: Body,
    traceparent: &str,
) -> Result<(), async_nats::Error> {
    let subject = crate::subjects::event(run_id, crate::codec::event_kind(&body));
    let ev: Event = crate::codec::event_now(run_id, body);
    publish_acked(js, subject, msg_id, &ev, traceparent).await
}
