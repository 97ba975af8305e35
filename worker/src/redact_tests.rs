use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use super::*;

const SECRET: &[u8] = b"s3cr3t/v+lue?&=x y";

fn redactor() -> Arc<Redactor> {
    Arc::new(Redactor::new([("tok", SECRET)]))
}

fn leaks(out: &[u8], r: &Redactor) -> bool {
    r.forms().any(|f| out.windows(f.len()).any(|w| w == f))
}

#[test]
fn every_form_is_replaced() {
    let r = redactor();
    let text = SECRET.to_vec();
    let shown = [
        text.clone(),
        STANDARD.encode(SECRET).into_bytes(),
        URL_SAFE_NO_PAD.encode(SECRET).into_bytes(),
        b"s3cr3t%2Fv%2Blue%3F%26%3Dx%20y".to_vec(),
        b"s3cr3t%2fv%2blue%3f%26%3dx%20y".to_vec(),
        b"s3cr3t%2Fv%2Blue%3F%26%3Dx+y".to_vec(),
    ];
    for form in shown {
        let mut line = b"before ".to_vec();
        line.extend_from_slice(&form);
        line.extend_from_slice(b" after");
        let out = r.bytes(&line);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "before [REDACTED:tok] after",
            "form {:?}",
            String::from_utf8_lossy(&form)
        );
    }
}

#[test]
fn base64_inside_a_longer_text_is_caught_at_any_alignment() {
    let r = redactor();
    for prefix in ["", "u", "us", "user:"] {
        let mut plain = prefix.as_bytes().to_vec();
        plain.extend_from_slice(SECRET);
        plain.extend_from_slice(b"!tail");
        let encoded = STANDARD.encode(&plain);
        let out = r.str(&encoded);
        assert!(out.contains("[REDACTED:tok]"), "prefix {prefix:?}: {out}");
        // What is left must not decode back to the secret.
        assert!(!leaks(out.as_bytes(), &r), "prefix {prefix:?}: {out}");
    }
}

#[test]
fn a_value_split_at_every_point_is_caught() {
    let r = redactor();
    let forms: Vec<Vec<u8>> = r.forms().map(<[u8]>::to_vec).collect();
    for form in forms {
        let mut stream = b"log: ".to_vec();
        stream.extend_from_slice(&form);
        stream.extend_from_slice(b" done\n");
        for cut in 0..=stream.len() {
            let mut s = StreamRedactor::new(r.clone());
            let mut out = s.push(&stream[..cut]);
            out.extend(s.push(&stream[cut..]));
            out.extend(s.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "log: [REDACTED:tok] done\n",
                "form {:?} cut at {cut}",
                String::from_utf8_lossy(&form)
            );
        }
    }
}

#[test]
fn byte_by_byte_stream_is_caught_and_nothing_is_lost() {
    let r = redactor();
    let mut stream = b"a".to_vec();
    stream.extend_from_slice(SECRET);
    stream.extend_from_slice(b"b s3cr3");
    let mut s = StreamRedactor::new(r.clone());
    let mut out = Vec::new();
    for b in &stream {
        out.extend(s.push(std::slice::from_ref(b)));
    }
    // A prefix of the value at the very end is held until the stream ends.
    assert_eq!(String::from_utf8_lossy(&out), "a[REDACTED:tok]b ");
    out.extend(s.finish());
    assert_eq!(String::from_utf8_lossy(&out), "a[REDACTED:tok]b s3cr3");
}

#[test]
fn unrelated_output_passes_at_once() {
    let mut s = StreamRedactor::new(redactor());
    assert_eq!(s.push(b"hello world\n"), b"hello world\n");
    assert_eq!(s.finish(), b"");
}

#[test]
fn json_escaped_value_is_caught() {
    let r = Redactor::new([("q", &b"pa\"ss\\word"[..])]);
    let json = serde_json::json!({ "v": "pa\"ss\\word" }).to_string();
    assert_eq!(r.str(&json), "{\"v\":\"[REDACTED:q]\"}");
}

#[test]
fn two_secrets_get_their_own_names() {
    let r = Redactor::new([("a", &b"alpha-123"[..]), ("b", &b"bravo-456"[..])]);
    assert_eq!(
        r.str("alpha-123 and bravo-456"),
        "[REDACTED:a] and [REDACTED:b]"
    );
}

#[test]
fn without_secrets_nothing_changes() {
    let r = Redactor::new(std::iter::empty());
    assert!(r.is_empty());
    assert_eq!(r.str("anything"), "anything");
}
