//! The forms a secret value may take in output: which parts of a value
//! are searched ([`parts_of`]) and how each part may be encoded
//! ([`forms_of`]).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::MIN_SECRET_BYTES;

/// Lines of a multi-line value this long or shorter are not searched on
/// their own: too common (`-----`, `}`, a word) to redact without garbling
/// output.
pub const MAX_UNREDACTED_LINE_BYTES: usize = 8;

/// Characters left alone by `encodeURIComponent`-style encoders.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The value itself and, for a multi-line value, each line longer than
/// [`MAX_UNREDACTED_LINE_BYTES`] (without its `\r`, and also without the
/// blanks around it, as `read` in a shell strips them), so that a key
/// printed one line per log line is caught line by line.
pub fn parts_of(value: &[u8]) -> Vec<&[u8]> {
    let mut parts = vec![value];
    if value.contains(&b'\n') {
        for line in value.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            for part in [line, line.trim_ascii()] {
                if part.len() > MAX_UNREDACTED_LINE_BYTES && !parts.contains(&part) {
                    parts.push(part);
                }
            }
        }
    }
    parts
}

/// The forms of one value (or part), duplicates allowed; each at least
/// [`MIN_SECRET_BYTES`] long.
pub fn forms_of(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![value.to_vec()];
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(value).into_bytes());
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for shift in 0..=2usize {
            forms.push(shifted_base64(engine, value, shift));
        }
    }
    forms.push(hex(value, b"0123456789abcdef"));
    forms.push(hex(value, b"0123456789ABCDEF"));
    if let Ok(text) = std::str::from_utf8(value) {
        let upper = utf8_percent_encode(text, COMPONENT).to_string();
        forms.push(lower_hex(&upper).into_bytes());
        forms.push(upper.replace("%20", "+").into_bytes());
        forms.push(upper.into_bytes());
        let all = utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        forms.push(all.into_bytes());
        forms.extend(json_forms(text).into_iter().map(String::into_bytes));
    }
    forms.retain(|f| f.len() >= MIN_SECRET_BYTES);
    forms
}

/// Inside the quotes of a JSON string, as encoders write it: serde's and
/// most (only `"`, `\` and control characters escaped), with `/` escaped
/// too (PHP), non-ASCII as `\uXXXX` (Python's `ensure_ascii`, Jackson),
/// `<`, `>`, `&` as `\u00XX` (Go), and every character as `\uXXXX`; the
/// hex digits in lower and upper case.
fn json_forms(text: &str) -> Vec<String> {
    let Ok(quoted) = serde_json::to_string(text) else {
        return Vec::new();
    };
    let plain = quoted[1..quoted.len() - 1].to_string();
    let mut forms = vec![plain.replace('/', "\\/")];
    for upper in [false, true] {
        let ascii: String = plain
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    u_escape(c, upper)
                }
            })
            .collect();
        forms.push(ascii);
        let html: String = plain
            .chars()
            .map(|c| match c {
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => u_escape(c, upper),
                c => c.to_string(),
            })
            .collect();
        forms.push(html);
        forms.push(text.chars().map(|c| u_escape(c, upper)).collect());
    }
    forms.push(plain);
    forms
}

/// `\uXXXX` per UTF-16 code unit (a surrogate pair beyond the BMP).
fn u_escape(c: char, upper: bool) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units)
        .iter()
        .map(|u| {
            if upper {
                format!("\\u{u:04X}")
            } else {
                format!("\\u{u:04x}")
            }
        })
        .collect()
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
    out
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
