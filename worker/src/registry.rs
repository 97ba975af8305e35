//! This worker's entry in the `workers` bucket: who it is, what it serves and
//! what it runs now. Refreshed every third of the bucket's TTL, so a worker
//! that dies drops out by itself; a worker that stops removes its entry.
//!
//! A refresh that fails while the bus is away is retried at the next tick.
//! One that fails because the bucket is gone (the server says there is no
//! such stream) ends the registration with an error: the worker would run on
//! unseen, so it stops instead, and its restart creates the bucket again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, context::GetStreamErrorKind, kv, ErrorCode};
use baton_proto::{codec, v1};
use tokio_util::sync::CancellationToken;

/// What runs now, as "run/task#attempt"; a change refreshes the entry soon.
#[derive(Default)]
pub struct Running {
    set: Mutex<BTreeSet<String>>,
    changed: tokio::sync::Notify,
}

impl Running {
    pub fn add(&self, key: &str) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string());
        self.changed.notify_one();
    }
    pub fn remove(&self, key: &str) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.changed.notify_one();
    }
    fn list(&self) -> Vec<String> {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Changes closer together than this share one write.
const DEBOUNCE: Duration = Duration::from_millis(100);

pub struct Registration {
    /// Asked whether the bucket still exists when a refresh fails.
    pub js: jetstream::Context,
    pub bucket: kv::Store,
    pub info: v1::WorkerInfo,
    pub running: Arc<Running>,
    pub every: Duration,
}

impl Registration {
    async fn put(&self) -> Result<(), crate::Error> {
        let mut info = self.info.clone();
        info.running = self.running.list();
        info.seen_ms = codec::now_ms();
        if let Err(e) = self.bucket.put(&info.id, codec::encode(&info)).await {
            if self.bucket_gone().await {
                return Err(crate::Error::RegistryGone {
                    bucket: self.bucket.name.clone(),
                    source: e,
                });
            }
            tracing::warn!(error = %e, "worker registry not refreshed");
        }
        Ok(())
    }

    /// Only the server's own "no such stream" counts: a timeout or a lost
    /// connection says nothing about the bucket.
    async fn bucket_gone(&self) -> bool {
        match self.js.get_stream(&self.bucket.stream_name).await {
            Err(e) => {
                matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
            }
            Ok(_) => false,
        }
    }

    /// Refresh until `stop`, then remove the entry. Ends early, with an
    /// error, only when the bucket is gone.
    pub async fn run(self, stop: CancellationToken) -> Result<(), crate::Error> {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.put().await?,
                _ = self.running.changed.notified() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    self.put().await?;
                }
            }
        }
        if let Err(e) = self.bucket.delete(&self.info.id).await {
            tracing::debug!(error = %e, "worker entry not removed; it expires by itself");
        }
        Ok(())
    }
}
