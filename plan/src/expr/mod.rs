//! A small typed expression language for `expr` gates, e.g.
//!
//! ```text
//! tasks.scan.outputs.critical == 0 && tasks.tests.outputs.coverage >= 80
//! ```
//!
//! # Grammar
//!
//! ```text
//! expr       := or
//! or         := and ( "||" and )*
//! and        := not ( "&&" not )*
//! not        := "!" not | comparison
//! comparison := primary ( cmp_op primary )?        -- non-associative
//! cmp_op     := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
//! primary    := number | "-" number | string | "true" | "false"
//!             | name | "(" expr ")" | "[" ( expr ( "," expr )* ","? )? "]"
//! name       := segment ( "." segment )*
//! segment    := [A-Za-z_] [A-Za-z0-9_-]*           -- "-" only between segment chars
//! number     := [0-9]+ ( "." [0-9]+ )?
//! string     := '"' … '"' | "'" … "'"              -- escapes: \" \' \\ \n
//! ```
//!
//! `true`, `false`, `in` and `not` are keywords when they stand alone; inside
//! a dotted name (`tasks.in.outputs.x`) they are ordinary segments. There is
//! deliberately no arithmetic: `-` only negates a number literal, so
//! `a-b` is one name and `a - b` is an error.
//!
//! # Types
//!
//! Values are numbers (f64), strings, booleans and lists of those. Nothing is
//! converted implicitly: `==`/`!=` need both sides of one type, `<`-family
//! operators order numbers or strings, `&&`/`||`/`!` need booleans, and
//! `x in [..]` compares `x` with every item as `==` would. `&&` and `||`
//! short-circuit, so the right side of `true || …` is never evaluated.
//!
//! Every error carries a char offset and a one-line message that says what is
//! wrong and how to fix it, because plan authors only see gate failures long
//! after writing the plan.

mod eval;
mod lexer;
mod lookup;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;

pub use parser::{Expr, MAX_DEPTH, MAX_EXPR_BYTES};

/// Parse a gate expression. Names are not checked here: that needs a context.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    parser::parse(src)
}

impl Expr {
    /// Every dotted name the expression mentions, in order of first appearance, without duplicates.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect_names(&mut names);
        names
    }

    /// Evaluate against a JSON context; names are looked up as paths in it (`tasks.scan.outputs.critical`
    /// → `ctx["tasks"]["scan"]["outputs"]["critical"]`). JSON numbers → Number, strings → String, bools → Bool,
    /// arrays of scalars → List. JSON null, objects and missing paths are errors.
    pub fn eval(&self, ctx: &serde_json::Value) -> Result<Value, ExprError> {
        eval::eval(self, ctx)
    }

    /// Like eval, but the result must be Bool (gates need a verdict).
    pub fn eval_bool(&self, ctx: &serde_json::Value) -> Result<bool, ExprError> {
        match self.eval(ctx)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::new(
                0,
                format!(
                    "expression is {}, not a boolean — a gate needs a comparison such as `x >= 80`",
                    other.type_name()
                ),
            )),
        }
    }
}

impl Expr {
    /// The names the expression reads with their values in `ctx`
    /// (`tasks.scan.outputs.critical = 2, inputs.risk = "low"`): what a
    /// verdict rests on, for a person; a bare "false" helps nobody.
    pub fn explain(&self, ctx: &serde_json::Value) -> String {
        let values: Vec<String> = self
            .names()
            .iter()
            .map(|n| {
                let v = n.split('.').try_fold(ctx, |v, seg| v.get(seg));
                format!(
                    "{n} = {}",
                    v.map(|v| v.to_string()).unwrap_or_else(|| "unset".into())
                )
            })
            .collect();
        values.join(", ")
    }
}

/// The result of evaluating an expression or one of its parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    String(String),
    Bool(bool),
    List(Vec<Value>),
}

impl Value {
    /// With the article, as it reads in messages: "a number".
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Bool(_) => "a boolean",
            Value::List(_) => "a list",
        }
    }
}

/// Numbers print without a trailing `.0` and strings are quoted (and escaped
/// as the lexer would read them back), so `0` and `"0"` never look alike.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::String(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A parse or evaluation error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// 0-based char offset into the source where the problem is (for parse errors and for the name/operator at fault in eval errors).
    pub offset: usize,
    /// What is wrong AND how to fix it, one line, e.g.:
    ///  "unknown name `tasks.scan.outputs.critcal` — did you mean `tasks.scan.outputs.critical`?"
    ///  "unknown name `tasks.scan.outputs.x` — known here: tasks.scan.outputs.critical, tasks.scan.outputs.high"
    ///  "type mismatch: `==` compares a number (tasks.scan.outputs.critical = 0) with a string (\"0\") — compare values of the same type"
    ///  "`&&` needs booleans on both sides, but the left side is a number (12)"
    ///  "unexpected `)` at column 14 — expected a value"
    ///  "unterminated string starting at column 5 — close it with \""
    ///  "comparisons cannot be chained (`a < b < c`) — join them with &&"
    ///  "expression is a number, not a boolean — a gate needs a comparison such as `x >= 80`"
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        ExprError {
            offset,
            message: message.into(),
        }
    }
}
