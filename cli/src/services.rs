//! The long-running commands: read config, set up telemetry, build, run,
//! wait for a signal, then drain within a grace timeout.

use std::net::SocketAddr;
use std::time::Duration;

use baton_proto::supervise::Supervisor;
use baton_worker::runtime::{DockerRuntime, NoopRuntime, ProcessRuntime, Runtime, SandboxPolicy};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::exit::Exit;
use crate::hook_args::HookArgs;
use crate::nats_args::NatsAuthArgs;
use crate::{RuntimeKind, DEFAULT_GRPC_ADDR, DEFAULT_NATS_URL};

/// What every service shares.
#[derive(Args)]
pub struct BusArgs {
    /// NATS server(s), comma-separated for a cluster.
    #[arg(long, env = "BATON_NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,
    /// Replicas of every stream and bucket this service creates: 1 for one
    /// server, 3 for a cluster. Streams that exist keep theirs.
    #[arg(long, env = "BATON_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    #[command(flatten)]
    pub auth: NatsAuthArgs,
}

impl BusArgs {
    fn topology(&self) -> baton_proto::topology::TopologyOptions {
        baton_proto::topology::TopologyOptions {
            replicas: self.replicas,
            ..Default::default()
        }
    }
}

#[derive(Args)]
pub struct CoordinatorArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    #[arg(long, default_value = DEFAULT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,
    /// Serve webhook triggers (`POST /hooks/<plan>`, `GET /healthz`) here; off by default.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub auth: crate::auth_args::AuthArgs,
    /// Name in run leases (default: unique per process). A coordinator
    /// restarted under the same id resumes its runs at once.
    #[arg(long, env = "BATON_COORDINATOR_ID")]
    pub id: Option<String>,
    /// How long a coordinator may go silent before its runs are taken over.
    #[arg(long, default_value_t = 5000)]
    pub lease_ttl_ms: u64,
    /// Seconds between two sweeps of the work queues for messages a consumer
    /// gave up on whose max-deliveries advisory was missed (0: only the
    /// advisories; see docs/operations.md).
    #[arg(long, default_value_t = baton_coordinator::Options::default().deadletter_sweep.as_secs())]
    pub deadletter_sweep_secs: u64,
    /// Sign each ended run's evidence with this PEM PKCS#8 ed25519 key
    /// (`baton evidence keygen`); without it no evidence is stored.
    #[arg(long, env = "BATON_EVIDENCE_KEY")]
    pub evidence_key: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub sandbox: crate::sandbox_args::SandboxArgs,
    /// Name in the registry and on its containers (default: unique per
    /// process). A worker restarted under the same id removes the containers
    /// its predecessor left behind.
    #[arg(long, env = "BATON_WORKER_ID")]
    pub id: Option<String>,
    /// The task ack deadline: a task whose worker stops heartbeating is run
    /// again after this long. Heartbeats go every third of it.
    #[arg(long, default_value_t = 30)]
    pub ack_wait_secs: u64,
    /// Deliveries of one attempt before it is dead-lettered.
    #[arg(long, default_value_t = 5)]
    pub max_deliver: i64,
    /// Total bytes an attempt may leave in /baton/out/ when its plan sets no
    /// limit; more fails the attempt. Default 64 MiB.
    #[arg(long, default_value_t = baton_worker::artifacts::DEFAULT_MAX_ARTIFACT_BYTES)]
    pub max_artifact_bytes: u64,
    /// Roles to serve, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub roles: Vec<String>,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[arg(long, value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
    /// Seconds running tasks may take to finish on shutdown before they are handed back.
    #[arg(long, default_value_t = 30)]
    pub grace_secs: u64,
}

#[derive(Args)]
pub struct GatesArgs {
    #[command(flatten)]
    pub bus: BusArgs,
}

/// SIGINT or SIGTERM.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

pub async fn make_runtime(kind: RuntimeKind) -> Result<Runtime, String> {
    Ok(match kind {
        RuntimeKind::Docker => DockerRuntime::connect(SandboxPolicy::default())
            .await
            .map_err(|e| e.to_string())?
            .into(),
        RuntimeKind::Process => {
            eprintln!("warning: the process runtime runs tasks UNSANDBOXED on this machine; use it only where Docker is not available");
            ProcessRuntime::new().into()
        }
        RuntimeKind::Noop => NoopRuntime::new().into(),
    })
}

/// Run `parts` until a signal or until one of them ends, under the rule
/// every component follows ([`baton_proto::supervise`]): the first part to
/// end stops the rest, its error is logged then and returned, and the rest
/// get the supervisor's grace to stop. `cancel` is the token `parts` was made
/// from; a signal cancels it. Exit code 0 only when a signal stopped
/// everything in time.
pub(crate) async fn serve(
    parts: Supervisor<String>,
    cancel: CancellationToken,
) -> Result<(), Exit> {
    let on_signal = tokio::spawn(async move {
        signal().await;
        eprintln!("stopping…");
        cancel.cancel();
    });
    let r = parts.run().await;
    on_signal.abort();
    r.map_err(Exit::failure)
}

/// How long `baton coordinator|gates` give the component to stop (the
/// worker: its `--grace-secs` more). Longer than the components' own bound,
/// so that a part that hangs is named by the component.
const COMPONENT_GRACE: Duration = Duration::from_secs(10);

/// `baton coordinator|worker|gates`: one component, run by `run(token)`,
/// until a signal or until it ends by itself; the exit code as [`serve`].
async fn serve_one<F>(
    process: &str,
    component: &str,
    grace: Duration,
    run: impl FnOnce(CancellationToken) -> F,
) -> Result<(), Exit>
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let cancel = CancellationToken::new();
    let mut parts = Supervisor::new(process, &cancel).with_grace(grace);
    parts.spawn(component, run(parts.token()));
    serve(parts, cancel).await
}

pub async fn coordinator(a: CoordinatorArgs) -> Result<(), Exit> {
    let tel = crate::telemetry::init("baton-coordinator", "info");
    let defaults = baton_coordinator::Options::default();
    let opts = baton_coordinator::Options {
        topology: a.bus.topology(),
        nats_auth: a.bus.auth.auth(),
        nats_url: a.bus.nats_url,
        grpc_addr: a.grpc_addr,
        id: a.id.unwrap_or(defaults.id),
        lease_ttl: Duration::from_millis(a.lease_ttl_ms),
        deadletter_sweep: Duration::from_secs(a.deadletter_sweep_secs),
        evidence_key: a.evidence_key,
        ..defaults
    };
    let opts = a
        .hooks
        .configure(a.http_addr, opts)
        .map_err(Exit::failure)?;
    let opts = a.auth.configure(opts).map_err(Exit::failure)?;
    let note = crate::hook_args::off_note(&opts);
    let id = opts.id.clone();
    let (c, handle) = opts.build().await.map_err(Exit::failure)?;
    eprintln!(
        "coordinator {id}: admin gRPC on {} ({}, bearer tokens)",
        handle.grpc_addr,
        a.auth.describe()
    );
    if let Some(addr) = handle.http_addr {
        eprintln!("coordinator {id}: webhooks on http://{addr}/hooks/<plan>{note}");
    }
    let r = serve_one(
        "baton coordinator",
        "coordinator",
        COMPONENT_GRACE,
        |t| async move { c.run(t).await.map_err(|e| e.to_string()) },
    )
    .await;
    tel.shutdown();
    r
}

pub async fn worker(a: WorkerArgs) -> Result<(), Exit> {
    let tel = crate::telemetry::init("baton-worker", "info");
    let runtime = make_runtime(a.runtime).await.map_err(Exit::failure)?;
    let grace = Duration::from_secs(a.grace_secs);
    let defaults = baton_worker::Options::default();
    let opts = baton_worker::Options {
        topology: a.bus.topology(),
        nats_auth: a.bus.auth.auth(),
        nats_url: a.bus.nats_url,
        roles: a.roles,
        concurrency: a.concurrency,
        grace,
        worker_id: a.id.unwrap_or(defaults.worker_id),
        ack_wait: Duration::from_secs(a.ack_wait_secs.max(1)),
        max_deliver: a.max_deliver,
        max_artifact_bytes: a.max_artifact_bytes,
        ceiling: a.sandbox.ceiling(),
        secret_policy: a.sandbox.secrets.policy(),
        ..defaults
    };
    let w = opts.build(runtime).await.map_err(Exit::failure)?;
    let r = serve_one(
        "baton worker",
        "worker",
        grace + COMPONENT_GRACE,
        |t| async move { w.run(t).await.map_err(|e| e.to_string()) },
    )
    .await;
    tel.shutdown();
    r
}

pub async fn gates(a: GatesArgs) -> Result<(), Exit> {
    let tel = crate::telemetry::init("baton-gates", "info");
    let g = (baton_gates::Options {
        nats_url: a.bus.nats_url.clone(),
        nats_auth: a.bus.auth.auth(),
        topology: a.bus.topology(),
        ..Default::default()
    })
    .build()
    .await
    .map_err(Exit::failure)?;
    let r = serve_one("baton gates", "gates", COMPONENT_GRACE, |t| async move {
        g.run(t).await.map_err(|e| e.to_string())
    })
    .await;
    tel.shutdown();
    r
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use baton_test_support::NatsServer;

    use super::*;

    /// What `baton coordinator` does once the coordinator is built, with a
    /// coordinator whose engine fails at once (its runs bucket is gone): the
    /// process's exit code is 1, within a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_coordinator_that_fails_exits_non_zero_within_a_second() {
        let nats = NatsServer::start();
        let (c, _handle) = baton_coordinator::Options {
            nats_url: nats.url(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            auth: baton_coordinator::auth::Auth::Off,
            ..Default::default()
        }
        .build()
        .await
        .unwrap();
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        js.delete_key_value(baton_proto::subjects::RUNS_BUCKET)
            .await
            .unwrap();
        let started = Instant::now();
        let code = crate::exit::finish(
            tokio::time::timeout(
                Duration::from_secs(1),
                serve_one(
                    "baton coordinator",
                    "coordinator",
                    COMPONENT_GRACE,
                    |t| async move { c.run(t).await.map_err(|e| e.to_string()) },
                ),
            )
            .await
            .expect("exits within a second"),
        );
        assert_eq!(code, 1, "after {:?}", started.elapsed());
    }

    /// A part that ends by itself (here, at once and without an error) takes
    /// the process down with exit code 1; the rest are stopped.
    #[tokio::test]
    async fn a_part_that_ends_by_itself_exits_non_zero_and_stops_the_rest() {
        let cancel = CancellationToken::new();
        let mut parts = Supervisor::new("baton dev", &cancel).with_grace(Duration::from_secs(5));
        let t = parts.token();
        parts.spawn("coordinator, gates and worker", async move {
            t.cancelled().await;
            Ok(())
        });
        parts.spawn("auto-approve", async { Ok(()) });
        let code = crate::exit::finish(
            tokio::time::timeout(Duration::from_secs(1), serve(parts, cancel))
                .await
                .expect("exits within a second"),
        );
        assert_eq!(code, 1);
    }
}
