//! Who may start runs over HTTP.
//!
//! - **Signed requests.** `X-Baton-Timestamp: <unix seconds>` and
//!   `X-Baton-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<path>.<body>")>`,
//!   where `<path>` is `/hooks/<plan>`. The path binds a request to one plan;
//!   the timestamp bounds how long it stays good (±[`MAX_SKEW_SECS`]); the
//!   nonce store ([`super::nonces`]) makes it good once. A timestamp is digits
//!   and a plan name has no `.`, so the first two dots of the signed string
//!   are its separators: no two requests sign the same bytes.
//! - **Bearer token**, for senders that cannot sign, such as Alertmanager:
//!   `Authorization: Bearer <token>`, optionally limited to some plans (see
//!   [`BearerToken`]). It delivers Alertmanager notifications only; that is
//!   checked once the body is parsed.
//!
//! Comparisons are constant-time, and neither secret ever appears in a
//! message: errors say what was wrong with the request, not what was expected.

use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use baton_proto::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-baton-signature";
pub const TIMESTAMP_HEADER: &str = "x-baton-timestamp";

/// How far a request's timestamp may be from the coordinator's clock, either
/// way. Wide enough for unsynchronised clocks and slow queues, narrow enough
/// that the nonce store only has to remember ten minutes of signatures.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a request was refused, with the HTTP status to answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn unauthorized(message: String) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        message,
    }
}

fn forbidden(message: String) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        message,
    }
}

/// Said with every refusal of a signed request: the whole recipe, for this plan.
pub fn how_to_sign(plan: &str) -> String {
    format!(
        "send `X-Baton-Timestamp: <unix seconds>` and `X-Baton-Signature: sha256=<hex>`, the HMAC-SHA256 with the hook secret of `<timestamp>.{path}.<body>`, e.g. `TS=$(date +%s); SIG=$(printf '%s.{path}.%s' \"$TS\" \"$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\" | cut -d' ' -f2)`",
        path = hook_path(plan)
    )
}

/// The path a request for `plan` signs, whatever prefix a proxy in front adds.
pub fn hook_path(plan: &str) -> String {
    format!("/hooks/{plan}")
}

/// The bytes a sender signs: `<timestamp>.<path>.<body>`.
pub fn canonical(timestamp: &str, plan: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(timestamp.len() + plan.len() + body.len() + 9);
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'.');
    out.extend_from_slice(hook_path(plan).as_bytes());
    out.push(b'.');
    out.extend_from_slice(body);
    out
}

/// `sha256=<lowercase hex>`, as senders compute it for `plan` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, plan: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(&canonical(&timestamp.to_string(), plan, body));
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The bearer token from `--hook-token-file`, and the plans it may start.
///
/// The file holds `<token>` (every plan) or `<token> <plan>,<plan>…` (only
/// those): a token in an alerting system's config should start only the
/// runbooks meant for alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerToken {
    token: Secret,
    /// None: every plan.
    plans: Option<Vec<String>>,
}

impl BearerToken {
    /// `content` is the file's text, without its trailing newline.
    pub fn parse(content: &Secret) -> Result<Self, String> {
        const FORMAT: &str = "write `<token>` for every plan, or `<token> <plan>,<plan>` for only those, on one line";
        let words: Vec<&str> = content.expose().split_whitespace().collect();
        match words.as_slice() {
            [token] => Ok(Self {
                token: Secret::new(*token),
                plans: None,
            }),
            [token, list] => {
                let plans: Vec<String> = list.split(',').map(str::to_string).collect();
                if let Some(bad) = plans.iter().find(|p| !valid_plan_name(p)) {
                    return Err(format!(
                        "--hook-token-file: `{bad}` is not a plan name (letters a-z, digits, `-`, `_`) — {FORMAT}"
                    ));
                }
                Ok(Self {
                    token: Secret::new(*token),
                    plans: Some(plans),
                })
            }
            [] => Err(format!("--hook-token-file is empty — {FORMAT}")),
            _ => Err(format!(
                "--hook-token-file has {} words, expected 1 or 2 — {FORMAT}",
                words.len()
            )),
        }
    }

    pub fn allows(&self, plan: &str) -> bool {
        self.plans
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p == plan))
    }

    /// For the start-up log: which plans, never the token.
    pub fn scope(&self) -> String {
        match &self.plans {
            None => "every plan".into(),
            Some(ps) => ps.join(","),
        }
    }
}

/// The shape the plan loader gives names, a token of the bus
/// ([`baton_proto::subjects::valid_token`], `[a-z0-9][a-z0-9_-]{0,62}`): no
/// `.`, which keeps the signed string unambiguous.
pub fn valid_plan_name(name: &str) -> bool {
    baton_proto::subjects::valid_token(name)
}

/// How a request proved who sent it.
#[derive(Debug, PartialEq, Eq)]
pub enum Caller {
    /// Signed; `nonce` (the signature, lowercase hex) must not have been seen.
    Signed { nonce: String },
    /// The bearer token: Alertmanager notifications only.
    Bearer,
}

/// Accept the request if it carries a matching bearer token for `plan`, or a
/// signature over this timestamp, plan and body, made within the allowed
/// skew of `now` (Unix seconds).
pub fn verify(
    headers: &HeaderMap,
    plan: &str,
    body: &[u8],
    secret: Option<&Secret>,
    token: Option<&BearerToken>,
    now: i64,
) -> Result<Caller, Refusal> {
    if secret.is_none() && token.is_none() {
        return Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "webhook triggers are off: this coordinator has no hook secret — start it with `--hook-secret-file PATH` (or BATON_HOOK_SECRET); unsigned requests are never accepted".into(),
        });
    }
    if let (Some(token), Some(given)) = (token, bearer(headers)) {
        // Hashing first makes the comparison independent of the lengths too.
        let given = Sha256::digest(given.as_bytes());
        let wanted = Sha256::digest(token.token.expose().as_bytes());
        let same: bool = given.as_slice().ct_eq(wanted.as_slice()).into();
        if !same {
            return Err(unauthorized(
                "bearer token does not match the coordinator's --hook-token-file".into(),
            ));
        }
        if !token.allows(plan) {
            return Err(forbidden(format!(
                "this bearer token may start only plans {}, not `{plan}` — add `{plan}` to the plans after the token in the coordinator's --hook-token-file, or sign the request with the hook secret",
                token.scope()
            )));
        }
        return Ok(Caller::Bearer);
    }
    let Some(secret) = secret else {
        return Err(unauthorized(
            "missing `Authorization: Bearer <token>` header — send the token from the coordinator's --hook-token-file".into(),
        ));
    };
    let Some(given) = headers.get(SIGNATURE_HEADER) else {
        let alt = if token.is_some() {
            " (Alertmanager: send `Authorization: Bearer <token>`)"
        } else {
            ""
        };
        return Err(unauthorized(format!(
            "missing `X-Baton-Signature` header — {}{alt}",
            how_to_sign(plan)
        )));
    };
    let Some(ts_text) = headers.get(TIMESTAMP_HEADER) else {
        return Err(unauthorized(format!(
            "missing `X-Baton-Timestamp` header: a signature covers the time it was made, the path and the body, never the body alone — {}",
            how_to_sign(plan)
        )));
    };
    let (ts_text, ts) = ts_text
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| Some((t, t.parse::<i64>().ok()?)))
        .ok_or_else(|| {
            unauthorized(format!(
                "malformed `X-Baton-Timestamp` header: expected the Unix time in seconds (`date +%s`) — {}",
                how_to_sign(plan)
            ))
        })?;
    let hex_sig = given
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("sha256="))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            unauthorized(format!(
                "malformed `X-Baton-Signature` header: expected `sha256=` and 64 hex digits — {}",
                how_to_sign(plan)
            ))
        })?
        .to_ascii_lowercase();
    let raw = hex::decode(&hex_sig).map_err(|_| {
        unauthorized(format!(
            "malformed `X-Baton-Signature` header — {}",
            how_to_sign(plan)
        ))
    })?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(&canonical(ts_text, plan, body));
    mac.verify_slice(&raw).map_err(|_| {
        unauthorized(format!(
            "signature mismatch: the signature must cover `<timestamp>.<path>.<body>`, here `{ts_text}.{}.` then the body, with this coordinator's hook secret; it was made for another plan, time or body, with another secret, or the request was changed on the way — {}",
            hook_path(plan),
            how_to_sign(plan)
        ))
    })?;
    // Checked after the signature, so that only a genuine sender hears about clocks.
    let skew = now - ts;
    if skew.abs() > MAX_SKEW_SECS {
        let (by, side) = if skew > 0 {
            (skew, "behind")
        } else {
            (-skew, "ahead of")
        };
        return Err(unauthorized(format!(
            "`X-Baton-Timestamp` is {by} s {side} this coordinator's clock; requests are accepted only within {MAX_SKEW_SECS} s (5 minutes) either way — sign each request when it is sent, and keep the sender's and the coordinators' clocks in sync (NTP)"
        )));
    }
    Ok(Caller::Signed { nonce: hex_sig })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn signed(secret: &str, ts: i64, plan: &str, body: &[u8]) -> HeaderMap {
        let sig = sign(secret, ts, plan, body);
        headers(&[
            (TIMESTAMP_HEADER, &ts.to_string()),
            (SIGNATURE_HEADER, &sig),
        ])
    }

    fn check(h: &HeaderMap, plan: &str, body: &[u8]) -> Result<Caller, Refusal> {
        verify(h, plan, body, Some(&Secret::new("s3cret")), None, NOW)
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2, with the message split where the canonical
        // form puts its dots: `<ts>.<path>.<body>`.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            want,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            canonical("1800000000", "release-train", br#"{"inputs":{}}"#),
            br#"1800000000./hooks/release-train.{"inputs":{}}"#
        );
        // What the docs' shell recipe prints for this request.
        assert_eq!(
            sign(
                "s3cret",
                1_800_000_000,
                "release-train",
                br#"{"inputs":{}}"#
            ),
            format!(
                "sha256={}",
                hex::encode({
                    let mut m = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
                    m.update(br#"1800000000./hooks/release-train.{"inputs":{}}"#);
                    m.finalize().into_bytes()
                })
            )
        );
    }

    #[test]
    fn a_good_signature_names_its_nonce() {
        let body = br#"{"inputs":{}}"#;
        let h = signed("s3cret", NOW, "deploy", body);
        let sig = sign("s3cret", NOW, "deploy", body);
        assert_eq!(
            check(&h, "deploy", body),
            Ok(Caller::Signed {
                nonce: sig[7..].to_string()
            })
        );
        // Upper-case hex is the same signature, and the same nonce.
        let upper = format!("sha256={}", sig[7..].to_uppercase());
        let h = headers(&[
            (TIMESTAMP_HEADER, &NOW.to_string()),
            (SIGNATURE_HEADER, &upper),
        ]);
        assert_eq!(
            check(&h, "deploy", body),
            Ok(Caller::Signed {
                nonce: sig[7..].to_string()
            })
        );
    }

    #[test]
    fn the_path_the_time_and_the_body_are_all_signed() {
        let body = br#"{"inputs":{}}"#;
        let h = signed("s3cret", NOW, "deploy", body);
        for (plan, body) in [("other", &body[..]), ("deploy", b"{}")] {
            let e = check(&h, plan, body).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
            assert!(e.message.starts_with("signature mismatch"), "{e:?}");
            assert!(!e.message.contains("s3cret"));
        }
        let mut moved = h.clone();
        moved.insert(TIMESTAMP_HEADER, (NOW - 1).to_string().parse().unwrap());
        assert!(check(&moved, "deploy", body)
            .unwrap_err()
            .message
            .starts_with("signature mismatch"));
        let other_key = signed("other", NOW, "deploy", body);
        assert!(check(&other_key, "deploy", body)
            .unwrap_err()
            .message
            .starts_with("signature mismatch"));
    }

    #[test]
    fn timestamps_outside_five_minutes_are_refused() {
        let body = b"{}";
        for ts in [NOW - 301, NOW + 301, 0] {
            let e = check(&signed("s3cret", ts, "deploy", body), "deploy", body).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
            assert!(e.message.contains("300 s"), "{e:?}");
            assert!(e.message.contains("clocks in sync"), "{e:?}");
        }
        let e = check(&signed("s3cret", NOW - 400, "deploy", body), "deploy", body).unwrap_err();
        assert!(e.message.contains("400 s behind"), "{e:?}");
        let e = check(&signed("s3cret", NOW + 400, "deploy", body), "deploy", body).unwrap_err();
        assert!(e.message.contains("400 s ahead of"), "{e:?}");
        for ts in [NOW - 300, NOW + 300] {
            assert!(check(&signed("s3cret", ts, "deploy", body), "deploy", body).is_ok());
        }
    }

    #[test]
    fn missing_or_malformed_headers_say_how_to_sign() {
        let body = b"{}";
        let e = check(&headers(&[]), "deploy", body).unwrap_err();
        assert!(
            e.message.starts_with("missing `X-Baton-Signature`"),
            "{e:?}"
        );
        assert!(e.message.contains("openssl dgst"), "{e:?}");
        assert!(e.message.contains("/hooks/deploy"), "{e:?}");

        // The old body-only scheme: a signature without a timestamp.
        let old = {
            let mut m = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            m.update(body);
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        };
        let e = check(&headers(&[(SIGNATURE_HEADER, &old)]), "deploy", body).unwrap_err();
        assert!(
            e.message.starts_with("missing `X-Baton-Timestamp`"),
            "{e:?}"
        );
        assert!(e.message.contains("openssl dgst"), "{e:?}");

        let good = sign("s3cret", NOW, "deploy", body);
        for ts in ["", "-5", "1.5", "yesterday", "1234567890123"] {
            let h = headers(&[(TIMESTAMP_HEADER, ts), (SIGNATURE_HEADER, &good)]);
            let e = check(&h, "deploy", body).unwrap_err();
            assert!(
                e.message.starts_with("malformed `X-Baton-Timestamp`"),
                "{ts}: {e:?}"
            );
        }
        let h = headers(&[
            (TIMESTAMP_HEADER, &NOW.to_string()),
            (SIGNATURE_HEADER, "md5=abc"),
        ]);
        assert!(check(&h, "deploy", body)
            .unwrap_err()
            .message
            .starts_with("malformed `X-Baton-Signature`"));
    }

    #[test]
    fn no_secret_means_off() {
        let h = signed("x", NOW, "deploy", b"{}");
        let e = verify(&h, "deploy", b"{}", None, None, NOW).unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("--hook-secret-file"));
    }

    #[test]
    fn bearer_tokens_and_their_plans() {
        let all = BearerToken::parse(&Secret::new("tok")).unwrap();
        let some = BearerToken::parse(&Secret::new("tok  deploy,db-restart")).unwrap();
        let s = Secret::new("sec");
        let ok = headers(&[("authorization", "Bearer tok")]);
        assert_eq!(
            verify(&ok, "any", b"{}", Some(&s), Some(&all), NOW),
            Ok(Caller::Bearer)
        );
        assert_eq!(
            verify(&ok, "any", b"{}", None, Some(&all), NOW),
            Ok(Caller::Bearer)
        );
        assert_eq!(
            verify(&ok, "db-restart", b"{}", None, Some(&some), NOW),
            Ok(Caller::Bearer)
        );
        let e = verify(&ok, "other", b"{}", None, Some(&some), NOW).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(
            e.message
                .contains("only plans deploy,db-restart, not `other`"),
            "{e:?}"
        );

        let bad = headers(&[("authorization", "Bearer nope")]);
        let e = verify(&bad, "any", b"{}", Some(&s), Some(&all), NOW).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.message.contains("bearer token does not match"));
        // Without a configured token, a bearer header is no way in.
        let e = verify(&ok, "any", b"{}", Some(&s), None, NOW).unwrap_err();
        assert!(e.message.starts_with("missing `X-Baton-Signature`"));
        let e = verify(&headers(&[]), "any", b"{}", None, Some(&all), NOW).unwrap_err();
        assert!(e.message.contains("Authorization: Bearer"));
        assert_eq!(format!("{:?}", Secret::new("tok")), "Secret(***)");
        assert!(!format!("{some:?}").contains("tok\""), "{some:?}");
    }

    #[test]
    fn the_token_file_format() {
        let parse = |s: &str| BearerToken::parse(&Secret::new(s));
        assert_eq!(parse("tok").unwrap().scope(), "every plan");
        assert_eq!(parse("tok a,b-c").unwrap().scope(), "a,b-c");
        for bad in ["", "tok a b", "tok A", "tok a,,b", "tok a.b"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("--hook-token-file"), "{bad}: {e}");
            assert!(e.contains("<token> <plan>,<plan>"), "{bad}: {e}");
        }
    }

    #[test]
    fn plan_names_have_no_dots() {
        assert!(valid_plan_name("release-train_2"));
        for bad in ["", "a.b", "A", "-a", "a/b", &"a".repeat(64)] {
            assert!(!valid_plan_name(bad), "{bad}");
        }
    }

    /// A hook names a plan the loader registered: the loader's id check
    /// (`baton-plan` cannot depend on `baton-proto`) must accept exactly the
    /// tokens, or a plan could load that no hook can start, or the reverse.
    #[test]
    fn the_plan_loader_accepts_exactly_the_plan_names_hooks_accept() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for name in [
            "release-train_2",
            "7",
            "a-",
            long.as_str(),
            too_long.as_str(),
            "",
            "a.b",
            "a*",
            "a>",
            "a b",
            "A",
            "sCan",
            "-a",
            "_a",
            "a/b",
            "a:b",
            "café",
        ] {
            for plan in [
                format!(
                    "name: \"{name}\"\nroles: {{ ops: {{ image: img }} }}\n\
                     phases: [ {{ id: p, tasks: [ {{ id: t, role: ops, run: \"true\" }} ] }} ]\n"
                ),
                format!(
                    "name: n\nroles: {{ ops: {{ image: img }} }}\n\
                     phases: [ {{ id: \"{name}\", tasks: [ {{ id: t, role: ops, run: \"true\" }} ] }} ]\n"
                ),
            ] {
                let loaded = baton_plan::load("p.yaml", &plan);
                assert_eq!(
                    loaded.is_ok(),
                    valid_plan_name(name),
                    "{name:?}: {:?}",
                    loaded.err().map(|e| e.to_string())
                );
            }
        }
    }
}
