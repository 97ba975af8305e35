//! The AST and a recursive-descent parser with one function per precedence
//! level (`||` < `&&` < `!` < comparisons < primary).
//!
//! Comparisons take primaries on both sides rather than full expressions:
//! that is what makes them non-associative, and it keeps `a == !b` from
//! silently meaning something surprising.

use super::lexer::{lex, Tok, Token};
use super::ExprError;

/// A parsed expression. Build one with [`super::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub(crate) kind: Kind,
    /// Where eval errors about this node point: the start of a literal or
    /// name, or the operator of a unary/binary node.
    pub(crate) offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Number(f64),
    Str(String),
    Bool(bool),
    List(Vec<Expr>),
    Name(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

impl CmpOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
        }
    }
}

impl Expr {
    fn new(kind: Kind, offset: usize) -> Self {
        Expr { kind, offset }
    }

    pub(crate) fn collect_names(&self, out: &mut Vec<String>) {
        match &self.kind {
            Kind::Name(name) => {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            Kind::List(items) => items.iter().for_each(|item| item.collect_names(out)),
            Kind::Not(inner) => inner.collect_names(out),
            Kind::And(lhs, rhs) | Kind::Or(lhs, rhs) | Kind::Compare(_, lhs, rhs) => {
                lhs.collect_names(out);
                rhs.collect_names(out);
            }
            Kind::Number(_) | Kind::Str(_) | Kind::Bool(_) => {}
        }
    }
}

/// Longest expression accepted, in bytes: gate expressions are conditions,
/// not programs, and the bound keeps parsing and evaluation cheap.
pub const MAX_EXPR_BYTES: usize = 4096;
/// Deepest nesting of `(`, `[` and `!`: the parser and the evaluator recurse
/// once per level, so an unbounded depth would overflow the stack.
pub const MAX_DEPTH: usize = 32;

pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    if src.len() > MAX_EXPR_BYTES {
        return Err(ExprError::new(
            0,
            format!(
                "expression is {} bytes, more than the limit of {MAX_EXPR_BYTES} — split it into several gates",
                src.len()
            ),
        ));
    }
    let tokens = lex(src)?;
    if tokens.len() == 1 {
        return Err(ExprError::new(
            0,
            "empty expression — write a condition such as `tasks.tests.outputs.coverage >= 80`",
        ));
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    let next = parser.peek().clone();
    if next.tok != Tok::Eof {
        return Err(trailing(&next));
    }
    Ok(expr)
}

/// A complete expression was followed by something that cannot continue it.
fn trailing(token: &Token) -> ExprError {
    let col = token.offset + 1;
    let hint = match &token.tok {
        Tok::Minus => "arithmetic is not supported".to_string(),
        Tok::RParen => "there is no `(` for it to close".to_string(),
        Tok::Name(word) if word == "and" => "write `&&` for \"and\"".to_string(),
        Tok::Name(word) if word == "or" => "write `||` for \"or\"".to_string(),
        _ => "expected an operator such as &&, || or ==".to_string(),
    };
    ExprError::new(
        token.offset,
        format!(
            "unexpected {} at column {col} — {hint}",
            token.tok.describe()
        ),
    )
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Open `(`, `[` and `!` around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `lex` guarantees a trailing Eof, and `bump` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    /// Enter one nesting level at `offset`, or refuse past [`MAX_DEPTH`].
    fn enter(&mut self, offset: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::new(
                offset,
                format!(
                    "nesting at column {} is deeper than {MAX_DEPTH} levels of `(`, `[` or `!` — simplify the expression",
                    offset + 1
                ),
            ));
        }
        Ok(())
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.and()?;
        while self.peek().tok == Tok::OrOr {
            let offset = self.bump().offset;
            let rhs = self.and()?;
            lhs = Expr::new(Kind::Or(Box::new(lhs), Box::new(rhs)), offset);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.not()?;
        while self.peek().tok == Tok::AndAnd {
            let offset = self.bump().offset;
            let rhs = self.not()?;
            lhs = Expr::new(Kind::And(Box::new(lhs), Box::new(rhs)), offset);
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.peek().tok == Tok::Bang {
            let offset = self.bump().offset;
            self.enter(offset)?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::new(Kind::Not(Box::new(inner)), offset));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let lhs = self.primary()?;
        let Some((op, offset)) = self.comparison_op()? else {
            return Ok(lhs);
        };
        let rhs = self.primary()?;
        let next = self.peek();
        if self.starts_comparison() {
            return Err(ExprError::new(
                next.offset,
                "comparisons cannot be chained (`a < b < c`) — join them with &&",
            ));
        }
        Ok(Expr::new(
            Kind::Compare(op, Box::new(lhs), Box::new(rhs)),
            offset,
        ))
    }

    fn starts_comparison(&self) -> bool {
        matches!(
            self.peek().tok,
            Tok::EqEq | Tok::NotEq | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge | Tok::In | Tok::Not
        )
    }

    fn comparison_op(&mut self) -> Result<Option<(CmpOp, usize)>, ExprError> {
        let op = match self.peek().tok {
            Tok::EqEq => CmpOp::Eq,
            Tok::NotEq => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::In => CmpOp::In,
            Tok::Not => CmpOp::NotIn,
            _ => return Ok(None),
        };
        let offset = self.bump().offset;
        if op == CmpOp::NotIn && self.bump().tok != Tok::In {
            return Err(ExprError::new(
                offset,
                format!(
                    "`not` at column {} must be followed by `in` — use `!` to negate a condition",
                    offset + 1
                ),
            ));
        }
        Ok(Some((op, offset)))
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let token = self.bump();
        let offset = token.offset;
        let col = offset + 1;
        let kind = match token.tok {
            Tok::Number(n) => Kind::Number(n),
            Tok::Str(s) => Kind::Str(s),
            Tok::True => Kind::Bool(true),
            Tok::False => Kind::Bool(false),
            Tok::Name(name) => Kind::Name(name),
            Tok::Minus => match self.bump().tok {
                Tok::Number(n) => Kind::Number(-n),
                _ => {
                    return Err(ExprError::new(
                        offset,
                        format!(
                            "`-` at column {col} can only negate a number literal such as `-3` — arithmetic is not supported"
                        ),
                    ))
                }
            },
            Tok::LParen => {
                self.enter(offset)?;
                let inner = self.or()?;
                self.depth -= 1;
                let close = self.bump();
                if close.tok != Tok::RParen {
                    return Err(ExprError::new(
                        close.offset,
                        format!(
                            "expected `)` to close the `(` at column {col}, found {} at column {} — add the missing `)`",
                            close.tok.describe(),
                            close.offset + 1
                        ),
                    ));
                }
                return Ok(inner);
            }
            Tok::LBracket => {
                self.enter(offset)?;
                let items = self.list_items(col)?;
                self.depth -= 1;
                Kind::List(items)
            }
            Tok::Bang => {
                return Err(ExprError::new(
                    offset,
                    format!(
                        "unexpected `!` at column {col} — `!` negates a whole comparison; wrap it in parentheses, e.g. `a == (!b)`"
                    ),
                ))
            }
            other => {
                return Err(ExprError::new(
                    offset,
                    format!("unexpected {} at column {col} — expected a value", other.describe()),
                ))
            }
        };
        Ok(Expr::new(kind, offset))
    }

    /// Items after an opening `[` at column `open_col`; a trailing comma is
    /// accepted because multi-line YAML lists tend to grow one.
    fn list_items(&mut self, open_col: usize) -> Result<Vec<Expr>, ExprError> {
        let mut items = Vec::new();
        loop {
            if self.peek().tok == Tok::RBracket {
                self.bump();
                return Ok(items);
            }
            items.push(self.or()?);
            let sep = self.bump();
            match sep.tok {
                Tok::Comma => {}
                Tok::RBracket => return Ok(items),
                other => {
                    return Err(ExprError::new(
                        sep.offset,
                        format!(
                            "expected `,` or `]` in the list opened at column {open_col}, found {} at column {} — separate items with commas",
                            other.describe(),
                            sep.offset + 1
                        ),
                    ))
                }
            }
        }
    }
}
