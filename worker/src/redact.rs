//! Redaction of an attempt's secret values from everything the worker emits.
//!
//! A [`Redactor`] is built per attempt from the resolved secret values. Each
//! value is searched in its *forms*: the raw bytes, standard and URL-safe
//! base64 (padded and not), the base64 of the value at the two other byte
//! alignments (so a secret inside a longer base64 text, e.g. `user:TOKEN` in
//! a basic-auth header, is caught too), lower- and upper-case hex,
//! percent-encoding (upper and lower case hex, `+` for spaces as forms do)
//! and JSON string escapes (plain, `\/`, `\uXXXX` for non-ASCII, for `<>&`,
//! or for every character, in either case). A multi-line value is also
//! searched line by line: each line longer than 8 bytes, in every form
//! ([`forms::parts_of`]). Every occurrence becomes `[REDACTED:<name>]`.
//!
//! All forms go into one Aho-Corasick automaton ([`automaton`]): a pass
//! over the output costs one transition per byte however many forms there
//! are; the widest of the matches starting leftmost wins.
//!
//! Output arrives in chunks, and a value may straddle two of them:
//! [`StreamRedactor`] holds back the longest end of what it has seen that is
//! still the beginning of some form (at most the longest form − 1 bytes, or
//! a whole form while a longer one starting there may still complete) and
//! emits it with the next chunk or at [`StreamRedactor::finish`].
//!
//! Artifact names pass [`Redactor::str`] too (`artifacts::names`).

mod automaton;
mod forms;

use std::sync::Arc;

use automaton::{Automaton, Cursor};

pub use forms::MAX_UNREDACTED_LINE_BYTES;

/// Shorter values are refused: redacting them would garble ordinary output.
pub const MIN_SECRET_BYTES: usize = 4;

/// The forms of every secret of one attempt.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Every form, longest first.
    forms: Vec<Vec<u8>>,
    /// For each form, its index in `replacements`.
    names: Vec<u32>,
    /// `[REDACTED:<name>]` per secret.
    replacements: Vec<Vec<u8>>,
    automaton: Automaton,
}

impl Redactor {
    /// `secrets`: (name, value). Values shorter than [`MIN_SECRET_BYTES`]
    /// are the caller's to refuse; here they are ignored. A form shared by
    /// two secrets is named after the first.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut replacements = Vec::new();
        let mut all: Vec<(Vec<u8>, u32)> = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_BYTES {
                continue;
            }
            let id = replacements.len() as u32;
            replacements.push(format!("[REDACTED:{name}]").into_bytes());
            for part in forms::parts_of(value) {
                all.extend(forms::forms_of(part).into_iter().map(|f| (f, id)));
            }
        }
        // Longest first, then by bytes, then by secret: dedup keeps the
        // first secret's name.
        all.sort_by(|a, b| {
            b.0.len()
                .cmp(&a.0.len())
                .then_with(|| a.0.cmp(&b.0))
                .then_with(|| a.1.cmp(&b.1))
        });
        all.dedup_by(|a, b| a.0 == b.0);
        let (forms, names): (Vec<_>, Vec<_>) = all.into_iter().unzip();
        let automaton = Automaton::new(forms.iter().map(Vec::as_slice));
        Self {
            forms,
            names,
            replacements,
            automaton,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// The longest form, in bytes (0 without secrets).
    pub fn longest(&self) -> usize {
        self.forms.first().map_or(0, Vec::len)
    }

    /// Every form, for tests that search stored bytes.
    pub fn forms(&self) -> impl Iterator<Item = &[u8]> {
        self.forms.iter().map(Vec::as_slice)
    }

    /// States of the automaton (about 21 bytes each), for sizing.
    pub fn states(&self) -> usize {
        self.automaton.states()
    }

    pub fn bytes(&self, input: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return input.to_vec();
        }
        let mut out = Vec::with_capacity(input.len());
        self.scan(input, &mut Cursor::default(), true, &mut out);
        out
    }

    pub fn str(&self, input: &str) -> String {
        if self.is_empty() {
            return input.to_string();
        }
        String::from_utf8_lossy(&self.bytes(input.as_bytes())).into_owned()
    }

    /// Appends `buf` to `out` with every final match replaced; without
    /// `end`, stops where a match may still begin or grow. Returns how much
    /// of `buf` is done with.
    fn scan(&self, buf: &[u8], cursor: &mut Cursor, end: bool, out: &mut Vec<u8>) -> usize {
        let mut copied = 0;
        let stop = self.automaton.scan(buf, cursor, end, |m| {
            out.extend_from_slice(&buf[copied..m.start]);
            out.extend_from_slice(&self.replacements[self.names[m.pattern as usize] as usize]);
            copied = m.end;
        });
        let upto = if end { buf.len() } else { stop };
        out.extend_from_slice(&buf[copied..upto]);
        upto
    }
}

/// Redacts one output stream, chunk by chunk.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    /// What may still be (part of) a form, and where the scan of it stands.
    pending: Vec<u8>,
    cursor: Cursor,
}

impl StreamRedactor {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            redactor,
            pending: Vec::new(),
            cursor: Cursor::default(),
        }
    }

    /// What of the stream so far can be emitted safely.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let done = self
            .redactor
            .scan(&self.pending, &mut self.cursor, false, &mut out);
        self.pending.drain(..done);
        self.cursor.shift(done);
        out
    }

    /// The end of the stream: what was held back, redacted.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        let mut cursor = std::mem::take(&mut self.cursor);
        let mut out = Vec::with_capacity(rest.len());
        self.redactor.scan(&rest, &mut cursor, true, &mut out);
        out
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
