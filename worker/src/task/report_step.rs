//! Report: turn how the run step ended into a `TaskFinished` (or a hand
//! back to the queue), publish it, then acknowledge the message.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, subjects};
use opentelemetry::trace::Span;
use opentelemetry::KeyValue;

use super::run_step::Ran;
use super::{Attempt, Ctx};
use crate::runtime::Outcome;

/// Ends the attempt's span once the answer is out (dropping `a`).
pub(super) async fn report(ctx: &Ctx, mut a: Attempt, ran: Ran) {
    let d = &a.d;
    let (result, redactor) = match ran {
        Ran::Refused(reason) => {
            let error = format!("sandbox refused by worker {}: {reason}", ctx.worker_id);
            let refused = failed_for_good(ctx, &a, error);
            finish(ctx, &a, refused).await;
            return;
        }
        Ran::Done { result, redactor } => (result, redactor),
    };
    if ctx.shutdown.is_cancelled() {
        // Killed by our own shutdown, not by the task: another worker runs it now.
        tracing::warn!(run = %d.run_id, task = %d.task_id, "handing task back at shutdown");
        let _ = a.msg.ack_with(AckKind::Nak(None)).await;
        return;
    }
    let finished = match result {
        Ok(o) => finished(ctx, &a, o, &redactor),
        Err(e) if e.is_permanent() => failed_for_good(ctx, &a, redactor.str(&e.to_string())),
        Err(e) => {
            // This machine cannot run tasks now; let another worker try soon.
            let error = redactor.str(&e.to_string());
            tracing::error!(run = %d.run_id, task = %d.task_id, %error, "runtime failure; task handed back");
            let _ = a
                .msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            return;
        }
    };
    a.span
        .set_attribute(KeyValue::new("baton.task.ok", finished.ok));
    if !finished.ok {
        a.span
            .set_status(opentelemetry::trace::Status::error(finished.error.clone()));
    }
    tracing::info!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, ok = finished.ok, error = %finished.error, "task finished");
    finish(ctx, &a, finished).await;
}

/// An attempt that ran, with every text that came from the task redacted.
fn finished(
    ctx: &Ctx,
    a: &Attempt,
    o: Outcome,
    redactor: &crate::redact::Redactor,
) -> v1::TaskFinished {
    v1::TaskFinished {
        task_id: a.d.task_id.clone(),
        attempt: a.d.attempt,
        ok: o.ok,
        exit_code: o.exit_code,
        report_json: o
            .report
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok())
            .map(|json| redactor.str(&json))
            .unwrap_or_default(),
        error: redactor.str(&o.error.unwrap_or_default()),
        duration_ms: o.duration.as_millis() as u64,
        worker: ctx.worker_id.clone(),
        trace_id: a.trace_id.clone(),
        permanent: false,
        artifacts: o.artifacts,
        claim_proof: String::new(),
    }
}

/// An attempt that another attempt of the same dispatch could not fix.
fn failed_for_good(ctx: &Ctx, a: &Attempt, error: String) -> v1::TaskFinished {
    v1::TaskFinished {
        task_id: a.d.task_id.clone(),
        attempt: a.d.attempt,
        ok: false,
        error,
        worker: ctx.worker_id.clone(),
        trace_id: a.trace_id.clone(),
        permanent: true,
        ..Default::default()
    }
}

/// Publish a task's outcome and then acknowledge its message; on a
/// restart the same ids make both idempotent.
/// The result carries the claim's secret: it counts only from this worker.
async fn finish(ctx: &Ctx, a: &Attempt, f: v1::TaskFinished) {
    let (msg, d) = (&a.msg, &a.d);
    let f = v1::TaskFinished {
        claim_proof: a.proof.reveal(),
        ..f
    };
    let id = subjects::msg_id::finished(&d.run_id, &d.task_id, d.attempt);
    match bus::publish_event(
        &ctx.js,
        &d.run_id,
        &id,
        Body::TaskFinished(f),
        &d.traceparent,
    )
    .await
    {
        Ok(()) => {
            if let Err(e) = msg.double_ack().await {
                tracing::warn!(run = %d.run_id, task = %d.task_id, error = %e, "ack failed; the task may run again and its result will be deduplicated");
            }
        }
        Err(e) => {
            tracing::error!(run = %d.run_id, task = %d.task_id, error = %e, "outcome not published; handing the task back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

/// Tell the coordinator an attempt came back unanswered, then take it off the queue.
pub(super) async fn report_lost(
    ctx: &Ctx,
    msg: &jetstream::Message,
    d: &v1::TaskDispatch,
    deliveries: u32,
) {
    tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, deliveries, "attempt came back unanswered; reporting it lost");
    let body = Body::TaskLost(v1::TaskLost {
        task_id: d.task_id.clone(),
        attempt: d.attempt,
        deliveries,
        worker: ctx.worker_id.clone(),
        // The claim names this message: it binds the loss to the attempt.
        queue_seq: msg.info().map(|i| i.stream_sequence).unwrap_or(0),
    });
    let id = subjects::msg_id::lost(&d.run_id, &d.task_id, d.attempt);
    match bus::publish_event(&ctx.js, &d.run_id, &id, body, &d.traceparent).await {
        Ok(()) => {
            let _ = msg.double_ack().await;
        }
        Err(e) => {
            tracing::error!(run = %d.run_id, task = %d.task_id, error = %e, "lost attempt not reported; handing it back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}
