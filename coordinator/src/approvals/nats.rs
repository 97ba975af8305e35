//! Approvals over NATS: a request on `baton.approve.<identity>.<run>` with
//! `{"approve":true,"reason":"…","task_id":""}`; the reply is `{"ok":true}`
//! or `{"error":"…"}`.
//!
//! The approver is the subject's `<identity>` token. That is safe only
//! because NATS permissions bind it: a credential allowed to approve as
//! `alice` may publish only on `baton.approve.alice.>` (see
//! docs/security.md). A name in the body is refused, not trusted.

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::DecisionInput;
use crate::state_store::RunStore;
use crate::Error;

/// The request body. Unknown keys (a `by`, say) are refused, so that nobody
/// believes a name they wrote counts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    approve: bool,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    task_id: String,
}

pub async fn run(
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    store: RunStore,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let subject = baton_proto::subjects::APPROVALS_ALL;
    crate::requests::serve(client, subject, "approval", cancel, |subject, payload| {
        let (js, store) = (js.clone(), store.clone());
        async move {
            let d = match parse(&subject, &payload) {
                Ok(d) => d,
                Err(e) => return serde_json::json!({ "error": e }),
            };
            let (run, by) = (d.run_id.clone(), d.by.clone());
            match super::decide(&js, &store, d).await {
                Ok(()) => {
                    tracing::info!(run, by, "decision over NATS");
                    serde_json::json!({ "ok": true })
                }
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            }
        }
    })
    .await
}

/// The decision a request carries: identity and run from the subject, the
/// rest from the body.
fn parse(subject: &str, payload: &[u8]) -> Result<DecisionInput, String> {
    let mut tokens = subject.split('.').skip(2);
    let (Some(by), Some(run_id), None) = (tokens.next(), tokens.next(), tokens.next()) else {
        return Err(format!(
            "subject `{subject}` is not `baton.approve.<identity>.<run>`"
        ));
    };
    let body: Body = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "approval body is not valid ({e}) — send {{\"approve\":true,\"reason\":\"why\"}} \
             (\"task_id\" optional); the approver is the subject's identity, not a body field"
        )
    })?;
    Ok(DecisionInput {
        run_id: run_id.to_string(),
        by: by.to_string(),
        approve: body.approve,
        reason: body.reason,
        task_id: body.task_id,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn identity_and_run_come_from_the_subject() {
        let d = parse(
            "baton.approve.alice.r-1",
            br#"{"approve":true,"reason":"ok"}"#,
        )
        .unwrap();
        assert_eq!((d.by.as_str(), d.run_id.as_str()), ("alice", "r-1"));
        assert!(d.approve && d.task_id.is_empty());
        let e = parse("baton.approve.alice.r-1", br#"{"approve":true,"by":"bob"}"#).unwrap_err();
        assert!(e.contains("unknown field `by`"), "{e}");
        let e = parse("baton.approve.alice.r-1", b"yes").unwrap_err();
        assert!(e.contains("send {\"approve\":true"), "{e}");
        let e = parse("baton.approve.alice.r-1", br#"{"reason":"ok"}"#).unwrap_err();
        assert!(e.contains("missing field `approve`"), "{e}");
    }
}
