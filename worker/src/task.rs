//! One task message, start to end: started event, heartbeats, logs, run, outcome.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use tokio_util::sync::CancellationToken;

use crate::cancel::CancelRegistry;
use crate::claim::Claim;
use crate::runtime::grant::{self, Ceiling};
use crate::runtime::{Limits, LogLine, Runtime, Stream, TaskSpec};

pub struct Ctx {
    pub js: jetstream::Context,
    pub client: async_nats::Client,
    pub runtime: Runtime,
    pub worker_id: String,
    pub heartbeat: Duration,
    pub limits: Limits,
    /// What a dispatch's sandbox request may widen, at most.
    pub ceiling: Ceiling,
    /// Which secret references this worker resolves.
    pub secret_policy: crate::secrets::SecretPolicy,
    /// For dispatches whose `max_artifact_bytes` is 0.
    pub max_artifact_bytes: u64,
    pub cancels: CancelRegistry,
    /// Fires when the grace period of a shutdown ran out.
    pub shutdown: CancellationToken,
    /// For reading claims back.
    pub events: jetstream::stream::Stream,
    pub running: std::sync::Arc<crate::registry::Running>,
}

pub async fn handle(ctx: &Ctx, msg: jetstream::Message) {
    let d = match codec::decode::<v1::TaskDispatch>(&msg.payload) {
        Ok(d) => d,
        Err(e) => {
            // Redelivering bytes we cannot read helps nobody.
            tracing::error!(subject = %msg.subject, error = %e, "undecodable task message terminated");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let tracer = opentelemetry::global::tracer("baton-worker");
    let parent = baton_proto::trace::parse(&d.traceparent)
        .map(|sc| opentelemetry::Context::new().with_remote_span_context(sc))
        .unwrap_or_default();
    let mut span = tracer.start_with_context(format!("task {}", d.task_id), &parent);
    span.set_attribute(opentelemetry::KeyValue::new("baton.run", d.run_id.clone()));
    span.set_attribute(opentelemetry::KeyValue::new(
        "baton.task",
        d.task_id.clone(),
    ));
    span.set_attribute(opentelemetry::KeyValue::new(
        "baton.attempt",
        d.attempt as i64,
    ));
    span.set_attribute(opentelemetry::KeyValue::new("baton.role", d.role.clone()));
    let sc = span.span_context().clone();
    let (trace_id, task_tp) = if sc.is_valid() {
        (sc.trace_id().to_string(), baton_proto::trace::format(&sc))
    } else {
        (
            baton_proto::trace::trace_id(&d.traceparent),
            d.traceparent.clone(),
        )
    };

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
            report_lost(ctx, &msg, &d, deliveries).await;
            span.end();
            return;
        }
        // Our own claim, whose ack was lost on the way back.
        Ok(Claim::WonEarlier(proof)) => proof,
        Ok(Claim::DuplicateMessage { holder }) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, %holder, "a second copy of a claimed attempt; dropped");
            let _ = msg.double_ack().await;
            span.end();
            return;
        }
        Ok(Claim::ClaimedBefore) => {
            // Started here before the server forgot: if it is still running
            // here, its end acknowledges the message; if not, the message comes
            // back as a redelivery and is reported lost.
            tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, "attempt delivered again that this worker claimed before; left alone");
            span.end();
            return;
        }
        Ok(Claim::HeldElsewhere { holder }) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, %holder, "attempt delivered again while its holder runs it; left alone");
            span.end();
            return;
        }
        Err(e) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, error = %e, "cannot claim the attempt; handing it back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            span.end();
            return;
        }
    };

    // A sandbox or host path this worker will not grant fails the task for
    // good: another attempt would meet the same request.
    let granted = grant::grant(
        d.sandbox.as_ref(),
        d.workspace.as_ref(),
        &ctx.limits,
        &ctx.ceiling,
    );
    let (limits, granted, workspace) = match granted {
        Ok(g) => g,
        Err(reason) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, role = %d.role, %reason, "sandbox request refused");
            let refused = v1::TaskFinished {
                task_id: d.task_id.clone(),
                attempt: d.attempt,
                ok: false,
                error: format!("sandbox refused by worker {}: {reason}", ctx.worker_id),
                worker: ctx.worker_id.clone(),
                trace_id: trace_id.clone(),
                permanent: true,
                ..Default::default()
            };
            finish(ctx, &msg, &d, &proof, refused).await;
            span.end();
            return;
        }
    };

    let heartbeat = {
        let every = ctx.heartbeat.max(Duration::from_millis(100));
        let ack = msg.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if ack.ack_with(AckKind::Progress).await.is_err() {
                    tracing::warn!("heartbeat not sent");
                }
            }
        })
    };

    // Resolved on this host, now: a missing secret fails the attempt
    // permanently below, with a message naming the reference only.
    let secrets = crate::secrets::resolve(&d.secrets, &ctx.worker_id, &ctx.secret_policy, |var| {
        std::env::var(var).ok()
    });
    let redactor = secrets
        .as_ref()
        .map(|s| s.redactor.clone())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel::<LogLine>(1024);
    let logs = tokio::spawn(forward_logs(
        ctx.client.clone(),
        d.run_id.clone(),
        d.task_id.clone(),
        d.attempt,
        rx,
        redactor.clone(),
    ));

    let running_key = format!("{}/{}#{}", d.run_id, d.task_id, d.attempt);
    ctx.running.add(&running_key);
    let registration = ctx.cancels.register(&d.run_id);
    let run_cancel = registration.token.clone();
    let kill = CancellationToken::new();
    let kill_guard = {
        let (kill, run_cancel, shutdown) = (kill.clone(), run_cancel.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = run_cancel.cancelled() => {},
                _ = shutdown.cancelled() => {},
            }
            kill.cancel();
        })
    };
    let mut env: Vec<(String, String)> =
        d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.sort();
    env.push(("BATON_RUN_ID".into(), d.run_id.clone()));
    env.push(("BATON_TASK_ID".into(), d.task_id.clone()));
    env.push(("BATON_ATTEMPT".into(), d.attempt.to_string()));
    env.push(("TRACEPARENT".into(), task_tp));
    let spec = TaskSpec {
        run_id: d.run_id.clone(),
        task_id: d.task_id.clone(),
        attempt: d.attempt,
        image: d.image.clone(),
        argv: d.argv.clone(),
        env,
        timeout: Duration::from_millis(d.timeout_ms.max(1)),
        limits,
        grant: granted,
        workspace,
        inputs: d.inputs.clone(),
        max_artifact_bytes: match d.max_artifact_bytes {
            0 => ctx.max_artifact_bytes,
            n => n,
        },
        secrets: Default::default(),
    };
    let result = match secrets {
        Ok(secrets) => {
            let spec = TaskSpec { secrets, ..spec };
            ctx.runtime.run(&spec, tx, kill).await
        }
        Err(e) => {
            // Nothing will log: let the forwarder end.
            drop(tx);
            Err(e.into())
        }
    };
    heartbeat.abort();
    kill_guard.abort();
    ctx.cancels.release(&registration);
    ctx.running.remove(&running_key);
    let _ = logs.await;

    if ctx.shutdown.is_cancelled() {
        // Killed by our own shutdown, not by the task: another worker runs it now.
        tracing::warn!(run = %d.run_id, task = %d.task_id, "handing task back at shutdown");
        let _ = msg.ack_with(AckKind::Nak(None)).await;
        span.end();
        return;
    }
    let finished = match result {
        Ok(o) => v1::TaskFinished {
            task_id: d.task_id.clone(),
            attempt: d.attempt,
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
            trace_id: trace_id.clone(),
            permanent: false,
            artifacts: o.artifacts,
            claim_proof: String::new(),
        },
        Err(e) if e.is_permanent() => v1::TaskFinished {
            task_id: d.task_id.clone(),
            attempt: d.attempt,
            ok: false,
            error: redactor.str(&e.to_string()),
            worker: ctx.worker_id.clone(),
            trace_id: trace_id.clone(),
            permanent: true,
            ..Default::default()
        },
        Err(e) => {
            // This machine cannot run tasks now; let another worker try soon.
            let error = redactor.str(&e.to_string());
            tracing::error!(run = %d.run_id, task = %d.task_id, %error, "runtime failure; task handed back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            span.end();
            return;
        }
    };
    span.set_attribute(opentelemetry::KeyValue::new("baton.task.ok", finished.ok));
    if !finished.ok {
        span.set_status(opentelemetry::trace::Status::error(finished.error.clone()));
    }
    tracing::info!(run = %d.run_id, task = %d.task_id, attempt = d.attempt, ok = finished.ok, error = %finished.error, "task finished");
    finish(ctx, &msg, &d, &proof, finished).await;
    span.end();
}

/// Publish each line on `baton.log.<run>.<task>`; the LOGS stream keeps them.
async fn forward_logs(
    client: async_nats::Client,
    run: String,
    task: String,
    attempt: u32,
    mut rx: tokio::sync::mpsc::Receiver<LogLine>,
    redactor: std::sync::Arc<crate::redact::Redactor>,
) {
    let subject = subjects::log(&run, &task);
    let attempt = attempt.to_string();
    while let Some(l) = rx.recv().await {
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Baton-Stream",
            if l.stream == Stream::Stdout {
                "stdout"
            } else {
                "stderr"
            },
        );
        h.insert("Baton-Attempt", attempt.as_str());
        if client
            // The runtimes redact the raw streams (catching values split
            // across chunks); this second pass guards lines from anywhere else.
            .publish_with_headers(subject.clone(), h, redactor.str(&l.line).into())
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Publish a task's outcome and then acknowledge its message; on a
/// restart the same ids make both idempotent.
/// The result carries the claim's secret: it counts only from this worker.
async fn finish(
    ctx: &Ctx,
    msg: &jetstream::Message,
    d: &v1::TaskDispatch,
    proof: &crate::claim::Proof,
    f: v1::TaskFinished,
) {
    let f = v1::TaskFinished {
        claim_proof: proof.reveal(),
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
async fn report_lost(ctx: &Ctx, msg: &jetstream::Message, d: &v1::TaskDispatch, deliveries: u32) {
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
