//! Injecting one fault, and how long the affected work took to move again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton_proto::v1::event::Body;
use futures::StreamExt;
use rand::Rng;
use serde::Serialize;

use crate::check::Seen;
use crate::cluster::Cluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `kill -9` of a worker mid-task, restarted under the same id.
    WorkerKill,
    /// `kill -9` of a coordinator, restarted under a new id.
    CoordinatorKill,
    /// `kill -9` of nats-server, restarted on the same port and store.
    NatsRestart,
    /// SIGSTOP of a worker past its ack deadline, then SIGCONT (`docker pause`).
    WorkerPause,
    /// The worker's link to NATS cut past its ack deadline, then restored.
    WorkerDisconnect,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::WorkerKill,
        FaultKind::CoordinatorKill,
        FaultKind::NatsRestart,
        FaultKind::WorkerPause,
        FaultKind::WorkerDisconnect,
    ];
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::WorkerKill => "worker_kill",
            FaultKind::CoordinatorKill => "coordinator_kill",
            FaultKind::NatsRestart => "nats_restart",
            FaultKind::WorkerPause => "worker_pause",
            FaultKind::WorkerDisconnect => "worker_disconnect",
        })
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| {
                format!("unknown fault `{s}` — use worker_kill, coordinator_kill, nats_restart, worker_pause or worker_disconnect")
            })
    }
}

/// About how long injecting and lifting one fault takes.
pub fn expected_duration(kind: FaultKind, o: &crate::ChaosOptions) -> Duration {
    match kind {
        FaultKind::WorkerKill => Duration::from_millis(500),
        FaultKind::CoordinatorKill => o.lease_ttl + Duration::from_millis(500),
        FaultKind::NatsRestart => Duration::from_millis(1500),
        FaultKind::WorkerPause | FaultKind::WorkerDisconnect => o.ack_wait + Duration::from_secs(1),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub target: String,
    /// Wall clock when the fault began.
    pub at_ms: i64,
    /// When the fault was lifted (the process back, the link restored).
    pub lifted_ms: i64,
    /// Until the affected work moved again: measured live for coordinator
    /// kills (the leases moved), from the events for the rest; `None` when
    /// the fault touched no work in flight.
    pub recovered_ms: Option<f64>,
    /// Runs whose lease the killed coordinator held.
    pub affected_runs: usize,
}

pub struct Injector {
    pub cluster: Cluster,
    pub js: async_nats::jetstream::Context,
    pub ack_wait: Duration,
    pub rng: rand::rngs::StdRng,
}

impl Injector {
    pub async fn run(
        mut self,
        schedule: Vec<FaultKind>,
        every: Duration,
    ) -> (Vec<FaultRecord>, Cluster) {
        let mut log = Vec::new();
        for kind in schedule {
            tokio::time::sleep(every).await;
            match self.inject(kind).await {
                Ok(r) => {
                    tracing::info!(fault = %kind, target = %r.target, "fault injected and lifted");
                    log.push(r);
                }
                Err(e) => eprintln!("chaos: {kind} could not be injected: {e}"),
            }
        }
        (log, self.cluster)
    }

    async fn inject(&mut self, kind: FaultKind) -> Result<FaultRecord, String> {
        let now = baton_proto::codec::now_ms;
        // Past the ack deadline, so that the queue hands the work to someone else.
        let outage = self.ack_wait + Duration::from_secs(1);
        let at_ms = now();
        let mut rec = FaultRecord {
            kind,
            target: String::new(),
            at_ms,
            lifted_ms: 0,
            recovered_ms: None,
            affected_runs: 0,
        };
        match kind {
            FaultKind::WorkerKill => {
                let i = self.pick_worker().await;
                let w = &mut self.cluster.workers[i];
                rec.target = w.name.clone();
                w.kill9();
                tokio::time::sleep(Duration::from_millis(500)).await;
                w.spawn().map_err(|e| e.to_string())?;
            }
            FaultKind::WorkerPause => {
                let i = self.pick_worker().await;
                rec.target = self.cluster.workers[i].name.clone();
                self.cluster.workers[i].pause();
                tokio::time::sleep(outage).await;
                self.cluster.workers[i].resume();
            }
            FaultKind::WorkerDisconnect => {
                let i = self.pick_worker().await;
                rec.target = self.cluster.workers[i].name.clone();
                self.cluster.proxies[i].cut();
                tokio::time::sleep(outage).await;
                self.cluster.proxies[i].restore();
            }
            FaultKind::NatsRestart => {
                rec.target = "nats-server".into();
                self.cluster.restart_nats(Duration::from_secs(1)).await?;
            }
            FaultKind::CoordinatorKill => {
                // One that owns runs, when one does, so the fault hits work.
                let mut owners = Vec::new();
                for (i, c) in self.cluster.coordinators.iter().enumerate() {
                    let owner = format!("{}-g{}", c.name, c.generation);
                    let held = self.leases_of(&owner).await;
                    if !held.is_empty() {
                        owners.push((i, owner, held));
                    }
                }
                let (i, owner, held) = if owners.is_empty() {
                    let i = self.rng.random_range(0..self.cluster.coordinators.len());
                    let c = &self.cluster.coordinators[i];
                    (i, format!("{}-g{}", c.name, c.generation), Vec::new())
                } else {
                    let k = self.rng.random_range(0..owners.len());
                    owners.swap_remove(k)
                };
                rec.target = owner.clone();
                rec.affected_runs = held.len();
                self.cluster.coordinators[i].kill9();
                if !held.is_empty() {
                    rec.recovered_ms = self.wait_moved(&owner, &held).await;
                }
                self.cluster.coordinators[i]
                    .restart()
                    .map_err(|e| e.to_string())?;
            }
        }
        rec.lifted_ms = now();
        Ok(rec)
    }

    /// A worker running a task now, as the registry says, so that the fault
    /// hits work in flight; any worker when none is busy.
    async fn pick_worker(&mut self) -> usize {
        let mut busy = Vec::new();
        if let Ok(kv) = self
            .js
            .get_key_value(baton_proto::subjects::WORKERS_BUCKET)
            .await
        {
            for (i, w) in self.cluster.workers.iter().enumerate() {
                if let Ok(Some(v)) = kv.get(&w.name).await {
                    let running = baton_proto::codec::decode::<baton_proto::v1::WorkerInfo>(&v)
                        .map(|info| !info.running.is_empty())
                        .unwrap_or(false);
                    if running {
                        busy.push(i);
                    }
                }
            }
        }
        if busy.is_empty() {
            self.rng.random_range(0..self.cluster.workers.len())
        } else {
            busy[self.rng.random_range(0..busy.len())]
        }
    }

    async fn leases(&self) -> Option<async_nats::jetstream::kv::Store> {
        self.js
            .get_key_value(baton_proto::subjects::LEASES_BUCKET)
            .await
            .ok()
    }

    /// The runs whose lease `owner` holds now.
    async fn leases_of(&self, owner: &str) -> Vec<String> {
        let Some(kv) = self.leases().await else {
            return Vec::new();
        };
        let Ok(mut keys) = kv.keys().await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(Ok(k)) = keys.next().await {
            if let Ok(Some(v)) = kv.get(&k).await {
                if lease_owner(&v) == owner {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Wait until none of `keys` is held by `owner` any more (taken over, or
    /// the run ended), up to 60 s; the time it took.
    async fn wait_moved(&self, owner: &str, keys: &[String]) -> Option<f64> {
        let t0 = Instant::now();
        let kv = self.leases().await?;
        while t0.elapsed() < Duration::from_secs(60) {
            let mut left = 0;
            for k in keys {
                if let Ok(Some(v)) = kv.get(k).await {
                    if lease_owner(&v) == owner {
                        left += 1;
                    }
                }
            }
            if left == 0 {
                return Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

fn lease_owner(v: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(v)
        .ok()
        .and_then(|v| v["owner"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// For worker faults and NATS restarts, from the events: worker faults, the
/// time until the last task the worker held at the fault was started again
/// (or finished); a NATS restart, the time from the server being back to the
/// next task result. `None` when the fault touched no work.
pub fn from_events(f: &FaultRecord, events: &HashMap<String, Vec<Seen>>) -> Option<f64> {
    match f.kind {
        FaultKind::CoordinatorKill => None,
        FaultKind::NatsRestart => events
            .values()
            .flatten()
            .filter(|s| s.time_ms >= f.lifted_ms)
            .filter(|s| matches!(s.event.body, Some(Body::TaskFinished(_))))
            .map(|s| s.time_ms)
            .min()
            .map(|t| (t - f.lifted_ms) as f64),
        _ => {
            let mut worst: Option<i64> = None;
            for evs in events.values() {
                // task → (attempt, worker) of the latest start before the fault
                let mut held: HashMap<&str, u32> = HashMap::new();
                for s in evs.iter().filter(|s| s.time_ms < f.at_ms) {
                    match &s.event.body {
                        Some(Body::TaskStarted(t)) if t.worker == f.target => {
                            held.insert(t.task_id.as_str(), t.attempt);
                        }
                        Some(Body::TaskFinished(t)) => {
                            held.retain(|id, a| !(*id == t.task_id && *a == t.attempt));
                        }
                        Some(Body::TaskLost(t)) => {
                            held.retain(|id, a| !(*id == t.task_id && *a == t.attempt));
                        }
                        _ => {}
                    }
                }
                for (task, attempt) in held {
                    let moved = evs
                        .iter()
                        .filter(|s| s.time_ms >= f.at_ms)
                        .find(|s| match &s.event.body {
                            Some(Body::TaskStarted(t)) => t.task_id == task && t.attempt > attempt,
                            Some(Body::TaskFinished(t)) => {
                                t.task_id == task && t.attempt == attempt
                            }
                            _ => false,
                        })
                        .map(|s| s.time_ms - f.at_ms);
                    if let Some(ms) = moved {
                        worst = Some(worst.map_or(ms, |w| w.max(ms)));
                    }
                }
            }
            worst.map(|w| w as f64)
        }
    }
}
