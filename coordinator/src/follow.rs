//! Follow streams: `Logs` (with or without `--follow`) and `WatchRun` read a
//! stream through an ordered consumer, in a task that feeds the gRPC
//! response through a channel. The task ends when its client does (the
//! response, and so the channel's receiver, is dropped when the client
//! leaves or resets the stream), and then deletes its consumer at once:
//! nothing polls NATS for a reader who is gone.
//!
//! A coordinator that dies with followers leaves their consumers behind;
//! the server removes them after [`INACTIVE`] without a pull.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Ordered, OrderedConfig, OrderedError};
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::{self, stream::Stream};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tonic::Status;

/// How long the server keeps a follow consumer nobody pulls from. Pulls are
/// renewed every [`crate::engine::FEED_PULL`] while the task lives.
pub(crate) const INACTIVE: Duration = Duration::from_secs(5);

/// Why a follow stream's task ended when its client went away (the text
/// the coordinator logs).
pub(crate) const CLIENT_LEFT: &str = "client left";

/// An ordered consumer of one follow stream, deleted by [`Feed::close`].
pub(crate) struct Feed {
    js: jetstream::Context,
    stream: String,
    /// The consumer's name; a consumer the ordered reader had to recreate
    /// (after missed heartbeats) is named `<name>_<n>`.
    name: String,
    what: &'static str,
    messages: Ordered,
}

/// What [`Feed::next`] saw.
pub(crate) enum Next {
    Message(Box<jetstream::Message>),
    Error(OrderedError),
    /// Nothing within the idle time.
    Idle,
    /// The consumer's messages ended (the client is closing).
    Ended,
    /// The response's receiver was dropped: the client is gone.
    ClientLeft,
}

impl Feed {
    /// An ordered consumer of `filter` on `stream`, from its first message,
    /// that the server deletes after [`INACTIVE`] without a pull (an
    /// `OrderedConfig` cannot say so: it is made here and read as ordered).
    pub(crate) async fn open(
        js: &jetstream::Context,
        stream: &Stream,
        filter: String,
        what: &'static str,
    ) -> Result<Feed, Status> {
        let unavailable = |e: &dyn std::fmt::Display| Status::unavailable(e.to_string());
        let name = format!("follow-{what}-{:016x}", rand::random::<u64>());
        let made = stream
            .create_consumer(pull::Config {
                name: Some(name.clone()),
                description: Some(format!("baton {what}: a follow stream of one client")),
                filter_subject: filter.clone(),
                deliver_policy: DeliverPolicy::All,
                // What an ordered consumer is: no acks, one delivery, one
                // replica in memory.
                ack_policy: AckPolicy::None,
                max_deliver: 1,
                num_replicas: 1,
                memory_storage: true,
                inactive_threshold: INACTIVE,
                // Readers notice a restarted server within seconds.
                max_expires: crate::engine::FEED_PULL,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let ordered = OrderedConfig {
            name: Some(name.clone()),
            filter_subject: filter,
            deliver_policy: DeliverPolicy::All,
            max_expires: crate::engine::FEED_PULL,
            ..Default::default()
        };
        let consumer = Consumer::new(ordered, made.cached_info().clone(), js.clone());
        let messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                let _ = stream.delete_consumer(&name).await;
                return Err(unavailable(&e));
            }
        };
        Ok(Feed {
            js: js.clone(),
            stream: stream.cached_info().config.name.clone(),
            name,
            what,
            messages,
        })
    }

    /// The next message, or [`Next::Idle`] after `idle` without one (never,
    /// without `idle`), or [`Next::ClientLeft`] as soon as `tx`'s receiver
    /// is dropped, whichever comes first.
    pub(crate) async fn next<T>(&mut self, tx: &mpsc::Sender<T>, idle: Option<Duration>) -> Next {
        let message = async {
            match idle {
                Some(d) => tokio::time::timeout(d, self.messages.next()).await.ok(),
                None => Some(self.messages.next().await),
            }
        };
        tokio::select! {
            biased;
            _ = tx.closed() => Next::ClientLeft,
            m = message => match m {
                None => Next::Idle,
                Some(None) => Next::Ended,
                Some(Some(Ok(m))) => Next::Message(Box::new(m)),
                Some(Some(Err(e))) => Next::Error(e),
            },
        }
    }

    /// Stop pulling and delete the consumer (and any the ordered reader made
    /// in its place), so the server holds nothing for the gone reader.
    pub(crate) async fn close(self, why: &str) {
        let Feed {
            js,
            stream,
            name,
            what,
            messages,
        } = self;
        // Dropping the reader stops its pulls.
        drop(messages);
        let deleted = js.delete_consumer_from_stream(&name, &stream).await.is_ok();
        if !deleted {
            // Recreated under `<name>_<n>` (or already expired): find it by name.
            let prefix = format!("{name}_");
            if let Ok(s) = js.get_stream_no_info(&stream).await {
                let names: Vec<String> = s
                    .consumer_names()
                    .try_filter(|n| futures::future::ready(n.starts_with(&prefix)))
                    .try_collect()
                    .await
                    .unwrap_or_default();
                for n in names {
                    let _ = js.delete_consumer_from_stream(&n, &stream).await;
                }
            }
        }
        tracing::debug!(what, consumer = %name, reason = why, "follow stream ended");
    }
}

/// A gRPC response stream fed by `f` through a channel; `f` runs in a task
/// of its own, and should end (see [`Feed::next`]) when the channel closes.
pub(crate) fn spawn<T, F, Fut>(f: F) -> tokio_stream::wrappers::ReceiverStream<Result<T, Status>>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
