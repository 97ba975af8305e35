//! `expr: "<expression>"`: a typed expression over inputs and task outputs.

use baton_proto::v1::{ExprGate, GateRequest};

use super::Answer;
use baton_plan::expr;

pub fn evaluate(g: &ExprGate, req: &GateRequest) -> Answer {
    let ctx: serde_json::Value = match serde_json::from_str(&req.context_json) {
        Ok(v) => v,
        Err(e) => return Answer::fail(vec![format!("gate context is not JSON: {e}")]),
    };
    let parsed = match expr::parse(&g.expr) {
        Ok(p) => p,
        Err(e) => return Answer::fail(vec![format!("`{}`: {}", g.expr, e.message)]),
    };
    match parsed.eval_bool(&ctx) {
        Ok(true) => Answer::pass(format!("`{}` is true", g.expr)),
        Ok(false) => Answer::fail(vec![format!(
            "`{}` is false ({})",
            g.expr,
            parsed.explain(&ctx)
        )]),
        Err(e) => Answer::fail(vec![format!("`{}`: {}", g.expr, e.message)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::v1::Verdict;

    fn req(ctx: &str) -> GateRequest {
        GateRequest {
            context_json: ctx.into(),
            ..Default::default()
        }
    }

    const EXPR: &str = "tasks.scan.outputs.critical == 0 && tasks.tests.outputs.coverage >= 80";

    #[test]
    fn passes_and_fails_with_values() {
        let g = ExprGate { expr: EXPR.into() };
        let ok =
            r#"{"tasks":{"scan":{"outputs":{"critical":0}},"tests":{"outputs":{"coverage":84}}}}"#;
        assert_eq!(evaluate(&g, &req(ok)).verdict, Verdict::Pass);
        let low =
            r#"{"tasks":{"scan":{"outputs":{"critical":0}},"tests":{"outputs":{"coverage":79}}}}"#;
        let a = evaluate(&g, &req(low));
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(
            a.reasons[0].contains("tasks.tests.outputs.coverage = 79"),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn unknown_name_and_type_mismatch_fail_with_reasons() {
        let g = ExprGate {
            expr: "tasks.scan.outputs.critical == \"0\"".into(),
        };
        let a = evaluate(&g, &req(r#"{"tasks":{"scan":{"outputs":{"critical":0}}}}"#));
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.reasons[0].contains("type mismatch"), "{:?}", a.reasons);
        let g = ExprGate {
            expr: "tasks.scan.outputs.high == 0".into(),
        };
        let a = evaluate(&g, &req(r#"{"tasks":{"scan":{"outputs":{"critical":0}}}}"#));
        assert!(a.reasons[0].contains("unknown name"), "{:?}", a.reasons);
    }
}
