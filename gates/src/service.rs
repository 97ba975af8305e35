//! The evaluator service: take gate requests from the GATES work queue,
//! evaluate, publish the verdict as an event of the run, then acknowledge.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use baton_proto::supervise::Supervisor;
use baton_proto::topology::TopologyOptions;
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use futures::StreamExt;
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use tokio_util::sync::CancellationToken;

use crate::kinds;
use crate::Error;

#[derive(Clone, Debug)]
pub struct Options {
    pub nats_url: String,
    /// Credentials and TLS for NATS (default: none).
    pub nats_auth: baton_proto::nats_auth::NatsAuth,
    /// Requests evaluated at once.
    pub concurrency: usize,
    pub topology: TopologyOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nats_url: baton_proto::bus::DEFAULT_NATS_URL.into(),
            nats_auth: Default::default(),
            concurrency: 64,
            topology: TopologyOptions::default(),
        }
    }
}

pub struct Gates {
    js: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    concurrency: usize,
}

impl Options {
    pub async fn build(self) -> Result<Gates, Error> {
        let baton_proto::bus::Bus { js, topo, .. } =
            baton_proto::bus::connect_and_ensure(baton_proto::bus::BusOptions {
                url: &self.nats_url,
                name: "baton-gates",
                auth: &self.nats_auth,
                topology: &self.topology,
            })
            .await?;
        let consumer = topo
            .gates
            .get_or_create_consumer(
                subjects::GATES_CONSUMER,
                pull::Config {
                    durable_name: Some(subjects::GATES_CONSUMER.into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: 10,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        Ok(Gates {
            js,
            consumer,
            concurrency: self.concurrency.max(1),
        })
    }
}

impl Gates {
    /// Answer gate requests until `cancel`; requests in flight are finished
    /// (within [`STOP_GRACE`]). The request loop runs under the shared
    /// [`Supervisor`]: should it end by itself (its message stream closed),
    /// `run` returns an error instead of idling on as if it served.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), Error> {
        let messages = self
            .consumer
            .messages()
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let js = self.js.clone();
        let mut parts = Supervisor::new("gates", &cancel).with_grace(STOP_GRACE);
        let stop = parts.token();
        let concurrency = self.concurrency;
        parts.spawn("gate requests", async move {
            messages
                .take_until(stop.cancelled_owned())
                .for_each_concurrent(concurrency, |m| {
                    let js = js.clone();
                    async move {
                        let Ok(m) = m else { return };
                        match codec::decode::<v1::GateRequest>(&m.payload) {
                            Ok(req) => {
                                if let Err(e) = answer(&js, &req).await {
                                    // Not acked: JetStream redelivers, and the result's id dedupes.
                                    tracing::error!(run = %req.run_id, error = %e, "gate verdict not published");
                                    return;
                                }
                            }
                            Err(e) => tracing::error!(subject = %m.subject, error = %e, "undecodable gate request dropped"),
                        }
                        if let Err(e) = m.ack().await {
                            tracing::warn!(error = %e, "gate request ack failed");
                        }
                    }
                })
                .await;
            Ok(())
        });
        parts.run().await
    }
}

/// How long requests in flight may take to be answered once the gates stop.
pub const STOP_GRACE: Duration = Duration::from_secs(8);

/// Evaluate one request and publish its verdict.
pub async fn answer(
    js: &jetstream::Context,
    req: &v1::GateRequest,
) -> Result<(), async_nats::Error> {
    let kind = kinds::kind_name(req);
    let tracer = opentelemetry::global::tracer("baton-gates");
    let cx = baton_proto::trace::parse(&req.traceparent)
        .map(|sc| opentelemetry::Context::new().with_remote_span_context(sc))
        .unwrap_or_default();
    let mut span = tracer.start_with_context(format!("gate {kind}"), &cx);
    let a = kinds::evaluate(req);
    span.set_attribute(opentelemetry::KeyValue::new(
        "baton.gate.verdict",
        format!("{:?}", a.verdict),
    ));
    span.end();
    tracing::info!(run = %req.run_id, phase = %req.phase_id, kind, verdict = ?a.verdict, reasons = ?a.reasons, "gate evaluated");
    let body = Body::GateEvaluated(v1::GateEvaluated {
        phase_id: req.phase_id.clone(),
        gate_index: req.gate_index,
        round: req.round,
        verdict: a.verdict as i32,
        reasons: a.reasons,
        kind: kind.to_string(),
        retry_at_ms: a.retry_at_ms,
    });
    let id = subjects::msg_id::gate_result(&req.run_id, &req.phase_id, req.gate_index, req.round);
    bus::publish_event(js, &req.run_id, &id, body, &req.traceparent).await
}
