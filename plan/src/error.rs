//! Diagnostics: one problem found in a plan, with where it is, what is wrong
//! and how to fix it; and the error that carries all of them.

use std::fmt;

/// One problem found in a plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} — {}",
            self.file, self.line, self.col, self.message, self.hint
        )
    }
}

/// Every problem found while loading a plan, sorted by position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_lines(.diagnostics))]
pub struct PlanError {
    pub diagnostics: Vec<Diagnostic>,
}

fn join_lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A position in the plan source: 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub(crate) fn new(line: usize, col: usize) -> Self {
        Pos { line, col }
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub(crate) struct Sink {
    file: String,
    diagnostics: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn new(file: &str) -> Self {
        Sink {
            file: file.to_string(),
            diagnostics: Vec::new(),
        }
    }

    /// Record one problem at `pos`.
    pub(crate) fn err(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// `Ok(value)` when nothing was recorded, else every diagnostic sorted
    /// by line and column (duplicates removed).
    pub(crate) fn finish<T>(self, value: T) -> Result<T, PlanError> {
        if self.diagnostics.is_empty() {
            Ok(value)
        } else {
            Err(self.into_error())
        }
    }

    /// Every diagnostic recorded, sorted by line and column (duplicates removed).
    pub(crate) fn into_error(mut self) -> PlanError {
        // Stable sort: problems at the same spot keep the order they were found.
        self.diagnostics.sort_by_key(|d| (d.line, d.col));
        self.diagnostics.dedup();
        PlanError {
            diagnostics: self.diagnostics,
        }
    }
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// A hint naming the likely intended candidate, or else listing them all.
/// `what` names the list, e.g. "allowed keys" or "declared roles".
pub(crate) fn suggest<'a, I>(word: &str, candidates: I, what: &str) -> String
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    if let Some(c) = did_you_mean(word, candidates.clone()) {
        return format!("did you mean `{c}`?");
    }
    let all: Vec<&str> = candidates.into_iter().collect();
    if all.is_empty() {
        format!("there are no {what}")
    } else {
        format!("{what}: {}", all.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_position_message_and_hint() {
        let d = Diagnostic {
            file: "p.yaml".into(),
            line: 3,
            col: 7,
            message: "unknown key `timout`".into(),
            hint: "did you mean `timeout`?".into(),
        };
        assert_eq!(
            d.to_string(),
            "p.yaml:3:7: unknown key `timout` — did you mean `timeout`?"
        );
    }

    #[test]
    fn finish_sorts_by_position() {
        let mut s = Sink::new("f");
        s.err(Pos::new(5, 1), "b", "");
        s.err(Pos::new(2, 9), "a", "");
        s.err(Pos::new(5, 1), "b", "");
        let e = s.finish(()).unwrap_err();
        let lines: Vec<_> = e.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 5]);
        assert_eq!(e.to_string(), "f:2:9: a — \nf:5:1: b — ");
        assert!(Sink::new("f").finish(1).is_ok());
    }

    #[test]
    fn suggestions() {
        let keys = ["id", "role", "timeout", "retries"];
        assert_eq!(did_you_mean("timout", keys), Some("timeout"));
        assert_eq!(did_you_mean("zzz", keys), None);
        assert_eq!(
            suggest("reties", keys, "allowed keys"),
            "did you mean `retries`?"
        );
        assert_eq!(
            suggest("zzz", keys, "allowed keys"),
            "allowed keys: id, role, timeout, retries"
        );
        assert_eq!(
            suggest("x", [], "declared roles"),
            "there are no declared roles"
        );
    }
}
