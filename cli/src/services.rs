//! The long-running commands: read config, set up telemetry, build, run,
//! wait for a signal, then drain within a grace timeout.

use std::net::SocketAddr;
use std::time::Duration;

use baton_worker::runtime::{DockerRuntime, NoopRuntime, ProcessRuntime, Runtime, SandboxPolicy};
use clap::Args;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

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

pub(crate) fn fail(e: impl std::fmt::Display) -> u8 {
    eprintln!("error: {e}");
    1
}

fn report(r: Result<Result<(), String>, tokio::task::JoinError>) -> u8 {
    match r {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => fail(e),
        Err(e) => fail(e),
    }
}

/// Run until a signal, then cancel and give the parts `grace` to stop.
pub(crate) async fn serve(
    parts: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    cancel: CancellationToken,
    grace: Duration,
) -> u8 {
    let mut parts: futures::stream::FuturesUnordered<_> = parts.into_iter().collect();
    let mut code = 0;
    tokio::select! {
        _ = signal() => eprintln!("stopping…"),
        Some(r) = parts.next() => {
            // A part that ends on its own takes the whole down.
            code = report(r).max(1);
        }
    }
    cancel.cancel();
    let drain = async {
        let mut c = 0;
        while let Some(r) = parts.next().await {
            c = c.max(report(r));
        }
        c
    };
    match tokio::time::timeout(grace, drain).await {
        Ok(c) => code.max(c),
        Err(_) => {
            eprintln!("warning: not everything stopped within {grace:?}");
            1
        }
    }
}

pub async fn coordinator(a: CoordinatorArgs) -> u8 {
    let tel = crate::telemetry::init("baton-coordinator", "info");
    let cancel = CancellationToken::new();
    let defaults = baton_coordinator::Options::default();
    let opts = baton_coordinator::Options {
        topology: a.bus.topology(),
        nats_auth: a.bus.auth.auth(),
        nats_url: a.bus.nats_url,
        grpc_addr: a.grpc_addr,
        id: a.id.unwrap_or(defaults.id),
        lease_ttl: Duration::from_millis(a.lease_ttl_ms),
        evidence_key: a.evidence_key,
        ..defaults
    };
    let opts = match a.hooks.configure(a.http_addr, opts) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let opts = match a.auth.configure(opts) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let note = crate::hook_args::off_note(&opts);
    let id = opts.id.clone();
    let (c, handle) = match opts.build().await {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    eprintln!(
        "coordinator {id}: admin gRPC on {} ({}, bearer tokens)",
        handle.grpc_addr,
        a.auth.describe()
    );
    if let Some(addr) = handle.http_addr {
        eprintln!("coordinator {id}: webhooks on http://{addr}/hooks/<plan>{note}");
    }
    let t = cancel.clone();
    let part = tokio::spawn(async move { c.run(t).await.map_err(|e| e.to_string()) });
    let code = serve(vec![part], cancel, Duration::from_secs(10)).await;
    tel.shutdown();
    code
}

pub async fn worker(a: WorkerArgs) -> u8 {
    let tel = crate::telemetry::init("baton-worker", "info");
    let runtime = match make_runtime(a.runtime).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
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
    let w = match opts.build(runtime).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let cancel = CancellationToken::new();
    let t = cancel.clone();
    let part = tokio::spawn(async move { w.run(t).await.map_err(|e| e.to_string()) });
    let code = serve(vec![part], cancel, grace + Duration::from_secs(10)).await;
    tel.shutdown();
    code
}

pub async fn gates(a: GatesArgs) -> u8 {
    let tel = crate::telemetry::init("baton-gates", "info");
    let g = match (baton_gates::Options {
        nats_url: a.bus.nats_url.clone(),
        nats_auth: a.bus.auth.auth(),
        topology: a.bus.topology(),
        ..Default::default()
    })
    .build()
    .await
    {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let cancel = CancellationToken::new();
    let t = cancel.clone();
    let part = tokio::spawn(async move { g.run(t).await.map_err(|e| e.to_string()) });
    let code = serve(vec![part], cancel, Duration::from_secs(10)).await;
    tel.shutdown();
    code
}
