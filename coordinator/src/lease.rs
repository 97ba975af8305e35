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
//! A holder that cannot renew for two thirds of `ttl` (a NATS stall, a
//! frozen process) stops writing for the run, and then watches its own lease
//! as a peer would: if nobody took it over within `ttl`, it takes it back by
//! the same compare-and-swap, so a lone coordinator never strands its runs.
//! Each renewal is bounded by `ttl / 3`, so a stalled request cannot hold the
//! loop past the next renewal or the expiry checks.
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
    /// `None`: given back (deleted), so taken with a create.
    rev: Option<u64>,
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
        let seen = lock(&self.seen).remove(run);
        self.hold(run, PENDING);
        let swap = async {
            match rev {
                Some(rev) => self
                    .kv
                    .update(key(run), self.value(), rev)
                    .await
                    .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self
                    .kv
                    .create(key(run), self.value())
                    .await
                    .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
            }
        };
        match tokio::time::timeout(self.ttl / 3, swap).await {
            Ok(Ok(rev)) => {
                self.hold(run, rev);
                true
            }
            Ok(Err(true)) => {
                // Someone was faster: theirs now.
                self.forget(run);
                false
            }
            Ok(Err(false)) | Err(_) => {
                // NATS did not answer: nobody may have it, so try again
                // after another `ttl`.
                self.forget(run);
                let owner = seen.map(|s| s.owner).unwrap_or_default();
                lock(&self.seen).insert(
                    run.to_string(),
                    Seen {
                        rev,
                        owner,
                        since: Instant::now(),
                    },
                );
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
        let results = futures::future::join_all(held.iter().map(|(run, rev)| {
            tokio::time::timeout(self.ttl / 3, self.kv.update(key(run), value.clone(), *rev))
        }))
        .await;
        let mut lapsed = Vec::new();
        let mut held_now = lock(&self.held);
        for ((run, rev), r) in held.into_iter().zip(results) {
            let Some(h) = held_now.get_mut(&run) else {
                continue; // finished or forgotten meanwhile
            };
            if h.rev != rev {
                continue;
            }
            let (fenced, error) = match r {
                Ok(Ok(new)) => {
                    h.rev = new;
                    h.renewed = Instant::now();
                    continue;
                }
                Ok(Err(e)) => (
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                    e.to_string(),
                ),
                Err(_) => (false, format!("no answer within {:?}", self.ttl / 3)),
            };
            // Unrenewed for two thirds of the lease: a peer may take it any
            // moment now, so stop writing before it can.
            if fenced || h.renewed.elapsed() > self.ttl * 2 / 3 {
                tracing::warn!(run, fenced, error, "lease lost; run dropped");
                held_now.remove(&run);
                if !fenced {
                    lapsed.push((run.clone(), rev));
                }
                let _ = tx.send(Change::Lost(run));
            }
        }
        drop(held_now);
        // Not taken by anyone yet, as far as we know: watch it like a peer's,
        // so that it is taken back if nobody else does within `ttl`.
        let mut seen = lock(&self.seen);
        for (run, rev) in lapsed {
            seen.insert(
                run,
                Seen {
                    rev: Some(rev),
                    owner: self.me.clone(),
                    since: Instant::now(),
                },
            );
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
                            rev: Some(e.revision),
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
                    rev: s.rev,
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
