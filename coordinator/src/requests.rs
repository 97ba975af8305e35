//! Serving NATS requests in the coordinators' queue group (one coordinator
//! answers each): triggers and approvals. Every answer is a JSON reply.

use std::future::Future;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Coordinators share each subscription through this queue group.
pub const QUEUE_GROUP: &str = "baton-coordinators";

/// Answer every request on `subject` with what `handle(subject, payload)`
/// returns, until `cancel`. `what` names the requests in log lines.
pub async fn serve<F, Fut>(
    client: async_nats::Client,
    subject: &'static str,
    what: &'static str,
    cancel: CancellationToken,
    mut handle: F,
) -> Result<(), Error>
where
    F: FnMut(String, bytes::Bytes) -> Fut,
    Fut: Future<Output = serde_json::Value>,
{
    let mut sub = client
        .queue_subscribe(subject, QUEUE_GROUP.into())
        .await
        .map_err(|e| Error::Bus(e.into()))?;
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => break,
            m = sub.next() => match m { Some(m) => m, None => break },
        };
        let subject = msg.subject.to_string();
        let reply = handle(subject.clone(), msg.payload).await;
        match msg.reply {
            Some(to) => {
                if let Err(e) = client.publish(to, reply.to_string().into()).await {
                    tracing::warn!(what, subject, error = %e, "reply not sent");
                }
            }
            None => tracing::info!(what, subject, %reply, "request without a reply subject"),
        }
    }
    Ok(())
}
