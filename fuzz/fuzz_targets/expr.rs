//! Any text given as a gate expression: parsing, evaluation against a run's
//! context and the explanation of a verdict never panic or overflow.
#![no_main]

use baton_plan::expr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(e) = expr::parse(src) else {
        return;
    };
    let ctx = serde_json::json!({
        "inputs": {"risk": "high", "n": "3"},
        "tasks": {
            "tests": {"status": "succeeded", "outputs": {"coverage": 91.5, "ok": true, "tags": ["a", "b"]}},
            "scan": {"status": "failed", "outputs": {}}
        },
        "loop": {"iteration": 2},
        "environment": {"name": "prod"}
    });
    let _ = e.names();
    let _ = e.eval(&ctx);
    let _ = e.eval_bool(&ctx);
    let _ = e.explain(&ctx);
});
