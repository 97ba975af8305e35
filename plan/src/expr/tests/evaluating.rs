use serde_json::{json, Value as Json};

use crate::expr::{parse, ExprError, Value};

const ISSUE_EXAMPLE: &str =
    "tasks.scan.outputs.critical == 0 && tasks.tests.outputs.coverage >= 80";

fn ctx() -> Json {
    json!({
        "tasks": {
            "scan": {"outputs": {"critical": 0, "high": 1}},
            "tests": {"outputs": {"coverage": 84}},
            "revert-types": {"outputs": {"done": true}},
        },
        "inputs": {"risk": "high", "tags": ["a", "b"], "delta": -0.25, "nothing": null,
                   "mixed": [1, {"x": 1}], "empty": {}},
    })
}

pub(super) fn eval(src: &str) -> Result<Value, ExprError> {
    parse(src)
        .unwrap_or_else(|e| panic!("{src}: {}", e.message))
        .eval(&ctx())
}

fn yes(src: &str) -> bool {
    parse(src)
        .unwrap_or_else(|e| panic!("{src}: {}", e.message))
        .eval_bool(&ctx())
        .unwrap_or_else(|e| panic!("{src}: {}", e.message))
}

pub(super) fn err(src: &str) -> ExprError {
    eval(src).expect_err("should fail to evaluate")
}

#[test]
fn issue_example_passes_and_fails_on_coverage() {
    let expr = parse(ISSUE_EXAMPLE).unwrap();
    let mut ctx = json!({"tasks":{"scan":{"outputs":{"critical":0,"high":1}},"tests":{"outputs":{"coverage":84}}}});
    assert_eq!(expr.eval_bool(&ctx), Ok(true));
    ctx["tasks"]["tests"]["outputs"]["coverage"] = json!(79);
    assert_eq!(expr.eval_bool(&ctx), Ok(false));
    assert_eq!(
        expr.names(),
        vec![
            "tasks.scan.outputs.critical",
            "tasks.tests.outputs.coverage"
        ]
    );
}

#[test]
fn values_from_context_and_literals() {
    assert_eq!(
        eval("tasks.tests.outputs.coverage"),
        Ok(Value::Number(84.0))
    );
    assert_eq!(eval("inputs.risk"), Ok(Value::String("high".into())));
    assert_eq!(
        eval("tasks.revert-types.outputs.done"),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        eval("inputs.tags"),
        Ok(Value::List(vec![
            Value::String("a".into()),
            Value::String("b".into())
        ]))
    );
    assert_eq!(
        eval("[1, 'x', true]").unwrap().to_string(),
        "[1, \"x\", true]"
    );
    assert_eq!(eval("-3"), Ok(Value::Number(-3.0)));
}

#[test]
fn number_comparisons() {
    for (src, want) in [
        ("1 == 1", true),
        ("1 == 2", false),
        ("1 != 2", true),
        ("1 != 1", false),
        ("1 < 2", true),
        ("2 < 2", false),
        ("2 <= 2", true),
        ("3 <= 2", false),
        ("3 > 2", true),
        ("2 > 2", false),
        ("2 >= 2", true),
        ("1 >= 2", false),
        ("0.5 < 1", true),
        ("-3 < 0", true),
        ("inputs.delta >= -0.5", true),
        ("80 == 80.0", true),
    ] {
        assert_eq!(yes(src), want, "{src}");
    }
}

#[test]
fn string_comparisons_are_lexicographic() {
    for (src, want) in [
        ("'a' == \"a\"", true),
        ("'a' != 'b'", true),
        ("'abc' < 'abd'", true),
        ("'B' < 'a'", true),
        ("'ab' < 'a'", false),
        ("'b' >= 'b'", true),
        ("'b' > 'abc'", true),
        ("'' <= 'a'", true),
        ("inputs.risk == 'high'", true),
    ] {
        assert_eq!(yes(src), want, "{src}");
    }
}

#[test]
fn string_escapes_evaluate() {
    assert!(yes(r#"'it\'s' == "it's""#));
    assert!(yes(r#""a\\b\nc" == 'a\\b\nc'"#));
    assert_eq!(
        eval(r#""say \"hi\"\n""#).unwrap().to_string(),
        r#""say \"hi\"\n""#
    );
}

#[test]
fn booleans_and_logic() {
    for (src, want) in [
        ("true == true", true),
        ("true != false", true),
        ("true && true", true),
        ("true && false", false),
        ("false && true", false),
        ("true || false", true),
        ("false || true", true),
        ("false || false", false),
        ("!true", false),
        ("!false", true),
        ("!!true", true),
        ("!false && false || true", true),
        ("!(false && false || true)", false),
        (
            "tasks.revert-types.outputs.done && inputs.risk != 'low'",
            true,
        ),
    ] {
        assert_eq!(yes(src), want, "{src}");
    }
}

#[test]
fn membership() {
    for (src, want) in [
        ("inputs.risk in ['high', 'critical']", true),
        ("inputs.risk not in ['high', 'critical']", false),
        ("'low' in ['high', 'critical']", false),
        ("'low' not in ['high', 'critical']", true),
        ("1 in [0, 1.0, 2]", true),
        ("true in [false]", false),
        ("1 in []", false),
        ("'a' in inputs.tags", true),
        ("'c' not in inputs.tags", true),
        (
            "tasks.scan.outputs.critical in [tasks.scan.outputs.high, 0]",
            true,
        ),
    ] {
        assert_eq!(yes(src), want, "{src}");
    }
}

#[test]
fn and_or_short_circuit() {
    assert!(yes("true || tasks.nope.outputs.x == 1"));
    assert!(!yes("false && tasks.nope.outputs.x == 1"));
    assert!(yes("true || 1"));
    assert!(err("false || tasks.nope.outputs.x == 1")
        .message
        .starts_with("unknown name"));
    assert!(err("true && tasks.nope.outputs.x == 1")
        .message
        .starts_with("unknown name"));
}

#[test]
fn equality_needs_one_type() {
    let e = err("tasks.scan.outputs.critical == \"0\"");
    assert_eq!(e.offset, 28);
    assert_eq!(
        e.message,
        "type mismatch: `==` compares a number (tasks.scan.outputs.critical = 0) with a string (\"0\") — compare values of the same type"
    );
    assert_eq!(
        err("true != 1").message,
        "type mismatch: `!=` compares a boolean (true) with a number (1) — compare values of the same type"
    );
    assert!(err("'x' == inputs.tags")
        .message
        .contains("cannot compare lists"));
}

#[test]
fn ordering_needs_numbers_or_strings() {
    let e = err("inputs.risk < 3");
    assert_eq!(e.offset, 12);
    assert_eq!(
        e.message,
        "type mismatch: `<` compares a string (inputs.risk = \"high\") with a number (3) — compare values of the same type"
    );
    assert_eq!(
        err("true >= false").message,
        "`>=` orders numbers or strings, but both sides are booleans — use == or != for booleans"
    );
    assert!(err("[1] <= [2]")
        .message
        .starts_with("`<=` cannot compare lists"));
}

#[test]
fn logic_needs_booleans() {
    let e = err("12 && true");
    assert_eq!(e.offset, 3);
    assert!(
        e.message.starts_with(
            "`&&` needs booleans on both sides, but the left side is a number (12) — "
        ),
        "{}",
        e.message
    );
    assert!(err("true && 'x'")
        .message
        .contains("the right side is a string (\"x\")"));
    assert!(err("false || inputs.risk")
        .message
        .starts_with("`||` needs booleans on both sides, but the right side is a string (inputs.risk = \"high\")"));
    let e = err("1 == 1 && !inputs.delta");
    assert_eq!(e.offset, 10);
    assert!(e
        .message
        .starts_with("`!` needs a boolean, but its operand is a number (inputs.delta = -0.25)"));
}

#[test]
fn membership_type_errors() {
    let e = err("inputs.risk in 'high'");
    assert_eq!(e.offset, 12);
    assert!(e
        .message
        .starts_with("`in` needs a list on the right, but it is a string (\"high\")"));
    assert!(err("inputs.tags not in [1]")
        .message
        .starts_with("`not in` looks for a single value"));
    assert_eq!(
        err("tasks.scan.outputs.critical in ['0', '1']").message,
        "type mismatch: `in` compares a number (tasks.scan.outputs.critical = 0) with a string (\"0\") in the list — compare values of the same type"
    );
    // Items after a match are still checked.
    assert!(err("1 in [1, 'x']").message.starts_with("type mismatch"));
    let e = err("1 in [[1]]");
    assert_eq!(e.offset, 6);
    assert_eq!(
        e.message,
        "a list cannot contain another list (column 7) — flatten it"
    );
}

#[test]
fn gate_verdict_must_be_boolean() {
    let e = parse("tasks.tests.outputs.coverage")
        .unwrap()
        .eval_bool(&ctx())
        .unwrap_err();
    assert_eq!(e.offset, 0);
    assert_eq!(
        e.message,
        "expression is a number, not a boolean — a gate needs a comparison such as `x >= 80`"
    );
    let e = parse("inputs.tags").unwrap().eval_bool(&ctx()).unwrap_err();
    assert!(e.message.starts_with("expression is a list, not a boolean"));
}

#[test]
fn value_display() {
    assert_eq!(Value::Number(12.0).to_string(), "12");
    assert_eq!(Value::Number(0.5).to_string(), "0.5");
    assert_eq!(Value::Number(-3.0).to_string(), "-3");
    assert_eq!(Value::String("abc".into()).to_string(), "\"abc\"");
    assert_eq!(Value::Bool(true).to_string(), "true");
    let list = Value::List(vec![Value::String("a".into()), Value::String("b".into())]);
    assert_eq!(list.to_string(), "[\"a\", \"b\"]");
    assert_eq!(Value::List(vec![]).to_string(), "[]");
}

#[test]
fn error_displays_its_message() {
    let e = err("zzz");
    assert_eq!(e.to_string(), e.message);
}
