//! Who may start runs over HTTP: a body signed with the shared secret
//! (`X-Baton-Signature: sha256=<hex HMAC-SHA256>`), or, for senders that
//! cannot sign bodies such as Alertmanager, a bearer token.
//!
//! Both comparisons are constant-time, and neither secret ever appears in a
//! message: errors say what was wrong with the request, not what was expected.

use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-baton-signature";

const HOW_TO_SIGN: &str = "sign the raw body with the hook secret and send it as `X-Baton-Signature: sha256=<hex>`, e.g. `printf '%s' \"$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\"`";

/// A secret that never prints: `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

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

/// `sha256=<lowercase hex>` of `body` under `secret`, as senders compute it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Accept the request if it carries a matching bearer token or signature.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&Secret>,
    token: Option<&Secret>,
) -> Result<(), Refusal> {
    if secret.is_none() && token.is_none() {
        return Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "webhook triggers are off: this coordinator has no hook secret — start it with `--hook-secret-file PATH` (or BATON_HOOK_SECRET); unsigned requests are never accepted".into(),
        });
    }
    if let (Some(token), Some(given)) = (token, bearer(headers)) {
        // Hashing first makes the comparison independent of the lengths too.
        let given = Sha256::digest(given.as_bytes());
        let wanted = Sha256::digest(token.expose().as_bytes());
        let same: bool = given.as_slice().ct_eq(wanted.as_slice()).into();
        return if same {
            Ok(())
        } else {
            Err(unauthorized(
                "bearer token does not match the coordinator's --hook-token-file".into(),
            ))
        };
    }
    let Some(secret) = secret else {
        return Err(unauthorized(
            "missing `Authorization: Bearer <token>` header — send the token from the coordinator's --hook-token-file".into(),
        ));
    };
    let Some(given) = headers.get(SIGNATURE_HEADER) else {
        let alt = if token.is_some() {
            " (or send `Authorization: Bearer <token>`)"
        } else {
            ""
        };
        return Err(unauthorized(format!(
            "missing `X-Baton-Signature` header — {HOW_TO_SIGN}{alt}"
        )));
    };
    let hex_sig = given
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("sha256="))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            unauthorized(format!(
                "malformed `X-Baton-Signature` header: expected `sha256=` and 64 hex digits — {HOW_TO_SIGN}"
            ))
        })?;
    let raw = hex::decode(hex_sig.to_ascii_lowercase()).map_err(|_| {
        unauthorized(format!(
            "malformed `X-Baton-Signature` header — {HOW_TO_SIGN}"
        ))
    })?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&raw).map_err(|_| {
        unauthorized(format!(
            "signature mismatch: the body was not signed with this coordinator's hook secret, or was changed on the way — {HOW_TO_SIGN}"
        ))
    })
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures() {
        let s = Secret::new("s3cret");
        let body = br#"{"inputs":{}}"#;
        let good = sign("s3cret", body);
        assert!(verify(&headers(&[(SIGNATURE_HEADER, &good)]), body, Some(&s), None).is_ok());
        let upper = format!("sha256={}", good[7..].to_uppercase());
        assert!(verify(
            &headers(&[(SIGNATURE_HEADER, &upper)]),
            body,
            Some(&s),
            None
        )
        .is_ok());

        let e = verify(&headers(&[]), body, Some(&s), None).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.message.starts_with("missing"), "{e:?}");
        assert!(e.message.contains("openssl dgst"), "{e:?}");

        let e = verify(
            &headers(&[(SIGNATURE_HEADER, "md5=abc")]),
            body,
            Some(&s),
            None,
        );
        assert!(e.unwrap_err().message.starts_with("malformed"));

        let other = sign("other", body);
        let e = verify(
            &headers(&[(SIGNATURE_HEADER, &other)]),
            body,
            Some(&s),
            None,
        );
        let e = e.unwrap_err();
        assert!(e.message.starts_with("signature mismatch"), "{e:?}");
        assert!(!e.message.contains("s3cret"));

        let e = verify(
            &headers(&[(SIGNATURE_HEADER, &good)]),
            b"{}",
            Some(&s),
            None,
        );
        assert!(e.unwrap_err().message.starts_with("signature mismatch"));
    }

    #[test]
    fn no_secret_means_off() {
        let good = sign("x", b"{}");
        let e = verify(&headers(&[(SIGNATURE_HEADER, &good)]), b"{}", None, None).unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("--hook-secret-file"));
    }

    #[test]
    fn bearer_tokens() {
        let t = Secret::new("tok");
        let s = Secret::new("sec");
        let ok = headers(&[("authorization", "Bearer tok")]);
        assert!(verify(&ok, b"{}", Some(&s), Some(&t)).is_ok());
        assert!(verify(&ok, b"{}", None, Some(&t)).is_ok());
        let bad = headers(&[("authorization", "Bearer nope")]);
        let e = verify(&bad, b"{}", Some(&s), Some(&t)).unwrap_err();
        assert!(e.message.contains("bearer token does not match"));
        // Without a configured token, a bearer header is no way in.
        let e = verify(&ok, b"{}", Some(&s), None).unwrap_err();
        assert!(e.message.starts_with("missing `X-Baton-Signature`"));
        let e = verify(&headers(&[]), b"{}", None, Some(&t)).unwrap_err();
        assert!(e.message.contains("Authorization: Bearer"));
        assert_eq!(format!("{t:?}"), "Secret(***)");
    }
}
