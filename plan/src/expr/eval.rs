//! Typed evaluation against a JSON context. There are no implicit
//! conversions: a gate comparing `"0"` with `0` is almost certainly a bug in
//! the plan, so it is reported instead of being guessed at.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::lookup::lookup;
use super::parser::{CmpOp, Expr, Kind};
use super::{ExprError, Value};

pub(crate) fn eval(expr: &Expr, ctx: &Json) -> Result<Value, ExprError> {
    match &expr.kind {
        Kind::Number(n) => Ok(Value::Number(*n)),
        Kind::Str(s) => Ok(Value::String(s.clone())),
        Kind::Bool(b) => Ok(Value::Bool(*b)),
        Kind::Name(path) => lookup(path, expr.offset, ctx),
        Kind::List(items) => items
            .iter()
            .map(|item| match eval(item, ctx)? {
                Value::List(_) => Err(ExprError::new(
                    item.offset,
                    format!(
                        "a list cannot contain another list (column {}) — flatten it",
                        item.offset + 1
                    ),
                )),
                scalar => Ok(scalar),
            })
            .collect::<Result<_, _>>()
            .map(Value::List),
        Kind::Not(inner) => match eval(inner, ctx)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => Err(ExprError::new(
                expr.offset,
                format!(
                    "`!` needs a boolean, but its operand is {} — negate a comparison instead, e.g. `!(x == 0)`",
                    describe(inner, &other)
                ),
            )),
        },
        Kind::And(lhs, rhs) => logic("&&", false, expr.offset, lhs, rhs, ctx),
        Kind::Or(lhs, rhs) => logic("||", true, expr.offset, lhs, rhs, ctx),
        Kind::Compare(op, lhs, rhs) => compare(*op, expr.offset, lhs, rhs, ctx),
    }
}

/// "a number (12)", or "a number (tasks.x.outputs.n = 12)" when the operand
/// is a name, so the author sees both where the value came from and what it was.
fn describe(operand: &Expr, value: &Value) -> String {
    match &operand.kind {
        Kind::Name(path) => format!("{} ({path} = {value})", value.type_name()),
        _ => format!("{} ({value})", value.type_name()),
    }
}

/// `&&` and `||`: `decisive` is the left value that settles the result
/// without looking at the right side.
fn logic(
    op: &str,
    decisive: bool,
    offset: usize,
    lhs: &Expr,
    rhs: &Expr,
    ctx: &Json,
) -> Result<Value, ExprError> {
    let as_bool = |side: &str, operand: &Expr| {
        match eval(operand, ctx)? {
        Value::Bool(b) => Ok(b),
        other => Err(ExprError::new(
            offset,
            format!(
                "`{op}` needs booleans on both sides, but the {side} side is {} — make it a comparison such as `x > 0`",
                describe(operand, &other)
            ),
        )),
    }
    };
    if as_bool("left", lhs)? == decisive {
        return Ok(Value::Bool(decisive));
    }
    as_bool("right", rhs).map(Value::Bool)
}

fn compare(
    op: CmpOp,
    offset: usize,
    lhs: &Expr,
    rhs: &Expr,
    ctx: &Json,
) -> Result<Value, ExprError> {
    let left = eval(lhs, ctx)?;
    let right = eval(rhs, ctx)?;
    let symbol = op.symbol();
    let mismatch = |right_desc: String| {
        ExprError::new(
            offset,
            format!(
                "type mismatch: `{symbol}` compares {} with {right_desc} — compare values of the same type",
                describe(lhs, &left)
            ),
        )
    };
    if matches!(op, CmpOp::In | CmpOp::NotIn) {
        let Value::List(items) = &right else {
            return Err(ExprError::new(
                offset,
                format!(
                    "`{symbol}` needs a list on the right, but it is {} — write a list such as `[\"high\", \"critical\"]`",
                    describe(rhs, &right)
                ),
            ));
        };
        if let Value::List(_) = left {
            return Err(ExprError::new(
                offset,
                format!(
                    "`{symbol}` looks for a single value, but the left side is {} — put a number, string or boolean on the left",
                    describe(lhs, &left)
                ),
            ));
        }
        let mut found = false;
        // Every item is checked, not just those before a match, so a
        // mistyped list fails the same way whatever the left value is.
        for item in items {
            let item_desc = || format!("{} ({item}) in the list", item.type_name());
            found |= scalar_eq(&left, item).ok_or_else(|| mismatch(item_desc()))?;
        }
        return Ok(Value::Bool(found == (op == CmpOp::In)));
    }
    if let (Value::List(_), _) | (_, Value::List(_)) = (&left, &right) {
        return Err(ExprError::new(
            offset,
            format!(
                "`{symbol}` cannot compare lists — use `in` to test membership, e.g. `x in [\"a\", \"b\"]`"
            ),
        ));
    }
    let result = match op {
        CmpOp::Eq => scalar_eq(&left, &right).ok_or_else(|| mismatch(describe(rhs, &right)))?,
        CmpOp::Ne => !scalar_eq(&left, &right).ok_or_else(|| mismatch(describe(rhs, &right)))?,
        _ => {
            let ordering = match (&left, &right) {
                (Value::Number(a), Value::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
                (Value::String(a), Value::String(b)) => a.cmp(b),
                (Value::Bool(_), Value::Bool(_)) => {
                    return Err(ExprError::new(
                        offset,
                        format!(
                            "`{symbol}` orders numbers or strings, but both sides are booleans — use == or != for booleans"
                        ),
                    ))
                }
                _ => return Err(mismatch(describe(rhs, &right))),
            };
            match op {
                CmpOp::Lt => ordering.is_lt(),
                CmpOp::Le => ordering.is_le(),
                CmpOp::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            }
        }
    };
    Ok(Value::Bool(result))
}

/// `None` when the two values are of different types.
fn scalar_eq(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(x == y),
        (Value::String(x), Value::String(y)) => Some(x == y),
        (Value::Bool(x), Value::Bool(y)) => Some(x == y),
        _ => None,
    }
}
