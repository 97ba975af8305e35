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
            .map_err(|source| Error::Consumer { source })?;
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
            .map_err(|source| Error::Subscribe { source })?;
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
                        match decode(&m.subject, &m.payload) {
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

/// The gate request a message on `subject` carries.
fn decode(subject: &str, payload: &[u8]) -> Result<v1::GateRequest, Error> {
    codec::decode::<v1::GateRequest>(payload).map_err(|source| Error::Decode {
        subject: subject.to_string(),
        source,
    })
}

/// Evaluate one request and publish its verdict.
pub async fn answer(js: &jetstream::Context, req: &v1::GateRequest) -> Result<(), Error> {
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
    bus::publish_event(js, &req.run_id, &id, body, &req.traceparent)
        .await
        .map_err(|source| Error::Publish {
            run: req.run_id.clone(),
            phase: req.phase_id.clone(),
            gate: req.gate_index,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_undecodable_request_is_a_decode_error_naming_its_subject() {
        let e = decode("baton.gate.expr", b"\xff\xff\xff").unwrap_err();
        assert!(matches!(&e, Error::Decode { subject, .. } if subject == "baton.gate.expr"));
        let text = e.to_string();
        assert!(
            text.contains("`baton.gate.expr` is not a gate request"),
            "{text}"
        );
        assert!(text.contains("run one version of Baton"), "{text}");
        assert!(e.source().is_some(), "the decode error is kept");
        let req = v1::GateRequest {
            run_id: "r1".into(),
            ..Default::default()
        };
        let ok = decode("baton.gate.expr", &prost::Message::encode_to_vec(&req)).unwrap();
        assert_eq!(ok.run_id, "r1");
    }

    #[test]
    fn a_lost_verdict_says_it_is_delivered_again() {
        let e = Error::Publish {
            run: "r1".into(),
            phase: "prod".into(),
            gate: 2,
            source: "no responders".into(),
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the verdict of gate 2 of phase `prod` of run r1 is not published: no responders"
            ),
            "{text}"
        );
        assert!(text.contains("delivered again"), "{text}");
        assert_eq!(e.source().unwrap().to_string(), "no responders");
    }
}
