//! One file per gate kind. Each turns a [`GateRequest`] into a verdict with reasons.

use baton_proto::v1::{gate_spec::Kind, GateRequest, Verdict};

pub mod approval;
pub mod expr;
pub mod tasks;
pub mod window;

/// A gate's answer: pass, fail or pending, and why, for a person.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// With `Pending`: when to ask again (ms since the epoch); 0 = when something happens.
    pub retry_at_ms: i64,
}

impl Answer {
    pub fn pass(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Pass,
            reasons: vec![reason.into()],
            retry_at_ms: 0,
        }
    }
    pub fn fail(reasons: Vec<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            reasons,
            retry_at_ms: 0,
        }
    }
}

pub fn kind_name(req: &GateRequest) -> &'static str {
    match req.spec.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(Kind::Tasks(_)) => "tasks",
        Some(Kind::Expr(_)) => "expr",
        Some(Kind::Approval(_)) => "approval",
        Some(Kind::Window(_)) => "window",
        None => "unknown",
    }
}

/// Evaluate any kind. A malformed request fails its gate with the reason;
/// it never takes the evaluator down.
pub fn evaluate(req: &GateRequest) -> Answer {
    match req.spec.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(Kind::Tasks(g)) => tasks::evaluate(g, req),
        Some(Kind::Expr(g)) => expr::evaluate(g, req),
        Some(Kind::Approval(g)) => approval::evaluate(g, req),
        Some(Kind::Window(g)) => window::evaluate(g, baton_proto::codec::now_ms()),
        None => Answer::fail(vec![
            "gate request carries no gate spec — a newer coordinator?".into(),
        ]),
    }
}
