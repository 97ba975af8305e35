//! Each signed request is good once, across every coordinator: its signature
//! is created as a key of the `baton_hook_nonces` bucket, which fails if the
//! key exists. The bucket forgets keys after twice the allowed skew and a
//! minute, by when the timestamp inside them is refused anyway.

use async_nats::jetstream::kv::{self, CreateErrorKind};
use axum::http::StatusCode;

use super::signature::Refusal;

/// Record `nonce` (a signature in lowercase hex) as seen; a key that exists
/// means another delivery of the same request got there first.
pub async fn record(nonces: &kv::Store, nonce: &str, timestamp: &str) -> Result<(), Refusal> {
    match nonces
        .create(nonce, bytes::Bytes::copy_from_slice(timestamp.as_bytes()))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err(Refusal {
            status: StatusCode::CONFLICT,
            message: "replayed: this signed request was already received — sign every request anew, with the current X-Baton-Timestamp; a retry too".into(),
        }),
        Err(e) => Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "cannot record the request's signature in NATS (bucket {}): {e} — nothing was started: retry, and if the retry is refused as replayed, sign it anew",
                baton_proto::subjects::HOOK_NONCES_BUCKET
            ),
        }),
    }
}
