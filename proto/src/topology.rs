//! The JetStream streams and buckets, created idempotently by every component
//! at start, so that start-up order does not matter.
//!
//! Each is one row of a table (`STREAMS`, `KV_BUCKETS`, `OBJECT_STORES`):
//! name, subjects, retention, limits, description. [`ensure`] makes every
//! row in one loop per table, and hands out the handles in the tables' order.

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

/// Wide enough that a publisher retrying after a lost ack is deduplicated.
const DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// How long a stream or bucket keeps what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// Until removed.
    Forever,
    /// [`TopologyOptions::log_max_age`] and [`TopologyOptions::log_max_bytes`],
    /// the oldest dropped first.
    Logs,
    /// Each entry [`TopologyOptions::worker_ttl`].
    WorkerTtl,
    /// Each entry this long.
    For(Duration),
}

impl Keep {
    fn max_age(self, opts: &TopologyOptions) -> Duration {
        match self {
            Keep::Forever => Duration::ZERO,
            Keep::Logs => opts.log_max_age,
            Keep::WorkerTtl => opts.worker_ttl,
            Keep::For(d) => d,
        }
    }
}

/// One stream, but for what [`TopologyOptions`] decides.
struct StreamSpec {
    name: &'static str,
    subjects: &'static [&'static str],
    retention: stream::RetentionPolicy,
    description: &'static str,
    /// [`Duration::ZERO`]: the server's default.
    duplicate_window: Duration,
    keep: Keep,
    /// Reads by subject as requests that NATS permissions can confine.
    allow_direct: bool,
    /// Nobody removes a message through the API.
    deny_delete_and_purge: bool,
}

impl StreamSpec {
    fn config(&self, opts: &TopologyOptions) -> stream::Config {
        let mut config = stream::Config {
            name: self.name.into(),
            subjects: self.subjects.iter().map(|s| s.to_string()).collect(),
            retention: self.retention,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            duplicate_window: self.duplicate_window,
            description: Some(self.description.into()),
            allow_direct: self.allow_direct,
            deny_delete: self.deny_delete_and_purge,
            deny_purge: self.deny_delete_and_purge,
            max_age: self.keep.max_age(opts),
            ..Default::default()
        };
        if self.keep == Keep::Logs {
            config.max_bytes = opts.log_max_bytes;
            config.discard = stream::DiscardPolicy::Old;
        }
        config
    }
}

/// One key-value bucket or object store, but for what [`TopologyOptions`] decides.
struct BucketSpec {
    name: &'static str,
    description: &'static str,
    keep: Keep,
}

impl BucketSpec {
    fn kv_config(&self, opts: &TopologyOptions) -> kv::Config {
        kv::Config {
            bucket: self.name.into(),
            description: self.description.into(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            max_age: self.keep.max_age(opts),
            ..Default::default()
        }
    }

    fn object_store_config(&self, opts: &TopologyOptions) -> jetstream::object_store::Config {
        jetstream::object_store::Config {
            bucket: self.name.into(),
            description: Some(self.description.into()),
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            ..Default::default()
        }
    }
}

/// The streams, in the order of the handles [`ensure`] gives out.
static STREAMS: [StreamSpec; 6] = [
    StreamSpec {
        name: EVENTS_STREAM,
        subjects: &[EVENTS_ALL],
        retention: stream::RetentionPolicy::Limits,
        description: "Everything that happens to a run, in order: the source of truth",
        duplicate_window: DEDUP_WINDOW,
        keep: Keep::Forever,
        // Workers read back one claim subject; a direct get is a request
        // on a subject that names it, so NATS permissions can confine
        // them to claims (see deploy/nats/auth/baton-auth.conf).
        allow_direct: true,
        deny_delete_and_purge: false,
    },
    StreamSpec {
        name: TASKS_STREAM,
        subjects: &[TASKS_ALL],
        retention: stream::RetentionPolicy::WorkQueue,
        description: "Task work queue, one durable consumer per role",
        duplicate_window: DEDUP_WINDOW,
        keep: Keep::Forever,
        allow_direct: false,
        deny_delete_and_purge: false,
    },
    StreamSpec {
        name: GATES_STREAM,
        subjects: &[GATES_ALL],
        retention: stream::RetentionPolicy::WorkQueue,
        description: "Gate evaluation work queue",
        duplicate_window: DEDUP_WINDOW,
        keep: Keep::Forever,
        allow_direct: false,
        deny_delete_and_purge: false,
    },
    StreamSpec {
        name: LOGS_STREAM,
        subjects: &[LOGS_ALL],
        retention: stream::RetentionPolicy::Limits,
        description: "Task output, kept for a limited age and size",
        duplicate_window: Duration::ZERO,
        keep: Keep::Logs,
        allow_direct: false,
        deny_delete_and_purge: false,
    },
    StreamSpec {
        name: DEADLETTER_STREAM,
        subjects: &[DEADLETTER_ALL],
        retention: stream::RetentionPolicy::Limits,
        description: "Task messages the queue gave up on",
        duplicate_window: DEDUP_WINDOW,
        keep: Keep::Forever,
        allow_direct: false,
        deny_delete_and_purge: false,
    },
    StreamSpec {
        name: AUDIT_STREAM,
        subjects: &[AUDIT_ALL],
        retention: stream::RetentionPolicy::Limits,
        description: "Audit trail: one SHA-256 hash chain of records per run",
        duplicate_window: DEDUP_WINDOW,
        keep: Keep::Forever,
        allow_direct: false,
        // Through the API nobody removes a record; an operator who can
        // change the stream config or its files still can, which is what
        // `baton audit verify` is there to catch.
        deny_delete_and_purge: true,
    },
];

/// The key-value buckets (one value per key), in the order of the handles
/// [`ensure`] gives out.
static KV_BUCKETS: [BucketSpec; 6] = [
    BucketSpec {
        name: PLANS_BUCKET,
        description: "Plans registered by name, for triggers",
        keep: Keep::Forever,
    },
    BucketSpec {
        name: RUNS_BUCKET,
        description: "Run state snapshots",
        keep: Keep::Forever,
    },
    BucketSpec {
        name: LEASES_BUCKET,
        description: "Which coordinator folds which run",
        keep: Keep::Forever,
    },
    BucketSpec {
        name: WORKERS_BUCKET,
        description: "Live workers: id, host, roles, concurrency, running tasks",
        keep: Keep::WorkerTtl,
    },
    BucketSpec {
        name: ROLES_BUCKET,
        description: "Role specs registered by `baton role apply`, shared by plans",
        keep: Keep::Forever,
    },
    BucketSpec {
        name: HOOK_NONCES_BUCKET,
        description: "Webhook signatures already accepted: each request starts at most one run",
        keep: Keep::For(HOOK_NONCE_TTL),
    },
];

/// The object stores, in the order of the handles [`ensure`] gives out.
static OBJECT_STORES: [BucketSpec; 2] = [
    BucketSpec {
        name: ARTIFACTS_BUCKET,
        description: "Files tasks left in /baton/out/, by run/task/attempt",
        keep: Keep::Forever,
    },
    BucketSpec {
        name: EVIDENCE_BUCKET,
        description: "Signed evidence (DSSE) of ended runs",
        keep: Keep::Forever,
    },
];

/// Make sure of every stream and bucket: those that exist are taken as they
/// are (but for direct gets on the events, see `allow_direct`), the others
/// created.
pub async fn ensure(
    js: &jetstream::Context,
    opts: &TopologyOptions,
) -> Result<Topology, async_nats::Error> {
    let mut streams = Vec::with_capacity(STREAMS.len());
    for spec in &STREAMS {
        let s = js.get_or_create_stream(spec.config(opts)).await?;
        streams.push(if spec.allow_direct {
            allow_direct(js, s).await
        } else {
            s
        });
    }
    let mut kvs = Vec::with_capacity(KV_BUCKETS.len());
    for spec in &KV_BUCKETS {
        kvs.push(match js.get_key_value(spec.name).await {
            Ok(store) => store,
            Err(_) => js.create_key_value(spec.kv_config(opts)).await?,
        });
    }
    let mut objects = Vec::with_capacity(OBJECT_STORES.len());
    for spec in &OBJECT_STORES {
        objects.push(match js.get_object_store(spec.name).await {
            Ok(store) => store,
            Err(_) => {
                js.create_object_store(spec.object_store_config(opts))
                    .await?
            }
        });
    }
    let [events, tasks, gates, logs, deadletter, audit] = one_each(streams)?;
    let [plans, runs, leases, workers, roles, hook_nonces] = one_each(kvs)?;
    let [artifacts, evidence] = one_each(objects)?;
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

/// One handle per row of a table, in its order.
fn one_each<T, const N: usize>(made: Vec<T>) -> Result<[T; N], async_nats::Error> {
    made.try_into()
        .map_err(|made: Vec<T>| format!("made {} of {N} streams or buckets", made.len()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TopologyOptions {
        // Nothing at its default, so each option shows where it lands.
        TopologyOptions {
            replicas: 3,
            log_max_age: Duration::from_secs(60),
            log_max_bytes: 1000,
            worker_ttl: Duration::from_secs(7),
        }
    }

    /// The tables make exactly the configurations `ensure` made when every
    /// stream was written out by hand, in the order of `Topology`'s handles.
    #[test]
    fn streams_are_configured_as_before() {
        let opts = opts();
        let want = vec![
            stream::Config {
                name: EVENTS_STREAM.into(),
                subjects: vec![EVENTS_ALL.into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: opts.replicas,
                duplicate_window: Duration::from_secs(120),
                description: Some(
                    "Everything that happens to a run, in order: the source of truth".into(),
                ),
                allow_direct: true,
                ..Default::default()
            },
            stream::Config {
                name: TASKS_STREAM.into(),
                subjects: vec![TASKS_ALL.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: opts.replicas,
                duplicate_window: Duration::from_secs(120),
                description: Some("Task work queue, one durable consumer per role".into()),
                ..Default::default()
            },
            stream::Config {
                name: GATES_STREAM.into(),
                subjects: vec![GATES_ALL.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: opts.replicas,
                duplicate_window: Duration::from_secs(120),
                description: Some("Gate evaluation work queue".into()),
                ..Default::default()
            },
            stream::Config {
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
            },
            stream::Config {
                name: DEADLETTER_STREAM.into(),
                subjects: vec![DEADLETTER_ALL.into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: opts.replicas,
                duplicate_window: Duration::from_secs(120),
                description: Some("Task messages the queue gave up on".into()),
                ..Default::default()
            },
            stream::Config {
                name: AUDIT_STREAM.into(),
                subjects: vec![AUDIT_ALL.into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: opts.replicas,
                duplicate_window: Duration::from_secs(120),
                deny_delete: true,
                deny_purge: true,
                description: Some("Audit trail: one SHA-256 hash chain of records per run".into()),
                ..Default::default()
            },
        ];
        let got: Vec<stream::Config> = STREAMS.iter().map(|s| s.config(&opts)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn buckets_are_configured_as_before() {
        let opts = opts();
        let kv = |name: &str, description: &str, max_age: Option<Duration>| kv::Config {
            bucket: name.into(),
            description: description.into(),
            history: 1,
            storage: jetstream::stream::StorageType::File,
            num_replicas: opts.replicas,
            max_age: max_age.unwrap_or_default(),
            ..Default::default()
        };
        let want = [
            kv(PLANS_BUCKET, "Plans registered by name, for triggers", None),
            kv(RUNS_BUCKET, "Run state snapshots", None),
            kv(LEASES_BUCKET, "Which coordinator folds which run", None),
            kv(
                WORKERS_BUCKET,
                "Live workers: id, host, roles, concurrency, running tasks",
                Some(opts.worker_ttl),
            ),
            kv(
                ROLES_BUCKET,
                "Role specs registered by `baton role apply`, shared by plans",
                None,
            ),
            kv(
                HOOK_NONCES_BUCKET,
                "Webhook signatures already accepted: each request starts at most one run",
                Some(HOOK_NONCE_TTL),
            ),
        ];
        // `kv::Config` has no `PartialEq`: its `Debug` shows every field.
        let got: Vec<String> = KV_BUCKETS
            .iter()
            .map(|b| format!("{:?}", b.kv_config(&opts)))
            .collect();
        let want: Vec<String> = want.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(got, want);

        let object_store = |name: &str, description: &str| jetstream::object_store::Config {
            bucket: name.into(),
            description: Some(description.into()),
            storage: jetstream::stream::StorageType::File,
            num_replicas: opts.replicas,
            ..Default::default()
        };
        let want = [
            object_store(
                ARTIFACTS_BUCKET,
                "Files tasks left in /baton/out/, by run/task/attempt",
            ),
            object_store(EVIDENCE_BUCKET, "Signed evidence (DSSE) of ended runs"),
        ];
        let got: Vec<String> = OBJECT_STORES
            .iter()
            .map(|b| format!("{:?}", b.object_store_config(&opts)))
            .collect();
        let want: Vec<String> = want.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(got, want);
    }
}
