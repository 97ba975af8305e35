//! Claim: decode the message, open the attempt's span, and claim the
//! attempt, or settle the message when this worker must not run it.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use baton_proto::codec;
use baton_proto::v1;
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use opentelemetry::KeyValue;

use super::{report_step, Attempt, Ctx, SpanGuard};
use crate::claim::Claim;

/// The claimed attempt, or `None` when the message is settled already (or
/// deliberately left alone) and there is nothing to run.
pub(super) async fn claim(ctx: &Ctx, msg: jetstream::Message) -> Option<Attempt> {
    let d = match codec::decode::<v1::TaskDispatch>(&msg.payload) {
        Ok(d) => d,
        Err(e) => {
            // Redelivering bytes we cannot read helps nobody.
            tracing::error!(subject = %msg.subject, error = %e, "undecodable task message terminated");
            let _ = msg.ack_with(AckKind::Term).await;
            return None;
        }
    };
    let (span, trace_id, traceparent) = start_span(&d);

    // Delivered before and never answered, by a worker that had started it:
    // that worker is gone (died, froze, cut off, or shut down). Running the
    // attempt again would let two results race; the coordinator starts the
    // next attempt instead, and a late answer of this one is recorded but
    // not folded. Delivered before but never started: simply run it.
    let deliveries = msg.info().map(|i| i.delivered).unwrap_or(1).max(1) as u32;
    let redelivered = deliveries > 1;
    let proof = match crate::claim::claim(ctx, &msg, &d).await {
        Ok(Claim::Won(proof)) => proof,
        Ok(Claim::ClaimedBefore | Claim::HeldElsewhere { .. }) if redelivered => {
            report_step::report_lost(ctx, &msg, &d, deliveries).await;
            return None;
        }
        // Our own claim, whose ack was lost on the way back.
        Ok(Claim::WonEarlier(proof)) => proof,
        Ok(Claim::DuplicateMessage { holder }) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, %holder, "a second copy of a claimed attempt; dropped");
            let _ = msg.double_ack().await;
            return None;
        }
        Ok(Claim::ClaimedBefore) => {
            // Started here before the server forgot: if it is still running
            // here, its end acknowledges the message; if not, the message comes
            // back as a redelivery and is reported lost.
            tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, "attempt delivered again that this worker claimed before; left alone");
            return None;
        }
        Ok(Claim::HeldElsewhere { holder }) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, %holder, "attempt delivered again while its holder runs it; left alone");
            return None;
        }
        Err(e) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, error = %e, "cannot claim the attempt; handing it back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return None;
        }
    };
    Some(Attempt {
        msg,
        d,
        proof,
        trace_id,
        traceparent,
        span,
    })
}

/// The attempt's span, a child of the dispatch's trace, with its trace id
/// and traceparent. Without a tracer (the span context is invalid) the
/// dispatch's own trace is passed on unchanged.
fn start_span(d: &v1::TaskDispatch) -> (SpanGuard, String, String) {
    let tracer = opentelemetry::global::tracer("baton-worker");
    let parent = baton_proto::trace::parse(&d.traceparent)
        .map(|sc| opentelemetry::Context::new().with_remote_span_context(sc))
        .unwrap_or_default();
    let mut span = tracer.start_with_context(format!("task {}", d.task_id), &parent);
    span.set_attribute(KeyValue::new("baton.run", d.run_id.clone()));
    span.set_attribute(KeyValue::new("baton.task", d.task_id.clone()));
    span.set_attribute(KeyValue::new("baton.attempt", d.attempt as i64));
    span.set_attribute(KeyValue::new("baton.role", d.role.clone()));
    let sc = span.span_context().clone();
    let (trace_id, traceparent) = if sc.is_valid() {
        (sc.trace_id().to_string(), baton_proto::trace::format(&sc))
    } else {
        (
            baton_proto::trace::trace_id(&d.traceparent),
            d.traceparent.clone(),
        )
    };
    (SpanGuard(span), trace_id, traceparent)
}
