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

// --- Multi-line values, hex and JSON `\u` escapes (computed here, independently
// of the redactor's own form list).

/// Four lines over 8 bytes, one of exactly 8 (left alone), one shorter.
const PEM: &str = "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy\nshort=42\n9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIK+/=\nend\n-----END TEST KEY-----";

/// `hex` as is, or with its letters in upper case.
fn cased(hex: String, upper: bool) -> String {
    if upper {
        hex.to_uppercase()
    } else {
        hex
    }
}

fn hex_of(value: &[u8], upper: bool) -> String {
    cased(value.iter().map(|b| format!("{b:02x}")).collect(), upper)
}

/// Every character as `\uXXXX` (UTF-16 code units, so astral characters
/// become surrogate pairs).
fn unicode_escaped(value: &str, upper: bool) -> String {
    value
        .encode_utf16()
        .map(|u| format!("\\u{}", cased(format!("{u:04x}"), upper)))
        .collect()
}

/// What `json.dumps` (ensure_ascii) writes inside the quotes: ASCII as is,
/// the rest as `\uXXXX` (Jackson: upper-case hex).
fn ascii_only_json(value: &str, upper: bool) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                unicode_escaped(&c.to_string(), upper)
            }
        })
        .collect()
}

fn long_lines(value: &str) -> Vec<&str> {
    value.lines().filter(|l| l.len() > 8).collect()
}

#[test]
fn multi_line_value_is_redacted_line_by_line() {
    let r = Redactor::new([("pem", PEM.as_bytes())]);
    assert_eq!(long_lines(PEM).len(), 4);
    // Printed whole: one marker.
    assert_eq!(r.str(&format!("key: {PEM}\n")), "key: [REDACTED:pem]\n");
    // Printed one line per log line, numbered (`cat -n`), or in reverse.
    let numbered: String = PEM
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{:6}\t{l}\n", i + 1))
        .collect();
    let out = r.str(&numbered);
    for (i, line) in PEM.lines().enumerate() {
        let shown = out.lines().nth(i).unwrap();
        if line.len() > 8 {
            assert_eq!(shown, format!("{:6}\t[REDACTED:pem]", i + 1), "{out}");
        } else {
            assert_eq!(shown, format!("{:6}\t{line}", i + 1), "{out}");
        }
    }
    let reversed: Vec<&str> = PEM.lines().rev().collect();
    let out = r.str(&reversed.join("\n"));
    for line in long_lines(PEM) {
        assert!(!out.contains(line), "{line:?} in {out}");
    }
}

#[test]
fn lines_of_eight_bytes_or_fewer_are_left_alone() {
    let r = Redactor::new([("k", &b"first-line-of-it\nshort=42\nnine-byte\nend"[..])]);
    assert_eq!(
        r.str("short=42 nine-byte end first-line-of-it"),
        "short=42 [REDACTED:k] end [REDACTED:k]"
    );
}

#[test]
fn lines_ending_in_crlf_are_caught_without_the_cr() {
    let r = Redactor::new([("k", &b"first-line-of-it\r\nsecond-line-of-it\r\n"[..])]);
    assert_eq!(r.str("a second-line-of-it b"), "a [REDACTED:k] b");
    assert_eq!(r.str("a first-line-of-it\r\n"), "a [REDACTED:k]\r\n");
}

#[test]
fn each_line_is_caught_in_its_encoded_forms_too() {
    let r = Redactor::new([("pem", PEM.as_bytes())]);
    for line in long_lines(PEM) {
        for form in [
            STANDARD.encode(line),
            hex_of(line.as_bytes(), false),
            unicode_escaped(line, false),
            serde_json::to_string(line).unwrap(),
        ] {
            let out = r.str(&format!("<{form}>"));
            assert!(out.contains("[REDACTED:pem]"), "{form} -> {out}");
            assert!(!out.contains(&form), "{form} -> {out}");
        }
    }
}

#[test]
fn hex_lower_and_upper_are_replaced() {
    let r = redactor();
    for upper in [false, true] {
        let hex = hex_of(SECRET, upper);
        assert_eq!(
            r.str(&format!("digest {hex}.")),
            "digest [REDACTED:tok].",
            "{hex}"
        );
    }
}

#[test]
fn json_unicode_escapes_are_replaced() {
    let text = std::str::from_utf8(SECRET).unwrap();
    let r = redactor();
    for upper in [false, true] {
        let esc = unicode_escaped(text, upper);
        assert_eq!(
            r.str(&format!("{{\"v\":\"{esc}\"}}")),
            "{\"v\":\"[REDACTED:tok]\"}",
            "{esc}"
        );
    }
}

#[test]
fn non_ascii_values_are_caught_as_json_escapes() {
    let value = "p\u{e4}ssw\u{f6}rd-\u{2713}-\u{1f511}-ok";
    let r = Redactor::new([("u", value.as_bytes())]);
    for form in [
        ascii_only_json(value, false),
        ascii_only_json(value, true),
        unicode_escaped(value, false),
        unicode_escaped(value, true),
    ] {
        assert_eq!(r.str(&format!("[{form}]")), "[[REDACTED:u]]", "{form}");
    }
}

#[test]
fn new_forms_split_at_every_point_are_caught() {
    let text = std::str::from_utf8(SECRET).unwrap();
    let r = Arc::new(Redactor::new([("tok", SECRET), ("pem", PEM.as_bytes())]));
    let mut forms = vec![
        (hex_of(SECRET, false), "tok"),
        (hex_of(SECRET, true), "tok"),
        (unicode_escaped(text, false), "tok"),
        (unicode_escaped(text, true), "tok"),
    ];
    for line in long_lines(PEM) {
        forms.push((line.to_string(), "pem"));
    }
    for (form, name) in forms {
        let stream = format!("log: {form} done\n").into_bytes();
        for cut in 0..=stream.len() {
            let mut s = StreamRedactor::new(r.clone());
            let mut out = s.push(&stream[..cut]);
            out.extend(s.push(&stream[cut..]));
            out.extend(s.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("log: [REDACTED:{name}] done\n"),
                "form {form:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn numbered_multi_line_output_byte_by_byte_is_caught() {
    let r = Arc::new(Redactor::new([("pem", PEM.as_bytes())]));
    let numbered: String = PEM
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{}: {l}\n", i + 1))
        .collect();
    let mut s = StreamRedactor::new(r);
    let mut out = Vec::new();
    for b in numbered.as_bytes() {
        out.extend(s.push(std::slice::from_ref(b)));
    }
    out.extend(s.finish());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "1: [REDACTED:pem]\n2: [REDACTED:pem]\n3: short=42\n4: [REDACTED:pem]\n5: end\n6: [REDACTED:pem]\n"
    );
}

// --- The automaton against a plain search, and streams against whole input.

/// Leftmost-longest, non-overlapping, the slow and obvious way.
fn naive(patterns: &[Vec<u8>], input: &[u8]) -> Vec<(usize, usize, u32)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let best = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| input[i..].starts_with(p))
            .max_by_key(|(_, p)| p.len());
        match best {
            Some((id, p)) => {
                found.push((i, i + p.len(), id as u32));
                i += p.len();
            }
            None => i += 1,
        }
    }
    found
}

fn automaton_matches(
    a: &automaton::Automaton,
    input: &[u8],
    chunks: &[usize],
) -> Vec<(usize, usize, u32)> {
    // Fed as a stream: the buffer grows, its settled front is cut off.
    let mut found = Vec::new();
    let mut buf = Vec::new();
    let mut offset = 0;
    let mut cursor = automaton::Cursor::default();
    let mut at = 0;
    for &n in chunks {
        let n = n.min(input.len() - at);
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
        let stop = a.scan(&buf, &mut cursor, false, |m| {
            found.push((offset + m.start, offset + m.end, m.pattern))
        });
        buf.drain(..stop);
        cursor.shift(stop);
        offset += stop;
    }
    buf.extend_from_slice(&input[at..]);
    a.scan(&buf, &mut cursor, true, |m| {
        found.push((offset + m.start, offset + m.end, m.pattern))
    });
    found
}

#[test]
fn automaton_agrees_with_a_plain_search() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..3000 {
        // A small alphabet, so that patterns overlap, nest and share ends.
        let alphabet: &[u8] = if round % 2 == 0 { b"ab" } else { b"abc\n" };
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for _ in 0..rng.random_range(1..6) {
            let len = rng.random_range(1..7);
            let p: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if !patterns.contains(&p) {
                patterns.push(p);
            }
        }
        let input: Vec<u8> = (0..rng.random_range(0..60))
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let a = automaton::Automaton::new(patterns.iter().map(Vec::as_slice));
        let want = naive(&patterns, &input);
        let whole = automaton_matches(&a, &input, &[]);
        assert_eq!(whole, want, "{patterns:?} in {input:?}");
        let chunks: Vec<usize> = (0..8).map(|_| rng.random_range(0..10)).collect();
        let streamed = automaton_matches(&a, &input, &chunks);
        assert_eq!(streamed, want, "{patterns:?} in {input:?} as {chunks:?}");
    }
}

#[test]
fn padded_base64_split_before_its_padding_is_caught_whole() {
    // 4 bytes: the padded base64 ends in `==`, the unpadded form is its
    // prefix; a chunk that ends between them must not settle for the
    // shorter one.
    let r = Arc::new(Redactor::new([("p", &b"abcd"[..])]));
    let padded = STANDARD.encode(b"abcd");
    assert!(padded.ends_with("=="));
    let stream = format!("x {padded} y").into_bytes();
    for cut in 0..=stream.len() {
        let mut s = StreamRedactor::new(r.clone());
        let mut out = s.push(&stream[..cut]);
        out.extend(s.push(&stream[cut..]));
        out.extend(s.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x [REDACTED:p] y",
            "cut {cut}"
        );
    }
}

#[test]
fn a_long_value_held_byte_by_byte_is_scanned_once() {
    // A 4 KiB value, fed one byte at a time: the held part is not scanned
    // again for every byte (that would be ~8 M steps; debug builds would
    // take seconds).
    let value: Vec<u8> = (0..4096u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = Arc::new(Redactor::new([("big", value.as_slice())]));
    let mut s = StreamRedactor::new(r);
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    for b in value.iter().chain(b" end") {
        out.extend(s.push(std::slice::from_ref(b)));
    }
    out.extend(s.finish());
    assert_eq!(String::from_utf8(out).unwrap(), "[REDACTED:big] end");
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn a_multi_line_key_stays_small() {
    // A 3.2 KB PEM-like key of 52 lines: every form of the value and of
    // each line, in one automaton.
    let key = rsa_like_key();
    let r = Redactor::new([("key", key.as_bytes())]);
    let states = r.states();
    println!("{} forms, {states} states", r.forms().count());
    // ~21 bytes a state: well under 8 MB.
    assert!(states < 400_000, "{states}");
    assert_eq!(
        r.str(&format!("{:064}", 14 * 7_919_993_447u64)),
        "[REDACTED:key]"
    );
}

/// 52 lines, 3.2 KB, like a PEM RSA key.
fn rsa_like_key() -> String {
    let mut key = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for i in 0..50 {
        key.push_str(&format!("{:064}\n", i as u64 * 7_919_993_447));
    }
    key.push_str("-----END RSA PRIVATE KEY-----");
    key
}
