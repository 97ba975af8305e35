//! One task message, start to end, in three steps:
//! [claim](claim_step) (decode, open the span, claim the attempt),
//! [run](run_step) (grant the sandbox, resolve secrets, heartbeat, stream
//! logs, run) and [report](report_step) (publish the outcome, then ack).

mod claim_step;
mod report_step;
mod run_step;

use std::time::Duration;

use async_nats::jetstream;
use baton_proto::v1;
use opentelemetry::global::BoxedSpan;
use opentelemetry::trace::Span;
use tokio_util::sync::CancellationToken;

use crate::cancel::CancelRegistry;
use crate::runtime::grant::Ceiling;
use crate::runtime::{Limits, Runtime};

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
    let Some(attempt) = claim_step::claim(ctx, msg).await else {
        return;
    };
    let ran = run_step::run(ctx, &attempt).await;
    report_step::report(ctx, attempt, ran).await;
}

/// An attempt this worker claimed: what the later steps need of it.
/// Dropping it ends its span.
struct Attempt {
    msg: jetstream::Message,
    d: v1::TaskDispatch,
    proof: crate::claim::Proof,
    /// For `TaskFinished.trace_id`.
    trace_id: String,
    /// The task's own span as `TRACEPARENT`, so that what the task traces
    /// nests under it.
    traceparent: String,
    span: SpanGuard,
}

/// Ends the span when the handling ends, whichever way it ends: early
/// returns and panics included.
struct SpanGuard(BoxedSpan);

impl std::ops::Deref for SpanGuard {
    type Target = BoxedSpan;
    fn deref(&self) -> &BoxedSpan {
        &self.0
    }
}

impl std::ops::DerefMut for SpanGuard {
    fn deref_mut(&mut self) -> &mut BoxedSpan {
        &mut self.0
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}
