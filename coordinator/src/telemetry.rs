//! Spans of a run, its phases and its gates.
//!
//! The fold must stay pure and a run can outlive any process, so spans are
//! not held open: each one is recorded when it ends, with the start and end
//! times the events carry, under the run's trace id from its `traceparent`.
//! With no tracer provider installed, all of this is a no-op.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_proto::v1::event::Body;
use opentelemetry::trace::{Span, SpanBuilder, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};

use crate::run::RunState;

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn parent(st: &RunState) -> Option<Context> {
    let sc = baton_proto::trace::parse(&st.traceparent)?;
    Some(Context::new().with_remote_span_context(sc))
}

pub fn run_started(st: &RunState) {
    tracing::info!(run = %st.run_id, plan = %st.plan.name, trace_id = %baton_proto::trace::trace_id(&st.traceparent), "run started");
}

pub fn event_folded(st: &RunState, body: &Body, time_ms: i64) {
    let Some(cx) = parent(st) else { return };
    let tracer = global::tracer("baton-coordinator");
    match body {
        Body::GateEvaluated(g) => {
            let started = st
                .phases
                .iter()
                .find(|p| p.id == g.phase_id)
                .map(|p| p.started_ms)
                .unwrap_or(time_ms);
            let mut span = tracer.build_with_context(
                SpanBuilder::from_name(format!("gate {}", g.kind))
                    .with_start_time(at(started.max(time_ms - 1)))
                    .with_attributes(vec![
                        KeyValue::new("baton.run", st.run_id.clone()),
                        KeyValue::new("baton.phase", g.phase_id.clone()),
                        KeyValue::new("baton.gate.verdict", g.verdict as i64),
                        KeyValue::new("baton.gate.reasons", g.reasons.join("; ")),
                    ]),
                &cx,
            );
            span.end_with_timestamp(at(time_ms));
        }
        Body::PhaseChanged(_) => {}
        _ => {}
    }
}

/// A new root span for a submitted run; its context becomes the run's
/// `traceparent`, so every later span of the run is in the same trace.
pub fn submit_span(plan: &str) -> String {
    let tracer = global::tracer("baton-coordinator");
    let mut span = tracer.start(format!("submit {plan}"));
    let sc = span.span_context().clone();
    span.end();
    if sc.is_valid() {
        baton_proto::trace::format(&sc)
    } else {
        // No tracer provider: still give the run a trace id for correlation.
        baton_proto::trace::new_traceparent()
    }
}

/// Record the run's span, with one child span per phase that ran.
pub fn run_finished(st: &RunState) {
    tracing::info!(run = %st.run_id, status = st.status.as_str(), reason = %st.reason, "run finished");
    let Some(cx) = parent(st) else { return };
    let tracer = global::tracer("baton-coordinator");
    let run_span = tracer.build_with_context(
        SpanBuilder::from_name(format!("run {}", st.plan.name))
            .with_start_time(at(st.created_ms))
            .with_attributes(vec![
                KeyValue::new("baton.run", st.run_id.clone()),
                KeyValue::new("baton.run.status", st.status.as_str()),
                KeyValue::new("baton.run.reason", st.reason.clone()),
            ]),
        &cx,
    );
    let run_cx = cx.with_span(run_span);
    for p in st.phases.iter().filter(|p| p.started_ms > 0) {
        let end = if p.finished_ms > 0 {
            p.finished_ms
        } else {
            st.finished_ms
        };
        let mut span = tracer.build_with_context(
            SpanBuilder::from_name(format!("phase {}", p.id))
                .with_start_time(at(p.started_ms))
                .with_attributes(vec![
                    KeyValue::new("baton.run", st.run_id.clone()),
                    KeyValue::new("baton.phase.status", p.status.as_str()),
                ]),
            &run_cx,
        );
        span.end_with_timestamp(at(end));
    }
    run_cx.span().end_with_timestamp(at(st.finished_ms));
}
