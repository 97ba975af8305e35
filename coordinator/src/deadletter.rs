//! The dead-letter path. When a role consumer gives up on a task message
//! (delivered `max_deliver` times, never acknowledged), JetStream says so in
//! an advisory and leaves the message in the work queue, where nobody would
//! ever look. One coordinator (a queue group) moves it to the DEADLETTER
//! stream, tells the run (`TaskDeadLettered`, which fails the task with where
//! to find the message), and only then removes it from the queue.

use async_nats::jetstream::{self, message::PublishMessage};
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The fields of `io.nats.jetstream.advisory.v1.max_deliver` Baton reads.
#[derive(Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

pub async fn run(
    client: async_nats::Client,
    js: jetstream::Context,
    tasks: jetstream::stream::Stream,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut sub = client
        .queue_subscribe(subjects::MAX_DELIVERIES_ADVISORY, "baton-deadletter".into())
        .await
        .map_err(|e| Error::Bus(e.into()))?;
    loop {
        let m = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Ok(a) = serde_json::from_slice::<MaxDeliveries>(&m.payload) else {
            tracing::warn!("unreadable max-deliveries advisory skipped");
            continue;
        };
        if let Err(e) = move_one(&js, &tasks, a.stream_seq, a.deliveries as u32).await {
            tracing::error!(seq = a.stream_seq, error = %e, "task message not dead-lettered; it stays in the queue");
        }
    }
}

async fn move_one(
    js: &jetstream::Context,
    tasks: &jetstream::stream::Stream,
    seq: u64,
    deliveries: u32,
) -> Result<(), async_nats::Error> {
    let raw = tasks.get_raw_message(seq).await?;
    let d = codec::decode::<v1::TaskDispatch>(&raw.payload)?;
    let mut headers = raw.headers.clone();
    headers.insert("Baton-Original-Subject", raw.subject.as_str());
    headers.insert("Baton-Deliveries", deliveries.to_string().as_str());
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        subjects::msg_id::deadletter_copy(seq).as_str(),
    );
    let ack = js
        .send_publish(
            subjects::deadletter(&d.role),
            PublishMessage::build()
                .payload(raw.payload.clone())
                .headers(headers),
        )
        .await?
        .await?;
    let body = Body::TaskDeadLettered(v1::TaskDeadLettered {
        task_id: d.task_id.clone(),
        attempt: d.attempt,
        deliveries,
        dlq_seq: ack.sequence,
    });
    let id = subjects::msg_id::dead_lettered(&d.run_id, &d.task_id, d.attempt);
    bus::publish_event(js, &d.run_id, &id, body, &d.traceparent).await?;
    tasks.delete_message(seq).await?;
    tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, deliveries, dlq_seq = ack.sequence, "task message dead-lettered");
    Ok(())
}
