//! Reading what evidence is made of from the bus, and storing it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::object_store::{InfoErrorKind, ObjectStore};
use async_nats::jetstream::{self, stream::Stream};
use baton_proto::{codec, subjects, v1};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::assemble::LogHasher;
use super::statement::{AuditHead, LogDigest};
use crate::Error;

/// How long a subject with nothing (more) on it is waited for.
const IDLE: Duration = Duration::from_secs(1);

/// Every message on `filter`, in stream order, up to what the stream held
/// when the read began.
async fn read_all(stream: &Stream, filter: String) -> Result<Vec<jetstream::Message>, Error> {
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Bus(e.into()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| Error::Bus(e.into()))?;
    let mut out = Vec::new();
    loop {
        let m = match tokio::time::timeout(IDLE, messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(Error::Bus(e.into())),
            // Idle: nothing (more) matches.
            Ok(None) | Err(_) => return Ok(out),
        };
        let done = m.info().map(|i| i.pending == 0).unwrap_or(false);
        out.push(m);
        if done {
            return Ok(out);
        }
    }
}

pub async fn run_events(events: &Stream, run: &str) -> Result<Vec<v1::Event>, Error> {
    let msgs = read_all(events, subjects::run_events(run)).await?;
    Ok(msgs
        .iter()
        .filter_map(|m| codec::decode_event(&m.subject, &m.payload).ok())
        .collect())
}

/// Each attempt's log digest; lines are keyed by their `Baton-Attempt` header.
pub async fn log_digests(
    logs: &Stream,
    run: &str,
) -> Result<BTreeMap<(String, u32), LogDigest>, Error> {
    let mut h = LogHasher::default();
    for m in read_all(logs, subjects::run_logs(run)).await? {
        let task = m.subject.rsplit('.').next().unwrap_or_default();
        let attempt = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Baton-Attempt"))
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0);
        h.add(task, attempt, &m.payload);
    }
    Ok(h.finish())
}

/// The last record on `baton.audit.<run>`; `None` when there is no audit
/// stream or nothing for the run on it. Evidence never creates the stream.
///
/// The audit writer appends the run's `finished` record a moment after the
/// run ends, so wait for it (up to [`AUDIT_SETTLE`]) to anchor the whole chain.
pub async fn audit_head(js: &jetstream::Context, run: &str) -> Option<AuditHead> {
    let stream = js.get_stream(subjects::AUDIT_STREAM).await.ok()?;
    let deadline = tokio::time::Instant::now() + AUDIT_SETTLE;
    loop {
        let last = stream
            .get_last_raw_message_by_subject(&subjects::audit(run))
            .await
            .ok();
        let finished = last.as_ref().is_some_and(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload)
                .ok()
                .and_then(|v| {
                    v.get("kind")
                        .and_then(|k| k.as_str())
                        .map(|k| k == "finished")
                })
                .unwrap_or(false)
        });
        if finished || tokio::time::Instant::now() >= deadline {
            let m = last?;
            return match serde_json::from_slice::<AuditHead>(&m.payload) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(run, error = %e, "audit head has no `n` and `hash`; evidence says null");
                    None
                }
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How long sealing waits for the run's `finished` audit record.
pub const AUDIT_SETTLE: std::time::Duration = std::time::Duration::from_secs(15);

pub fn object_name(run: &str) -> String {
    format!("{run}.intoto.json")
}

/// Store `bytes` unless the run's evidence is there already: the first
/// sealing wins, so a takeover that finishes the run again changes nothing.
/// Returns whether it stored.
pub async fn store_once(store: &ObjectStore, run: &str, bytes: &[u8]) -> Result<bool, Error> {
    let name = object_name(run);
    match store.info(&name).await {
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == InfoErrorKind::NotFound => {}
        Err(e) => return Err(Error::Bus(e.into())),
    }
    let mut data = bytes;
    store
        .put(name.as_str(), &mut data)
        .await
        .map_err(|e| Error::Bus(e.into()))?;
    Ok(true)
}

pub async fn fetch(store: &ObjectStore, run: &str) -> Result<Vec<u8>, Error> {
    let mut obj = store
        .get(object_name(run))
        .await
        .map_err(|_| Error::NoEvidence(run.to_string()))?;
    let mut out = Vec::new();
    obj.read_to_end(&mut out)
        .await
        .map_err(|e| Error::Bus(e.into()))?;
    Ok(out)
}
