//! Name resolution: what a gate author sees after mistyping an output name.

use serde_json::{json, Value as Json};

use super::evaluating::err;
use crate::expr::{parse, ExprError};

/// The error of evaluating `src` in `ctx`.
fn err_in(src: &str, ctx: Json) -> ExprError {
    parse(src).unwrap().eval(&ctx).unwrap_err()
}

#[test]
fn unknown_name_with_a_close_sibling_suggests_it() {
    let e = err("1 == 1 && tasks.scan.outputs.critcal == 0");
    assert_eq!(e.offset, 10);
    assert_eq!(
        e.message,
        "unknown name `tasks.scan.outputs.critcal` — did you mean `tasks.scan.outputs.critical`?"
    );
    // A typo in a middle segment: the whole corrected path is offered when it exists...
    assert_eq!(
        err("tasks.scna.outputs.critical").message,
        "unknown name `tasks.scna.outputs.critical` — did you mean `tasks.scan.outputs.critical`?"
    );
    // ...and only the part known to be right when it does not.
    assert_eq!(
        err("tasks.scna.outputs.nope").message,
        "unknown name `tasks.scna.outputs.nope` — did you mean `tasks.scan`?"
    );
    assert_eq!(
        err("input.risk").message,
        "unknown name `input.risk` — did you mean `inputs.risk`?"
    );
}

#[test]
fn unknown_name_without_a_close_sibling_lists_the_known_ones() {
    let e = err("tasks.scan.outputs.x");
    assert_eq!(e.offset, 0);
    assert_eq!(
        e.message,
        "unknown name `tasks.scan.outputs.x` — known here: tasks.scan.outputs.critical, tasks.scan.outputs.high"
    );
    assert_eq!(
        err("zzz").message,
        "unknown name `zzz` — known here: inputs, tasks"
    );
    let many: serde_json::Map<String, Json> =
        (0..11).map(|i| (format!("key{i:02}"), json!(i))).collect();
    let e = err_in("o.zzz", json!({ "o": many }));
    assert_eq!(
        e.message,
        "unknown name `o.zzz` — known here: o.key00, o.key01, o.key02, o.key03, o.key04, o.key05, o.key06, o.key07 and 3 more"
    );
}

#[test]
fn unknown_name_in_degenerate_contexts() {
    assert_eq!(
        err("inputs.empty.x").message,
        "unknown name `inputs.empty.x` — `inputs.empty` has no fields"
    );
    let e = err_in("a", json!({}));
    assert_eq!(
        e.message,
        "unknown name `a` — the evaluation context is empty"
    );
    let e = err_in("a", json!(null));
    assert_eq!(
        e.message,
        "unknown name `a` — the evaluation context has no fields"
    );
    assert_eq!(
        err("tasks.scan.outputs.critical.x").message,
        "unknown name `tasks.scan.outputs.critical.x` — `tasks.scan.outputs.critical` is a number (0), which has no fields — use `tasks.scan.outputs.critical` itself"
    );
}

#[test]
fn null_object_and_nested_values_are_errors() {
    let e = err("1 == 1 && inputs.nothing == 1");
    assert_eq!(e.offset, 10);
    assert!(
        e.message.starts_with("`inputs.nothing` is null — "),
        "{}",
        e.message
    );
    assert_eq!(
        err("tasks.scan.outputs == 1").message,
        "`tasks.scan.outputs` is an object, not a value — pick one of its fields, e.g. `tasks.scan.outputs.critical`"
    );
    assert!(err("1 in inputs.mixed")
        .message
        .starts_with("`inputs.mixed` is a list holding an object at index 1"));
}

#[test]
fn a_close_sibling_holding_a_dot_is_suggested_once() {
    // Found by fuzzing the `expr` gate with a context off the bus: `sc.an`
    // is closest to `scan`, the corrected path re-split on its dot missed
    // again, and the suggestion recursed until the stack overflowed.
    let ctx = json!({"tasks": {"sc.an": {"7utputs": {"critical": 0}}}});
    let e = err_in("tasks.scan.outputs.critical == \"0\"", ctx);
    assert_eq!(
        e.message,
        "unknown name `tasks.scan.outputs.critical` — did you mean `tasks.sc.an`?"
    );
    // A corrected path that exists through the dotted key is offered whole.
    let ctx = json!({"tasks": {"sc.an": {"outputs": {"critical": 0}}}});
    let e = err_in("tasks.scan.outputs.critical == 0", ctx);
    assert_eq!(
        e.message,
        "unknown name `tasks.scan.outputs.critical` — did you mean `tasks.sc.an.outputs.critical`?"
    );
}
