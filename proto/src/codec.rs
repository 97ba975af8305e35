//! Encoding helpers shared by every publisher and consumer.

use prost::Message;

use crate::v1::{event::Body, Event};

/// The last subject token of an event: `baton.evt.<run>.<kind>`.
pub fn event_kind(body: &Body) -> &'static str {
    match body {
        Body::RunSubmitted(_) => "submitted",
        Body::TaskStarted(_) => "task_started",
        Body::TaskFinished(_) => "task_finished",
        Body::GateEvaluated(_) => "gate",
        Body::Decision(_) => "decision",
        Body::CancelRequested(_) => "cancel",
        Body::TimerFired(_) => "timer",
        Body::TaskLost(_) => "task_lost",
        Body::TaskDeadLettered(_) => "task_dead_lettered",
        Body::PhaseChanged(_) => "phase",
        Body::RunFinished(_) => "finished",
        Body::Incident(_) => "incident",
    }
}

/// An event stamped with the current wall-clock time.
pub fn event_now(run_id: &str, body: Body) -> Event {
    Event {
        run_id: run_id.to_string(),
        time_ms: now_ms(),
        body: Some(body),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn encode<M: Message>(m: &M) -> bytes::Bytes {
    m.encode_to_vec().into()
}

pub fn decode<M: Message + Default>(b: &[u8]) -> Result<M, prost::DecodeError> {
    M::decode(b)
}
