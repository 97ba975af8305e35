//! The JetStream streams and buckets, created idempotently by every component
//! at start, so that start-up order does not matter.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::subjects::*;

#[derive(Clone, Debug)]
pub struct TopologyOptions {
    /// Replicas of every stream and bucket: 1 for one server, 3 for a cluster.
    pub replicas: usize,
    /// How long logs are kept.
    pub log_max_age: Duration,
    pub log_max_bytes: i64,
    /// A worker missing from the registry this long is taken for dead.
    pub worker_ttl: Duration,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        Self {
            replicas: 1,
            log_max_age: Duration::from_secs(7 * 24 * 3600),
            log_max_bytes: 1 << 30,
            worker_ttl: Duration::from_secs(15),
        }
    }
}

/// Handles to what [`ensure`] created.
#[derive(Clone)]
pub struct Topology {
    pub events: stream::Stream,
    pub tasks: stream::Stream,
    pub gates: stream::Stream,
    pub logs: stream::Stream,
    pub plans: kv::Store,
    pub runs: kv::Store,
    /// Run ownership: `run.<id>` → the coordinator folding it; the revision fences.
    pub leases: kv::Store,
    /// Live workers, each refreshing its entry; entries expire after `worker_ttl`.
    pub workers: kv::Store,
    /// Work messages the queue gave up on, kept for people to read.
    pub deadletter: stream::Stream,
    pub roles: kv::Store,
    pub artifacts: jetstream::object_store::ObjectStore,
    /// One hash chain of audit records per run, on `baton.audit.<run>`.
    pub audit: stream::Stream,
    /// Signed evidence of ended runs, `<run>.intoto.json`.
    pub evidence: jetstream::object_store::ObjectStore,
    /// Webhook signatures already accepted, each kept [`HOOK_NONCE_TTL`].
    pub hook_nonces: kv::Store,
}

/// How long a webhook signature is remembered: twice the ±5 minutes a
/// request's timestamp may be off, so it outlives the request's validity,
/// and a minute for the clocks of coordinators and NATS to differ.
pub const HOOK_NONCE_TTL: Duration = Duration::from_secs(11 * 60);

/// Streams made before direct gets were needed get them: by the one user
/// who may update streams (the coordinator); others go on without.
async fn allow_direct(js: &jetstream::Context, mut s: stream::Stream) -> stream::Stream {
    let config = s.cached_info().config.clone();
    if config.allow_direct {
        return s;
    }
    match js
        .update_stream(stream::Config {
            allow_direct: true,
            ..config
        })
        .await
    {
        Ok(_) => {
            if let Ok(updated) = js.get_stream(&s.cached_info().config.name).await {
                s = updated;
            }
        }
        Err(e) => tracing::debug!(error = %e, "stream not updated for direct gets"),
    }
    s
}

pub async fn ensure(
    js: &jetstream::Context,
    opts: &TopologyOptions,
) -> Result<Topology, async_nats::Error> {
    let events = js
        .get_or_create_stream(stream::Config {
            name: EVENTS_STREAM.into(),
            subjects: vec![EVENTS_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            // Wide enough that a publisher retrying after a lost ack is deduplicated.
            duplicate_window: Duration::from_secs(120),
            description: Some(
                "Everything that happens to a run, in order: the source of truth".into(),
            ),
            // Workers read back one claim subject; a direct get is a request
            // on a subject that names it, so NATS permissions can confine
            // them to claims (see deploy/nats/auth/baton-auth.conf).
            allow_direct: true,
            ..Default::default()
        })
        .await?;
    let events = allow_direct(js, events).await;
    let tasks = js
        .get_or_create_stream(stream::Config {
            name: TASKS_STREAM.into(),
            subjects: vec![TASKS_ALL.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            duplicate_window: Duration::from_secs(120),
            description: Some("Task work queue, one durable consumer per role".into()),
            ..Default::default()
        })
        .await?;
    let gates = js
        .get_or_create_stream(stream::Config {
            name: GATES_STREAM.into(),
            subjects: vec![GATES_ALL.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            duplicate_window: Duration::from_secs(120),
            description: Some("Gate evaluation work queue".into()),
            ..Default::default()
        })
        .await?;
    let logs = js
        .get_or_create_stream(stream::Config {
            name: LOGS_STREAM.into(),
            subjects: vec![LOGS_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            max_age: opts.log_max_age,
            max_bytes: opts.log_max_bytes,
            discard: stream::DiscardPolicy::Old,
            description: Some("Task output, kept for a limited age and size".into()),
            ..Default::default()
        })
        .await?;
    let plans = kv_bucket(
        js,
        PLANS_BUCKET,
        "Plans registered by name, for triggers",
        opts,
        None,
    )
    .await?;
    let runs = kv_bucket(js, RUNS_BUCKET, "Run state snapshots", opts, None).await?;
    let leases = kv_bucket(
        js,
        LEASES_BUCKET,
        "Which coordinator folds which run",
        opts,
        None,
    )
    .await?;
    let workers = kv_bucket(
        js,
        WORKERS_BUCKET,
        "Live workers: id, host, roles, concurrency, running tasks",
        opts,
        Some(opts.worker_ttl),
    )
    .await?;
    let deadletter = js
        .get_or_create_stream(stream::Config {
            name: DEADLETTER_STREAM.into(),
            subjects: vec![DEADLETTER_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            duplicate_window: Duration::from_secs(120),
            description: Some("Task messages the queue gave up on".into()),
            ..Default::default()
        })
        .await?;
    let audit = js
        .get_or_create_stream(stream::Config {
            name: AUDIT_STREAM.into(),
            subjects: vec![AUDIT_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            duplicate_window: Duration::from_secs(120),
            // Through the API nobody removes a record; an operator who can
            // change the stream config or its files still can, which is what
            // `baton audit verify` is there to catch.
            deny_delete: true,
            deny_purge: true,
            description: Some("Audit trail: one SHA-256 hash chain of records per run".into()),
            ..Default::default()
        })
        .await?;
    let roles = kv_bucket(
        js,
        ROLES_BUCKET,
        "Role specs registered by `baton role apply`, shared by plans",
        opts,
        None,
    )
    .await?;
    let artifacts = match js.get_object_store(ARTIFACTS_BUCKET).await {
        Ok(store) => store,
        Err(_) => {
            js.create_object_store(jetstream::object_store::Config {
                bucket: ARTIFACTS_BUCKET.into(),
                description: Some("Files tasks left in /baton/out/, by run/task/attempt".into()),
                storage: jetstream::stream::StorageType::File,
                num_replicas: opts.replicas,
                ..Default::default()
            })
            .await?
        }
    };
    let evidence = object_store(
        js,
        EVIDENCE_BUCKET,
        "Signed evidence (DSSE) of ended runs",
        opts,
    )
    .await?;
    let hook_nonces = kv_bucket(
        js,
        HOOK_NONCES_BUCKET,
        "Webhook signatures already accepted: each request starts at most one run",
        opts,
        Some(HOOK_NONCE_TTL),
    )
    .await?;
    Ok(Topology {
        hook_nonces,
        audit,
        evidence,
        roles,
        artifacts,
        events,
        tasks,
        gates,
        logs,
        plans,
        runs,
        leases,
        workers,
        deadletter,
    })
}

async fn object_store(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    opts: &TopologyOptions,
) -> Result<jetstream::object_store::ObjectStore, async_nats::Error> {
    if let Ok(store) = js.get_object_store(name).await {
        return Ok(store);
    }
    Ok(js
        .create_object_store(jetstream::object_store::Config {
            bucket: name.into(),
            description: Some(description.into()),
            storage: jetstream::stream::StorageType::File,
            num_replicas: opts.replicas,
            ..Default::default()
        })
        .await?)
}

async fn kv_bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    opts: &TopologyOptions,
    max_age: Option<Duration>,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    Ok(js
        .create_key_value(kv::Config {
            bucket: name.into(),
            description: description.into(),
            history: 1,
            storage: jetstream::stream::StorageType::File,
            num_replicas: opts.replicas,
            max_age: max_age.unwrap_or_default(),
            ..Default::default()
        })
        .await?)
}
