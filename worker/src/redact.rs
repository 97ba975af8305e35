//! Redaction of an attempt's secret values from everything the worker emits.
//!
//! A [`Redactor`] is built per attempt from the resolved secret values. Each
//! value is searched in its *forms*: the raw bytes, standard and URL-safe
//! base64 (padded and not), the base64 of the value at the two other byte
//! alignments (so a secret inside a longer base64 text, e.g. `user:TOKEN` in
//! a basic-auth header, is caught too), percent-encoding (upper and lower
//! case hex, `+` for spaces as forms do) and the JSON string escape. Every
//! occurrence becomes `[REDACTED:<name>]`.
//!
//! Output arrives in chunks, and a value may straddle two of them:
//! [`StreamRedactor`] holds back the longest end of what it has seen that is
//! still the beginning of some form (at most the longest form − 1 bytes) and
//! emits it with the next chunk or at [`StreamRedactor::finish`].

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Shorter values are refused: redacting them would garble ordinary output.
pub const MIN_SECRET_BYTES: usize = 4;

/// Characters left alone by `encodeURIComponent`-style encoders.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The forms of every secret of one attempt, longest first.
#[derive(Debug, Default)]
pub struct Redactor {
    /// (form, replacement); longest form first so the widest match wins.
    forms: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Redactor {
    /// `secrets`: (name, value). Values shorter than [`MIN_SECRET_BYTES`]
    /// are the caller's to refuse; here they are ignored.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut forms = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_BYTES {
                continue;
            }
            let replacement = format!("[REDACTED:{name}]").into_bytes();
            for form in forms_of(value) {
                forms.push((form, replacement.clone()));
            }
        }
        forms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        forms.dedup_by(|a, b| a.0 == b.0);
        Self { forms }
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// The longest form, in bytes (0 without secrets).
    pub fn longest(&self) -> usize {
        self.forms.first().map_or(0, |f| f.0.len())
    }

    /// Every form, for tests that search stored bytes.
    pub fn forms(&self) -> impl Iterator<Item = &[u8]> {
        self.forms.iter().map(|f| f.0.as_slice())
    }

    pub fn bytes(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        self.scan(input, &mut out, false);
        out
    }

    pub fn str(&self, input: &str) -> String {
        if self.is_empty() {
            return input.to_string();
        }
        String::from_utf8_lossy(&self.bytes(input.as_bytes())).into_owned()
    }

    /// Appends `input` to `out` with every form replaced; when `hold`, stops
    /// at the first position whose rest may still become a form and returns
    /// it. Returns where it stopped.
    fn scan(&self, input: &[u8], out: &mut Vec<u8>, hold: bool) -> usize {
        let mut i = 0;
        'outer: while i < input.len() {
            let rest = &input[i..];
            for (form, replacement) in &self.forms {
                if rest.starts_with(form) {
                    out.extend_from_slice(replacement);
                    i += form.len();
                    continue 'outer;
                }
            }
            if hold && self.forms.iter().any(|(f, _)| f.starts_with(rest)) {
                return i;
            }
            out.push(input[i]);
            i += 1;
        }
        i
    }
}

/// Redacts one output stream, chunk by chunk.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    pending: Vec<u8>,
}

impl StreamRedactor {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            redactor,
            pending: Vec::new(),
        }
    }

    /// What of the stream so far can be emitted safely.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let stop = self.redactor.scan(&self.pending, &mut out, true);
        self.pending.drain(..stop);
        out
    }

    /// The end of the stream: what was held back, redacted.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.bytes(&rest)
    }
}

/// The forms of one value that differ from each other.
fn forms_of(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![value.to_vec()];
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(value).into_bytes());
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for shift in 0..=2usize {
            forms.push(shifted_base64(engine, value, shift));
        }
    }
    if let Ok(text) = std::str::from_utf8(value) {
        let upper = utf8_percent_encode(text, COMPONENT).to_string();
        forms.push(lower_hex(&upper).into_bytes());
        forms.push(upper.replace("%20", "+").into_bytes());
        forms.push(upper.into_bytes());
        let all = utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        forms.push(all.into_bytes());
        if let Ok(json) = serde_json::to_string(text) {
            forms.push(json.as_bytes()[1..json.len() - 1].to_vec());
        }
    }
    forms.retain(|f| f.len() >= MIN_SECRET_BYTES);
    forms
}

/// The base64 characters that depend only on `value` when it starts
/// `shift` bytes into a longer base64-encoded text.
fn shifted_base64(engine: &impl Engine, value: &[u8], shift: usize) -> Vec<u8> {
    let mut padded = vec![0u8; shift];
    padded.extend_from_slice(value);
    let text = engine.encode(&padded).into_bytes();
    let start = (shift * 8).div_ceil(6);
    let end = (padded.len() * 8) / 6;
    text[start.min(end)..end].to_vec()
}

fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut after_percent = 0;
    for c in encoded.chars() {
        if c == '%' {
            after_percent = 2;
            out.push(c);
        } else if after_percent > 0 {
            after_percent -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
