//! The live workers, as the `workers` bucket says: for `baton workers`, and so
//! that a run whose role nobody serves says so instead of waiting in silence.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use baton_proto::{codec, v1};
use futures::StreamExt;

use crate::Error;

/// How long a listing is reused: `waiting` is computed on every GetRun, and
/// clients poll that.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// A listing and when it was read.
type Cached = Option<(Instant, Arc<Vec<v1::WorkerInfo>>)>;

#[derive(Clone)]
pub struct WorkerDirectory {
    bucket: kv::Store,
    cache: Arc<Mutex<Cached>>,
}

impl WorkerDirectory {
    pub fn new(bucket: kv::Store) -> Self {
        Self {
            bucket,
            cache: Arc::default(),
        }
    }

    /// Every worker whose entry has not expired, by id.
    pub async fn list(&self) -> Result<Vec<v1::WorkerInfo>, Error> {
        let mut keys = self.bucket.keys().await.map_err(|e| Error::Bus(e.into()))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let Ok(k) = k else { continue };
            if let Ok(Some(b)) = self.bucket.get(&k).await {
                match codec::decode::<v1::WorkerInfo>(&b) {
                    Ok(w) => out.push(w),
                    Err(e) => {
                        tracing::warn!(key = %k, error = %e, "unreadable worker entry skipped")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Roles served by at least one live worker; `None` if the registry
    /// cannot be read (then nothing is claimed about roles).
    pub async fn live_roles(&self) -> Option<BTreeSet<String>> {
        let cached = {
            let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            c.as_ref()
                .filter(|(at, _)| at.elapsed() < CACHE_FOR)
                .map(|(_, w)| w.clone())
        };
        let workers = match cached {
            Some(w) => w,
            None => {
                let w = Arc::new(self.list().await.ok()?);
                *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), w.clone()));
                w
            }
        };
        Some(
            workers
                .iter()
                .flat_map(|w| w.roles.iter().cloned())
                .collect(),
        )
    }
}
