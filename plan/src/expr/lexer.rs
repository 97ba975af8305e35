//! Source text → tokens. Offsets are counted in chars, not bytes, so that the
//! columns in error messages match what an author sees in their editor even
//! when the expression contains non-ASCII text.

use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    Str(String),
    /// A whole dotted name: the parser never needs the segments separately.
    Name(String),
    True,
    False,
    In,
    Not,
    OrOr,
    AndAnd,
    Bang,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Minus,
    Eof,
}

impl Tok {
    /// How the token is named in "unexpected …" messages.
    pub(crate) fn describe(&self) -> String {
        let symbol = match self {
            Tok::Number(n) => return format!("number `{n}`"),
            Tok::Str(s) => return format!("string {}", super::Value::String(s.clone())),
            Tok::Name(n) => return format!("name `{n}`"),
            Tok::Eof => return "end of expression".to_string(),
            Tok::True => "true",
            Tok::False => "false",
            Tok::In => "in",
            Tok::Not => "not",
            Tok::OrOr => "||",
            Tok::AndAnd => "&&",
            Tok::Bang => "!",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Minus => "-",
        };
        format!("`{symbol}`")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) offset: usize,
}

/// Always ends with a `Tok::Eof` token, so the parser can peek without bounds checks.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer {
        chars: src.chars().collect(),
        pos: 0,
    };
    let mut tokens = Vec::new();
    while let Some(c) = lexer.peek(0) {
        if c.is_whitespace() {
            lexer.pos += 1;
            continue;
        }
        let offset = lexer.pos;
        let tok = lexer.token(c)?;
        tokens.push(Token { tok, offset });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        offset: lexer.pos,
    });
    Ok(tokens)
}

fn is_segment_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn token(&mut self, c: char) -> Result<Tok, ExprError> {
        let start = self.pos;
        if c.is_ascii_digit() {
            return self.number();
        }
        if c == '"' || c == '\'' {
            return self.string(c);
        }
        if is_segment_start(c) {
            return self.name();
        }
        let next = self.peek(1);
        let (tok, len) = match (c, next) {
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('=', Some('=')) => (Tok::EqEq, 2),
            ('!', Some('=')) => (Tok::NotEq, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('!', _) => (Tok::Bang, 1),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            (',', _) => (Tok::Comma, 1),
            ('-', _) => (Tok::Minus, 1),
            ('|' | '&' | '=', _) => {
                let col = start + 1;
                return Err(ExprError::new(
                    start,
                    format!("unexpected `{c}` at column {col} — write `{c}{c}`"),
                ));
            }
            _ => {
                return Err(ExprError::new(
                    start,
                    format!(
                        "unexpected character `{c}` at column {} — expressions are made of names, \
                         numbers, quoted strings, ( ), [ ] and the operators || && ! == != < <= > >= in",
                        start + 1
                    ),
                ))
            }
        };
        self.pos += len;
        Ok(tok)
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        self.eat_digits();
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.eat_digits();
        }
        // `80abc`, `1.2.3` and `5.` are typos, not two tokens in a row.
        if self.peek(0).is_some_and(|c| is_segment_char(c) || c == '.') {
            return Err(ExprError::new(
                start,
                format!(
                    "malformed number at column {} — write numbers like `80` or `0.5`",
                    start + 1
                ),
            ));
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        // Only ASCII digits with at most one inner `.` reach here, which f64 always parses.
        Ok(Tok::Number(text.parse().unwrap_or_default()))
    }

    fn eat_digits(&mut self) {
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn string(&mut self, quote: char) -> Result<Tok, ExprError> {
        let start = self.pos;
        let unterminated = || {
            ExprError::new(
                start,
                format!(
                    "unterminated string starting at column {} — close it with {quote}",
                    start + 1
                ),
            )
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self.peek(0).ok_or_else(unterminated)?;
            self.pos += 1;
            if c == quote {
                return Ok(Tok::Str(out));
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let escaped = self.peek(0).ok_or_else(unterminated)?;
            self.pos += 1;
            out.push(match escaped {
                '"' | '\'' | '\\' => escaped,
                'n' => '\n',
                other => {
                    return Err(ExprError::new(
                        self.pos - 2,
                        format!(
                            "unknown escape `\\{other}` at column {} — the escapes are \\\", \\', \\\\ and \\n",
                            self.pos - 1
                        ),
                    ))
                }
            });
        }
    }

    /// A dotted name. A `-` belongs to the name only when it sits between
    /// segment characters (`revert-types`), because task ids contain hyphens
    /// while a free-standing `-` can only be a unary minus.
    fn name(&mut self) -> Result<Tok, ExprError> {
        let start = self.pos;
        loop {
            self.pos += 1;
            loop {
                match self.peek(0) {
                    Some(c) if is_segment_char(c) => self.pos += 1,
                    Some('-') => {
                        let mut end = self.pos;
                        while self.chars.get(end) == Some(&'-') {
                            end += 1;
                        }
                        if !self.chars.get(end).is_some_and(|&c| is_segment_char(c)) {
                            break;
                        }
                        self.pos = end;
                    }
                    _ => break,
                }
            }
            if self.peek(0) != Some('.') {
                break;
            }
            if !self.peek(1).is_some_and(is_segment_start) {
                let so_far: String = self.chars[start..=self.pos].iter().collect();
                return Err(ExprError::new(
                    self.pos + 1,
                    format!(
                        "expected a name segment after `{so_far}` at column {} — segments start with a letter or _",
                        self.pos + 2
                    ),
                ));
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        Ok(match text.as_str() {
            "true" => Tok::True,
            "false" => Tok::False,
            "in" => Tok::In,
            "not" => Tok::Not,
            _ => Tok::Name(text),
        })
    }
}
