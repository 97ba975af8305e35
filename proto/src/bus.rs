//! Publishing on the bus: every message carries a `Nats-Msg-Id` derived from
//! its meaning and, where there is one, the run's W3C `traceparent`.

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use prost::Message;

use std::sync::{Arc, Mutex};

use crate::nats_auth::{Error as AuthError, NatsAuth};
use crate::subjects::TRACEPARENT_HEADER;
use crate::v1::{event::Body, Event};

pub type PublishError = async_nats::jetstream::context::PublishError;

fn message(payload: bytes::Bytes, msg_id: &str, traceparent: &str) -> PublishMessage {
    let mut p = PublishMessage::build().payload(payload).message_id(msg_id);
    if !traceparent.is_empty() {
        p = p.header(TRACEPARENT_HEADER, traceparent);
    }
    p
}

/// Publish `msg` and return the ack future, so that callers can pipeline
/// many publishes and await their acks together.
pub async fn publish<M: Message>(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    msg: &M,
    traceparent: &str,
) -> Result<PublishAckFuture, PublishError> {
    js.send_publish(
        subject,
        message(msg.encode_to_vec().into(), msg_id, traceparent),
    )
    .await
}

/// Publish and wait for the server's ack, retrying a few times with the same
/// message id (the server drops the copy if an earlier try did land).
pub async fn publish_acked<M: Message>(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    msg: &M,
    traceparent: &str,
) -> Result<(), async_nats::Error> {
    publish_bytes_acked(js, subject, msg_id, msg.encode_to_vec().into(), traceparent).await
}

/// Where every component and client looks for NATS unless told otherwise.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Tries of one acknowledged publish before it is reported as failed.
const PUBLISH_ATTEMPTS: u32 = 12;

/// [`publish_acked`] for a payload that is already encoded.
pub async fn publish_bytes_acked(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    payload: bytes::Bytes,
    traceparent: &str,
) -> Result<(), async_nats::Error> {
    let p = message(payload, msg_id, traceparent);
    let mut attempt = 0u32;
    loop {
        let err: async_nats::Error = match js.send_publish(subject.clone(), p.clone()).await {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => e.into(),
            },
            Err(e) => e.into(),
        };
        attempt += 1;
        // About 17 s in all: long enough to ride out a nats-server restart
        // (a gate request or dispatch given up on would leave its run
        // waiting until a coordinator takes it over).
        if attempt == PUBLISH_ATTEMPTS {
            return Err(err);
        }
        tracing::warn!(subject, msg_id, attempt, error = %err, "publish not acknowledged; retrying");
        let backoff = (50u64 << attempt.min(6)).min(2_000);
        tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
    }
}

/// Publish an event of a run on `baton.evt.<run>.<kind>`.
pub async fn publish_event(
    js: &jetstream::Context,
    run_id: &str,
    msg_id: &str,
    body: Body,
    traceparent: &str,
) -> Result<(), async_nats::Error> {
    let subject = crate::codec::event_subject(run_id, &body);
    let ev: Event = crate::codec::event_now(run_id, body);
    publish_acked(js, subject, msg_id, &ev, traceparent).await
}

/// Where and how a component reaches the bus.
pub struct BusOptions<'a> {
    /// One URL, or several comma-separated (a cluster).
    pub url: &'a str,
    /// The connection's name, as `nats server report connections` shows it.
    pub name: &'a str,
    pub auth: &'a NatsAuth,
    pub topology: &'a crate::topology::TopologyOptions,
}

/// A connected component: its client, its JetStream context, and the
/// streams and buckets, made sure of.
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub topo: crate::topology::Topology,
}

/// Why a component could not reach the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Unreachable, refused credentials, TLS: the message says which.
    #[error(transparent)]
    Connect(#[from] AuthError),
    #[error("cannot create or find Baton's streams and buckets: {0} — only the coordinator's NATS user may create them: start a coordinator first")]
    Topology(#[source] async_nats::Error),
}

/// Connect and make sure of the topology: how every component starts.
pub async fn connect_and_ensure(o: BusOptions<'_>) -> Result<Bus, BusError> {
    let client = connect_with(o.url, o.name, o.auth).await?;
    let js = jetstream::new(client.clone());
    let topo = crate::topology::ensure(&js, o.topology)
        .await
        .map_err(BusError::Topology)?;
    Ok(Bus { client, js, topo })
}

/// Connect the way every Baton service does, with no credentials.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, String> {
    connect_with(url, name, &NatsAuth::default())
        .await
        .map_err(|e| e.to_string())
}

/// Connect the way every Baton service does (`url` may list several servers,
/// comma-separated): reconnect forever once up (a restart of nats-server
/// must not kill a service), but give up on the first connection after 10 s
/// with one clear line, so a wrong URL never hangs silently; refused
/// credentials and TLS failures are reported at once.
pub async fn connect_with(
    url: &str,
    name: &str,
    auth: &NatsAuth,
) -> Result<async_nats::Client, AuthError> {
    let unreachable = |why: String| AuthError::Unreachable {
        url: url.to_string(),
        why,
    };
    // A cluster is given as a comma-separated list; the client tries them all.
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| unreachable(format!("not a server address: `{u}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(unreachable("no server given".into()));
    }
    // The first try is made without retrying, so that its error keeps its
    // cause (a certificate the CA does not sign, a refused password); the
    // retrying client below reports only the kind of an error.
    let first = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        options(auth, name, Arc::default())?.connect(servers.clone()),
    )
    .await;
    match first {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => {
            if let Some(err) = classify(url, &auth.who(), &e.to_string()) {
                return Err(err);
            }
        }
        Err(_) => {}
    }
    // With retry_on_initial_connect, connection errors arrive only as
    // events; keep the last one so that the caller is told why.
    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    let opts = options(auth, name, last_error.clone())?;
    let attempt = async {
        // With retry_on_initial_connect the client comes back before it is
        // connected; wait until it is, so a wrong URL is reported here.
        let client = opts
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        while client.connection_state() != async_nats::connection::State::Connected {
            if let Some(e) = last_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                if let Some(err) = classify(url, &auth.who(), &e) {
                    return Err(err);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(client)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), attempt).await {
        Ok(r) => r,
        Err(_) => {
            let why = last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "no answer within 10s".into());
            Err(classify(url, &auth.who(), &why).unwrap_or_else(|| unreachable(why)))
        }
    }
}

/// The options every connection of a service shares. Server errors while
/// connected (a publish or subscribe outside the user's permissions) are
/// logged: the server names the subject, never a secret. Connection errors
/// go to `last_error`.
fn options(
    auth: &NatsAuth,
    name: &str,
    last_error: Arc<Mutex<Option<String>>>,
) -> Result<async_nats::ConnectOptions, AuthError> {
    let who = auth.who();
    let mut opts = auth.apply(async_nats::ConnectOptions::new())?;
    if let Some(user) = &auth.user {
        opts = opts.custom_inbox_prefix(inbox_prefix(user));
    }
    Ok(opts
        .name(name)
        .connection_timeout(std::time::Duration::from_secs(5))
        .event_callback(move |ev| {
            let who = who.clone();
            let seen = last_error.clone();
            async move {
                match ev {
                    async_nats::Event::ServerError(e) => {
                        tracing::warn!(client = %who, error = %e, "NATS refused an operation");
                    }
                    async_nats::Event::ClientError(async_nats::ClientError::Other(e)) => {
                        *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                    _ => {}
                }
            }
        }))
}

/// Where a user's replies arrive: `_INBOX.<user>`. Each NATS user may
/// subscribe to its own inbox only (`deploy/nats/auth/baton-auth.conf`), so
/// no credential reads another's replies (a coordinator's KV reads, an
/// approver's answers).
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

/// Errors that retrying will not mend: wrong credentials, a TLS mismatch.
fn classify(url: &str, who: &str, e: &str) -> Option<AuthError> {
    let lower = e.to_ascii_lowercase();
    if lower.contains("authorization violation") || lower.contains("signing nonce") {
        Some(AuthError::Refused {
            url: url.to_string(),
            who: who.to_string(),
            why: e.to_string(),
        })
    } else if lower.contains("tls") || lower.contains("certificate") {
        Some(AuthError::Tls {
            url: url.to_string(),
            why: e.to_string(),
        })
    } else {
        None
    }
}
