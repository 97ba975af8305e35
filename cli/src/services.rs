//! The long-running commands: read config, set up telemetry, build, run,
//! wait for a signal, then drain within a grace timeout.

use std::net::SocketAddr;
use std::time::Duration;

use baton_proto::v1::{self, event::Body};
use baton_worker::runtime::{DockerRuntime, NoopRuntime, ProcessRuntime, Runtime, SandboxPolicy};
use clap::Args;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::hook_args::HookArgs;
use crate::nats_args::NatsAuthArgs;
use crate::{RuntimeKind, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, DEFAULT_NATS_URL};

#[derive(Args)]
pub struct DevArgs {
    /// Use this NATS server instead of starting one.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Credentials for --nats-url (dev's own nats-server has none); every part uses them.
    #[command(flatten)]
    pub nats_auth: NatsAuthArgs,
    /// Port of the nats-server that dev starts.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// Keep JetStream data here (default: a temporary folder removed on exit).
    #[arg(long)]
    pub store_dir: Option<std::path::PathBuf>,
    #[arg(long, default_value = DEFAULT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,
    /// Serve webhook triggers (`POST /hooks/<plan>`) here.
    #[arg(long, default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[arg(long, value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Roles the dev worker serves (default: the roles of every plan in examples/, and common ones).
    #[arg(long, value_delimiter = ',', default_value = crate::dev_roles::DEV_ROLES)]
    pub roles: Vec<String>,
    /// Approve every approval at once. For demos only: it defeats the point of approvals.
    #[arg(long)]
    pub auto_approve: bool,
    /// Serve the admin API WITHOUT authentication: whoever reaches the port
    /// is an admin. Only dev has this flag.
    #[arg(long)]
    pub no_auth: bool,
    /// Sign ended runs' evidence with this PEM PKCS#8 ed25519 key (default:
    /// `<store-dir or .baton>/evidence.key`, made on first start).
    #[arg(long)]
    pub evidence_key: Option<std::path::PathBuf>,
}

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

fn fail(e: impl std::fmt::Display) -> u8 {
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
async fn serve(
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

pub async fn dev(a: DevArgs) -> u8 {
    let tel = crate::telemetry::init("baton", "info");
    let nats = match &a.nats_url {
        Some(_) => None,
        None => match baton::nats_server::DevNats::start(a.nats_port, a.store_dir.as_deref()) {
            Ok(n) => Some(n),
            Err(e) => return fail(e),
        },
    };
    let nats_url = a
        .nats_url
        .clone()
        .or_else(|| nats.as_ref().map(|n| n.url.clone()))
        .unwrap_or_else(|| DEFAULT_NATS_URL.into());
    let runtime = match make_runtime(a.runtime).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let nats_auth = a.nats_auth.auth();
    let worker = baton_worker::Options {
        nats_auth: nats_auth.clone(),
        roles: a.roles.clone(),
        concurrency: a.concurrency,
        grace: Duration::from_secs(5),
        ..Default::default()
    };
    let evidence_key = match a.evidence_key.clone() {
        Some(k) => k,
        None => match dev_evidence_key(a.store_dir.as_deref()) {
            Ok(k) => k,
            Err(e) => return fail(e),
        },
    };
    let (auth, token) = if a.no_auth {
        (baton_coordinator::auth::Auth::Off, None)
    } else {
        let (t, store) = baton::local::admin_token("dev-admin");
        (baton_coordinator::auth::Auth::Tokens(store), Some(t))
    };
    let coordinator = baton_coordinator::Options {
        grpc_addr: a.grpc_addr,
        auth,
        nats_auth: nats_auth.clone(),
        evidence_key: Some(evidence_key.clone()),
        ..Default::default()
    };
    let coordinator = match a.hooks.configure(Some(a.http_addr), coordinator) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let note = crate::hook_args::off_note(&coordinator);
    let mut local = match baton::local::LocalBaton::start_with(
        &nats_url,
        coordinator,
        vec![baton::local::WorkerSpec {
            options: worker,
            runtime,
        }],
    )
    .await
    {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let cancel = local.cancel.clone();
    let grpc_addr = local.grpc_addr;
    let mut parts = std::mem::take(&mut local.parts);
    if a.auto_approve {
        eprintln!(
            "warning: --auto-approve approves every approval at once; never use it outside a demo"
        );
        let t = cancel.child_token();
        let url = nats_url.clone();
        let auth = nats_auth.clone();
        parts.push(tokio::spawn(
            async move { auto_approve(url, auth, t).await },
        ));
    }
    let token_file = match crate::dev_token::publish(token.as_ref(), grpc_addr) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    eprintln!("baton dev is up");
    eprintln!("  nats:      {nats_url}");
    eprintln!("  admin:     http://{}  (gRPC, with reflection)", grpc_addr);
    match (&token, &token_file) {
        (Some(t), Some(f)) => {
            eprintln!("  token:     {}  (admin, new each start)", t.expose());
            eprintln!(
                "             also in {} (0600), where the CLI finds it",
                f.display()
            );
        }
        _ => crate::dev_token::warn_no_auth(),
    }
    if let Some(addr) = local.http_addr {
        eprintln!("  webhooks:  http://{addr}/hooks/<plan>{note}");
    }
    eprintln!(
        "  worker:    roles {} · runtime {:?} · concurrency {}",
        a.roles.join(","),
        a.runtime,
        a.concurrency
    );
    eprintln!(
        "  evidence:  signed with {}; verify with --key {}.pub",
        evidence_key.display(),
        evidence_key.display()
    );
    eprintln!(
        "  try:       baton run examples/release-train.yaml --wait   (Ctrl-C stops everything)"
    );
    let code = serve(parts, cancel, Duration::from_secs(15)).await;
    if let Some(f) = token_file {
        // The token dies with this process; a stale file would only mislead.
        let _ = std::fs::remove_file(f);
    }
    drop(local);
    drop(nats);
    tel.shutdown();
    code
}

/// Approve every approval as soon as a run asks for one (demo only).
async fn auto_approve(
    nats_url: String,
    auth: baton_proto::nats_auth::NatsAuth,
    cancel: CancellationToken,
) -> Result<(), String> {
    let client = baton_proto::bus::connect_with(&nats_url, "baton-auto-approve", &auth)
        .await
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client.clone());
    let mut sub = client
        .subscribe(baton_proto::subjects::events_of_kind("phase"))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let m = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Ok(ev) = baton_proto::codec::decode::<v1::Event>(&m.payload) else {
            continue;
        };
        let Some(Body::PhaseChanged(p)) = &ev.body else {
            continue;
        };
        if p.status != "awaiting_approval" {
            continue;
        }
        let id = format!("{}:decision:auto:{}:{}", ev.run_id, p.phase_id, ev.time_ms);
        let body = Body::Decision(v1::Decision {
            approve: true,
            by: "baton dev --auto-approve".into(),
            reason: "auto-approved (demo)".into(),
            task_id: String::new(),
        });
        let tp = m
            .headers
            .as_ref()
            .and_then(|h| h.get(baton_proto::subjects::TRACEPARENT_HEADER))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        if let Err(e) = baton_proto::bus::publish_event(&js, &ev.run_id, &id, body, &tp).await {
            tracing::warn!(run = %ev.run_id, error = %e, "auto-approval not published");
        } else {
            tracing::info!(run = %ev.run_id, phase = %p.phase_id, "auto-approved");
        }
    }
}

/// `baton dev`'s signing key, `<state>/evidence.key`, made on first start so
/// that every dev run has evidence.
fn dev_evidence_key(store_dir: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    let dir = store_dir.unwrap_or(std::path::Path::new(".baton"));
    let key = dir.join("evidence.key");
    if !key.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let public = baton_coordinator::evidence::keys::write_pair(
            &key,
            &baton_coordinator::evidence::keys::generate(),
        )
        .map_err(|e| e.to_string())?;
        eprintln!(
            "made an evidence signing key: {} (public: {})",
            key.display(),
            public.display()
        );
    }
    Ok(key)
}
