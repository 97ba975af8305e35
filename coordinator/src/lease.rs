//! Run ownership across coordinators.
//!
//! Each run is folded by exactly one coordinator: the holder of the key
//! `run.<id>` in the `leases` bucket. The holder renews it by compare-and-swap
//! on its revision; the revision is the fencing token, so a coordinator that
//! was frozen past the lease and comes back fails its next renewal and drops
//! the run. Peers watch the bucket: a lease that has not changed for `ttl`
//! (as seen on the peer's own clock, so no two clocks need agree), or one
//! given back with a delete, is taken over by compare-and-swap.
//!
//! A lease is created by the coordinator that accepts the run, before the
//! submission is published, so that a run is never on the bus unowned; runs
//! then spread over coordinators as clients spread their calls, and when a
//! coordinator dies its runs are shared by whoever wins each swap. There is
//! no shard count to fix in advance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Operation};
use baton_proto::subjects;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a lease says.
#[derive(Serialize, Deserialize)]
struct Value {
    owner: String,
    /// When the holder last renewed, on its clock; for people only.
    renewed_ms: i64,
}

struct Held {
    rev: u64,
    renewed: Instant,
}

struct Seen {
    rev: u64,
    owner: String,
    since: Instant,
}

/// Something the engine must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// This coordinator no longer owns the run: stop writing for it.
    Lost(String),
    /// The run's owner is gone: try [`Leases::take_over`].
    Orphaned { run: String, rev: Option<u64> },
}

pub struct Leases {
    kv: kv::Store,
    me: String,
    ttl: Duration,
    held: Mutex<HashMap<String, Held>>,
    seen: Mutex<HashMap<String, Seen>>,
}

/// The revision of a lease being created or swapped in right now.
const PENDING: u64 = 0;

fn key(run: &str) -> String {
    subjects::run_lease(run)
}

impl Leases {
    /// This coordinator's id: the actor of its own decisions in the audit trail.
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn new(kv: kv::Store, me: String, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            kv,
            me,
            ttl,
            held: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    fn value(&self) -> bytes::Bytes {
        serde_json::to_vec(&Value {
            owner: self.me.clone(),
            renewed_ms: baton_proto::codec::now_ms(),
        })
        .unwrap_or_default()
        .into()
    }

    pub fn holds(&self, run: &str) -> bool {
        lock(&self.held).contains_key(run)
    }

    /// Take a new run's lease; false if someone holds it already.
    pub async fn acquire(&self, run: &str) -> Result<bool, async_nats::Error> {
        // Marked held before it exists, so that the watcher, which may see
        // the new lease before `create` returns, never takes it for an orphan.
        self.hold(run, PENDING);
        match self.kv.create(key(run), self.value()).await {
            Ok(rev) => {
                self.hold(run, rev);
                Ok(true)
            }
            Err(e) => {
                self.forget(run);
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    Ok(false)
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// Swap ourselves in for an owner that is gone. `rev` is the revision we
    /// saw (the swap fails if anyone renewed or took it since); `None` for a
    /// lease given back.
    pub async fn take_over(&self, run: &str, rev: Option<u64>) -> bool {
        self.hold(run, PENDING);
        let r = match rev {
            Some(rev) => self.kv.update(key(run), self.value(), rev).await.ok(),
            None => self.kv.create(key(run), self.value()).await.ok(),
        };
        match r {
            Some(rev) => {
                self.hold(run, rev);
                true
            }
            None => {
                self.forget(run);
                false
            }
        }
    }

    fn hold(&self, run: &str, rev: u64) {
        lock(&self.seen).remove(run);
        lock(&self.held).insert(
            run.to_string(),
            Held {
                rev,
                renewed: Instant::now(),
            },
        );
    }

    /// The run ended: remove its lease for good (a purge, which peers ignore).
    pub async fn finish(&self, run: &str) {
        let rev = lock(&self.held).remove(run).map(|h| h.rev);
        if let Err(e) = self.kv.purge_expect_revision(key(run), rev).await {
            tracing::debug!(run, error = %e, "lease of a finished run not purged");
        }
    }

    /// Stop folding a run without ending it.
    pub fn forget(&self, run: &str) {
        lock(&self.held).remove(run);
    }

    /// Give every lease back (a delete, which peers take over at once).
    pub async fn release_all(&self) {
        let held: Vec<(String, u64)> = lock(&self.held).drain().map(|(r, h)| (r, h.rev)).collect();
        let n = held.len();
        futures::future::join_all(
            held.iter()
                .map(|(run, rev)| self.kv.delete_expect_revision(key(run), Some(*rev))),
        )
        .await;
        if n > 0 {
            tracing::info!(runs = n, "leases given back");
        }
    }

    /// Renew every lease each `ttl / 3`; report the ones lost.
    async fn renew(&self, tx: &mpsc::UnboundedSender<Change>) {
        let held: Vec<(String, u64)> = lock(&self.held)
            .iter()
            .filter(|(_, h)| h.rev != PENDING)
            .map(|(r, h)| (r.clone(), h.rev))
            .collect();
        let value = self.value();
        let results = futures::future::join_all(
            held.iter()
                .map(|(run, rev)| self.kv.update(key(run), value.clone(), *rev)),
        )
        .await;
        let mut held_now = lock(&self.held);
        for ((run, rev), r) in held.into_iter().zip(results) {
            let Some(h) = held_now.get_mut(&run) else {
                continue; // finished or forgotten meanwhile
            };
            if h.rev != rev {
                continue;
            }
            match r {
                Ok(new) => {
                    h.rev = new;
                    h.renewed = Instant::now();
                }
                Err(e) => {
                    let fenced = e.kind() == kv::UpdateErrorKind::WrongLastRevision;
                    // Unrenewed for two thirds of the lease: a peer may take
                    // it any moment now, so stop writing before it can.
                    if fenced || h.renewed.elapsed() > self.ttl * 2 / 3 {
                        tracing::warn!(run, fenced, error = %e, "lease lost; run dropped");
                        held_now.remove(&run);
                        let _ = tx.send(Change::Lost(run));
                    }
                }
            }
        }
    }

    fn observe(&self, e: &kv::Entry, tx: &mpsc::UnboundedSender<Change>) {
        let Some(run) = e.key.strip_prefix("run.") else {
            return;
        };
        match e.operation {
            Operation::Put => {
                let owner = serde_json::from_slice::<Value>(&e.value)
                    .map(|v| v.owner)
                    .unwrap_or_default();
                if owner == self.me && !self.holds(run) {
                    // Ours from before a restart under the same id: resume now.
                    let _ = tx.send(Change::Orphaned {
                        run: run.to_string(),
                        rev: Some(e.revision),
                    });
                }
                if owner != self.me {
                    lock(&self.seen).insert(
                        run.to_string(),
                        Seen {
                            rev: e.revision,
                            owner,
                            since: Instant::now(),
                        },
                    );
                }
            }
            Operation::Delete => {
                lock(&self.seen).remove(run);
                if !self.holds(run) {
                    let _ = tx.send(Change::Orphaned {
                        run: run.to_string(),
                        rev: None,
                    });
                }
            }
            Operation::Purge => {
                lock(&self.seen).remove(run);
            }
        }
    }

    /// Leases nobody renewed for `ttl`.
    fn expired(&self, tx: &mpsc::UnboundedSender<Change>) {
        let mut seen = lock(&self.seen);
        for (run, s) in seen.iter_mut() {
            if s.since.elapsed() > self.ttl {
                tracing::info!(run, owner = %s.owner, "lease expired; taking over");
                // Try again only after another full ttl.
                s.since = Instant::now();
                let _ = tx.send(Change::Orphaned {
                    run: run.clone(),
                    rev: Some(s.rev),
                });
            }
        }
    }

    /// Renew, watch and expire until `cancel`; changes go to `tx`.
    pub async fn run(
        self: Arc<Self>,
        tx: mpsc::UnboundedSender<Change>,
        cancel: CancellationToken,
    ) {
        let mut renew = tokio::time::interval(self.ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(self.ttl / 4);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = None;
        loop {
            if watch.is_none() {
                match self.kv.watch_with_history(">").await {
                    Ok(w) => watch = Some(w),
                    Err(e) => tracing::warn!(error = %e, "cannot watch leases; retrying"),
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = renew.tick() => self.renew(&tx).await,
                _ = check.tick() => self.expired(&tx),
                e = next(&mut watch) => match e {
                    Some(Ok(e)) => self.observe(&e, &tx),
                    Some(Err(e)) => tracing::warn!(error = %e, "lease watch hiccup"),
                    None => {
                        // The watch ended (NATS restarted): start over, and
                        // restart every clock, since nothing could renew meanwhile.
                        watch = None;
                        for s in lock(&self.seen).values_mut() {
                            s.since = Instant::now();
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }
}

async fn next(w: &mut Option<kv::Watch>) -> Option<Result<kv::Entry, kv::WatcherError>> {
    match w {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
