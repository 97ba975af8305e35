//! The worker: pull tasks of its roles one at a time, run each in the
//! configured runtime, stream logs, heartbeat, publish the outcome, ack.
//!
//! Stateless: everything it knows arrives in the task message, so any number
//! of workers can share a role and any of them can die.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, AckKind};
use baton_proto::kinds::EventKind;
use baton_proto::subjects;
use baton_proto::supervise::Supervisor;
use baton_proto::topology::TopologyOptions;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelRegistry;
use crate::runtime::grant::Ceiling;
use crate::runtime::{Limits, Runtime};
use crate::task;
use crate::Error;

#[derive(Clone, Debug)]
pub struct Options {
    pub nats_url: String,
    /// Credentials and TLS for NATS (default: none).
    pub nats_auth: baton_proto::nats_auth::NatsAuth,
    pub roles: Vec<String>,
    /// Tasks run at once by this worker, across its roles.
    pub concurrency: usize,
    /// Name in events and logs; defaults to `<host>-<pid>`.
    pub worker_id: String,
    /// The role consumers' ack deadline; heartbeats extend it while a task runs.
    pub ack_wait: Duration,
    /// On shutdown, how long running tasks may finish before they are handed back.
    pub grace: Duration,
    pub limits: Limits,
    /// The most a role's `sandbox:` request may widen (network, mounts,
    /// resources); the default widens nothing.
    pub ceiling: Ceiling,
    pub topology: TopologyOptions,
    /// Deliveries of one attempt before the queue gives up on it (dead letter).
    pub max_deliver: i64,
    /// Total size of `/baton/out/` kept per attempt when the dispatch says 0.
    pub max_artifact_bytes: u64,
    /// Which of this host's variables and files plans may name as secrets;
    /// the default allows none. Baton's own are refused whatever it says.
    pub secret_policy: crate::secrets::SecretPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nats_url: baton_proto::bus::DEFAULT_NATS_URL.into(),
            nats_auth: Default::default(),
            roles: Vec::new(),
            concurrency: 4,
            worker_id: default_worker_id(),
            ack_wait: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            limits: Limits::default(),
            ceiling: Ceiling::default(),
            topology: TopologyOptions::default(),
            max_deliver: 5,
            max_artifact_bytes: crate::artifacts::DEFAULT_MAX_ARTIFACT_BYTES,
            secret_policy: Default::default(),
        }
    }
}

/// Unique per process: `<host>-<pid>-<random>`. Give a stable id (`--id`)
/// where a restarted worker should clean up after its predecessor.
pub fn default_worker_id() -> String {
    format!(
        "{}-{}-{:04x}",
        hostname(),
        std::process::id(),
        rand::random::<u16>()
    )
}

pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into())
}

pub struct Worker {
    pub(crate) ctx: Arc<task::Ctx>,
    registration: crate::registry::Registration,
    consumers: Vec<(String, jetstream::consumer::Consumer<pull::Config>)>,
    concurrency: usize,
    grace: Duration,
}

impl Options {
    pub async fn build(self, mut runtime: Runtime) -> Result<Worker, Error> {
        if self.roles.is_empty() {
            return Err(Error::NoRoles);
        }
        for r in &self.roles {
            let ok = !r.is_empty()
                && r.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(Error::BadRole(r.clone()));
            }
        }
        // Learned before connecting, from the same settings and environment
        // the connection uses: those are what a plan must never get.
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let secret_policy = self
            .secret_policy
            .clone()
            .prepare(&self.nats_auth, env)
            .map_err(|e| Error::Runtime(e.into()))?;
        let (allow_env, allow_dirs) = secret_policy.allowed();
        tracing::info!(worker = %self.worker_id, ?allow_env, ?allow_dirs, "secrets tasks may name (Baton's own never)");
        let baton_proto::bus::Bus { client, js, topo } =
            baton_proto::bus::connect_and_ensure(baton_proto::bus::BusOptions {
                url: &self.nats_url,
                name: &format!("baton-worker {}", self.worker_id),
                auth: &self.nats_auth,
                topology: &self.topology,
            })
            .await?;
        let mut consumers = Vec::new();
        for role in &self.roles {
            let name = subjects::role_consumer(role);
            let c = topo
                .tasks
                .get_or_create_consumer(
                    &name,
                    pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: subjects::role_tasks(role),
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: self.ack_wait,
                        max_deliver: self.max_deliver.max(2),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|source| Error::Consumer {
                    role: role.clone(),
                    consumer: name.clone(),
                    source,
                })?;
            consumers.push((role.clone(), c));
        }
        runtime.set_artifact_store(topo.artifacts.clone());
        let removed = runtime.adopt_leftovers(&self.worker_id).await?;
        if removed > 0 {
            tracing::warn!(worker = %self.worker_id, removed, "removed containers and volumes a predecessor left behind");
        }
        let running = Arc::new(crate::registry::Running::default());
        let registration = crate::registry::Registration {
            js: js.clone(),
            bucket: topo.workers.clone(),
            info: baton_proto::v1::WorkerInfo {
                id: self.worker_id.clone(),
                host: hostname(),
                roles: self.roles.clone(),
                concurrency: self.concurrency as u32,
                running: Vec::new(),
                runtime: runtime.name().to_string(),
                started_ms: baton_proto::codec::now_ms(),
                seen_ms: 0,
            },
            running: running.clone(),
            every: self.topology.worker_ttl / 3,
        };
        let ctx = Arc::new(task::Ctx {
            js,
            client,
            runtime,
            worker_id: self.worker_id.clone(),
            heartbeat: self.ack_wait / 3,
            limits: self.limits.clone(),
            ceiling: self.ceiling.clone(),
            secret_policy,
            max_artifact_bytes: crate::artifacts::limit(self.max_artifact_bytes),
            cancels: CancelRegistry::default(),
            shutdown: CancellationToken::new(),
            events: topo.events.clone(),
            running,
        });
        Ok(Worker {
            ctx,
            registration,
            consumers,
            concurrency: self.concurrency.max(1),
            grace: self.grace,
        })
    }
}

impl Worker {
    /// Serve until `cancel`, then stop taking work, let running tasks finish
    /// within the grace period, and hand what is left back to the queue.
    ///
    /// The parts (the registry entry, the cancel listener, every fetch loop,
    /// and the drain of running tasks) run under one [`Supervisor`]: when
    /// one ends by itself (the registry's bucket is gone, the cancel
    /// subscription closed, a loop panicked), the worker stops as it would on
    /// `cancel`, and `run` returns that part's error.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), Error> {
        tracing::info!(worker = %self.ctx.worker_id, runtime = self.ctx.runtime.name(),
            roles = ?self.consumers.iter().map(|c| &c.0).collect::<Vec<_>>(), concurrency = self.concurrency, "worker started");
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let tasks = TaskTracker::new();
        let fetchers = TaskTracker::new();
        // Cancellations of runs reach running tasks through core NATS.
        let cancels = self
            .subscribe(EventKind::CancelRequested.of_every_run())
            .await?;
        // A `stop_when` incident stops the run's tasks at once, as a cancellation does.
        let stops = self
            .subscribe(EventKind::Incident.of_every_run())
            .await?
            .filter(|m| {
                let stop = baton_proto::codec::decode::<baton_proto::v1::Event>(&m.payload)
                    .ok()
                    .and_then(|e| e.body)
                    .is_some_and(
                        |b| matches!(b, baton_proto::v1::event::Body::Incident(i) if i.stop),
                    );
                futures::future::ready(stop)
            });
        // Bounded past the tasks' own grace: their hand-back takes a moment too.
        let mut parts = Supervisor::new("worker", &cancel).with_grace(self.grace + STOP_MARGIN);
        let stop = parts.token();
        // The entry stays while tasks run, and goes after them.
        let registered = CancellationToken::new();
        parts.spawn("registry", self.registration.run(registered.clone()));
        let mut cancel_sub = futures::stream::select(cancels, stops);
        let ctx = self.ctx.clone();
        let stop_cancels = stop.clone();
        parts.spawn("cancel listener", async move {
            loop {
                tokio::select! {
                    _ = stop_cancels.cancelled() => break,
                    m = cancel_sub.next() => match m {
                        Some(m) => if let Some(run) = m.subject.split('.').nth(2) { ctx.cancels.cancel_run(run) },
                        None => break,
                    }
                }
            }
            Ok(())
        });
        let per_role = self.concurrency.min(4);
        for (role, consumer) in &self.consumers {
            for i in 0..per_role {
                let (consumer, permits, tasks, ctx, stop) = (
                    consumer.clone(),
                    permits.clone(),
                    tasks.clone(),
                    self.ctx.clone(),
                    stop.clone(),
                );
                let fetch = fetchers.track_future(fetch_loop(
                    role.clone(),
                    consumer,
                    permits,
                    tasks,
                    ctx,
                    stop,
                ));
                parts.spawn(format!("fetch {role} #{i}"), async move {
                    fetch.await;
                    Ok(())
                });
            }
        }
        let (ctx, grace, stop_drain) = (self.ctx.clone(), self.grace, stop.clone());
        parts.spawn("running tasks", async move {
            // However this ends (aborted past the grace, even), the entry goes.
            let _unregister = registered.drop_guard();
            stop_drain.cancelled().await;
            // Stop taking work (done), let running tasks finish within the
            // grace period, then hand what is left back to the queue.
            fetchers.close();
            fetchers.wait().await;
            tasks.close();
            if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
                tracing::warn!(grace = ?grace, "tasks still running after the grace period; handing them back");
                ctx.shutdown.cancel();
                tasks.wait().await;
            }
            Ok(())
        });
        let r = parts.run().await;
        let _ = self.ctx.client.flush().await;
        tracing::info!(worker = %self.ctx.worker_id, "worker stopped");
        r
    }

    async fn subscribe(&self, subject: String) -> Result<async_nats::Subscriber, Error> {
        self.ctx
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|source| Error::Subscribe { subject, source })
    }
}

/// How much longer than `grace` the worker's parts may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// Pull one task at a time, and only while a slot is free, so that tasks
/// do not queue up in this worker while their ack deadline runs.
///
/// The slot is not held while the pull waits on the server: an idle role
/// must not block a busy one. So when several roles' pulls land at once,
/// a task may wait here for a slot (at most one per fetcher); it is kept
/// alive with heartbeats meanwhile.
async fn fetch_loop(
    role: String,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    ctx: Arc<task::Ctx>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            p = permits.acquire() => match p { Ok(p) => drop(p), Err(_) => return },
        }
        let fetched = tokio::select! {
            _ = stop.cancelled() => return,
            f = fetch_one(&consumer) => f,
        };
        let msg = match fetched {
            Ok(Some(msg)) => msg,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(role, error = %e, "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => loop {
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => break p, Err(_) => return },
                    _ = tokio::time::sleep(ctx.heartbeat) => { let _ = msg.ack_with(AckKind::Progress).await; }
                    _ = stop.cancelled() => {
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                        return;
                    }
                }
            },
        };
        let ctx = ctx.clone();
        tasks.spawn(async move {
            task::handle(&ctx, msg).await;
            drop(permit);
        });
    }
}

async fn fetch_one(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
) -> Result<Option<jetstream::Message>, async_nats::Error> {
    // Short pulls: one that a restarted server forgot is given up within
    // seconds. No idle heartbeat: a heartbeat late over a cluster route would
    // make the client give up a pull the server still serves, and a message
    // delivered to it would wait out the whole ack deadline.
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await?;
    match batch.next().await {
        Some(Ok(m)) => Ok(Some(m)),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}
