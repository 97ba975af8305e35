//! The `expr` gate as the evaluator runs it: an expression and a run
//! context that both come off the bus. Parsing the context, parsing and
//! evaluating the expression and explaining a false verdict never panic,
//! whatever either holds (the `expr` target fixes the context instead).
//!
//! Input: the expression, a NUL, then the context as JSON.
#![no_main]

use baton_plan::expr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let Ok(src) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    // As `baton_gates::kinds::expr::evaluate`: a context that is no JSON fails the gate.
    let Ok(ctx) = serde_json::from_slice::<serde_json::Value>(&data[split + 1..]) else {
        return;
    };
    let Ok(e) = expr::parse(src) else {
        return;
    };
    if let Ok(false) = e.eval_bool(&ctx) {
        let _ = e.explain(&ctx);
    }
    let _ = e.eval(&ctx);
});
