//! `baton dev`: nats-server, a coordinator, the gates and a worker in one
//! process, with a fresh admin token and an evidence key, for trying Baton.

use std::net::SocketAddr;
use std::time::Duration;

use baton_proto::kinds::{self, EventKind};
use baton_proto::supervise::Supervisor;
use baton_proto::v1::{self, event::Body};
use clap::Args;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::exit::Exit;
use crate::hook_args::HookArgs;
use crate::nats_args::NatsAuthArgs;
use crate::services::{make_runtime, serve};
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
    /// Host directories (comma-separated) the dev worker may mount: a
    /// plan's `host_path` workspace or a role's mount must lie under one,
    /// as with `baton worker --allow-mounts`. Default: none.
    #[arg(long, value_name = "DIR", value_delimiter = ',')]
    pub allow_mounts: Vec<std::path::PathBuf>,
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
    /// Secrets the dev worker gives plans, besides `DEMO_SECRET_*` variables.
    #[command(flatten)]
    pub secrets: crate::sandbox_args::SecretArgs,
}

/// The variables `baton dev`'s worker gives plans as secrets without being
/// told: enough to try secrets (`DEMO_SECRET_TOKEN=… baton dev`), and a
/// prefix nothing else on a laptop uses.
pub const DEV_SECRET_ENV: &str = "DEMO_SECRET_*";

pub async fn dev(a: DevArgs) -> Result<(), Exit> {
    let tel = crate::telemetry::init("baton", "info");
    let nats = match &a.nats_url {
        Some(_) => None,
        None => Some(
            baton::nats_server::DevNats::start(a.nats_port, a.store_dir.as_deref())
                .map_err(Exit::failure)?,
        ),
    };
    let nats_url = a
        .nats_url
        .clone()
        .or_else(|| nats.as_ref().map(|n| n.url.clone()))
        .unwrap_or_else(|| DEFAULT_NATS_URL.into());
    let runtime = make_runtime(a.runtime).await.map_err(Exit::failure)?;
    let nats_auth = a.nats_auth.auth();
    let evidence_key = match a.evidence_key.clone() {
        Some(k) => k,
        None => dev_evidence_key(a.store_dir.as_deref()).map_err(Exit::failure)?,
    };
    let worker = baton_worker::Options {
        nats_auth: nats_auth.clone(),
        roles: a.roles.clone(),
        concurrency: a.concurrency,
        grace: Duration::from_secs(5),
        ceiling: baton_worker::runtime::grant::Ceiling {
            allow_mounts: a.allow_mounts.clone(),
            ..Default::default()
        },
        secret_policy: dev_secret_policy(&a, &evidence_key),
        ..Default::default()
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
    let coordinator = a
        .hooks
        .configure(Some(a.http_addr), coordinator)
        .map_err(Exit::failure)?;
    let note = crate::hook_args::off_note(&coordinator);
    let mut local = baton::local::LocalBaton::start_with(
        &nats_url,
        coordinator,
        vec![baton::local::WorkerSpec {
            options: worker,
            runtime,
        }],
    )
    .await
    .map_err(Exit::failure)?;
    let cancel = local.cancel.clone();
    let grpc_addr = local.grpc_addr;
    let mut parts = Supervisor::new("baton dev", &cancel).with_grace(Duration::from_secs(15));
    // Whatever stops dev (a signal, or a part ending) stops the local Baton.
    let (dev_stop, local_stop) = (parts.token(), cancel.clone());
    tokio::spawn(async move {
        dev_stop.cancelled().await;
        local_stop.cancel();
    });
    for whole in std::mem::take(&mut local.parts) {
        // Supervised by LocalBaton itself: this is its outcome.
        parts.spawn("coordinator, gates and worker", async move {
            whole.await.map_err(|e| e.to_string())?
        });
    }
    if a.auto_approve {
        eprintln!(
            "warning: --auto-approve approves every approval at once; never use it outside a demo"
        );
        let t = parts.token();
        let url = nats_url.clone();
        let auth = nats_auth.clone();
        parts.spawn("auto-approve", auto_approve(url, auth, t));
    }
    let token_file = crate::dev_token::publish(token.as_ref(), grpc_addr).map_err(Exit::failure)?;
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
    let dirs: Vec<String> = a
        .secrets
        .allow_secret_dir
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    eprintln!(
        "  secrets:   plans may name variables {DEV_SECRET_ENV}{} and files under {}",
        a.secrets
            .allow_secret_env
            .iter()
            .map(|p| format!(",{p}"))
            .collect::<String>(),
        if dirs.is_empty() {
            "no folder (add --allow-secret-dir DIR)".into()
        } else {
            dirs.join(",")
        }
    );
    eprintln!(
        "  evidence:  signed with {}; verify with --key {}.pub",
        evidence_key.display(),
        evidence_key.display()
    );
    eprintln!(
        "  try:       baton run examples/release-train.yaml --wait   (Ctrl-C stops everything)"
    );
    let r = serve(parts, cancel).await;
    if let Some(f) = token_file {
        // The token dies with this process; a stale file would only mislead.
        let _ = std::fs::remove_file(f);
    }
    drop(local);
    drop(nats);
    tel.shutdown();
    r
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
    let mut sub = client
        .subscribe(EventKind::PhaseChanged.of_every_run())
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let m = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Ok(ev) = baton_proto::codec::decode_event(&m.subject, &m.payload) else {
            continue;
        };
        let Some(Body::PhaseChanged(p)) = &ev.body else {
            continue;
        };
        if kinds::phase_status(p) != v1::PhaseStatus::AwaitingApproval {
            continue;
        }
        // Like any approver: a request on `baton.approve.<identity>.<run>`,
        // checked by the coordinator (reason, self-approval, quorum) and
        // recorded under this identity.
        let subject = baton_proto::subjects::approval(AUTO_APPROVER, &ev.run_id);
        let body = serde_json::json!({ "approve": true, "reason": "auto-approved (demo)" });
        let answer = client
            .request(subject, body.to_string().into())
            .await
            .map_err(|e| e.to_string())
            .and_then(|m| {
                serde_json::from_slice::<serde_json::Value>(&m.payload).map_err(|e| e.to_string())
            });
        match answer {
            Ok(v) if v["ok"] == true => {
                tracing::info!(run = %ev.run_id, phase = %p.phase_id, "auto-approved")
            }
            Ok(v) => tracing::warn!(run = %ev.run_id, answer = %v, "auto-approval refused"),
            Err(e) => tracing::warn!(run = %ev.run_id, error = %e, "auto-approval not sent"),
        }
    }
}

/// Who `baton dev --auto-approve` approves as.
const AUTO_APPROVER: &str = "dev-auto-approve";

/// `DEMO_SECRET_*` and whatever the flags add; all of dev's own files (in
/// one process, the worker would otherwise see the coordinator's) are
/// refused: the evidence key, the state and store folders, the folder of
/// the admin tokens dev publishes, the webhook secrets.
fn dev_secret_policy(
    a: &DevArgs,
    evidence_key: &std::path::Path,
) -> baton_worker::secrets::SecretPolicy {
    let mut policy = a.secrets.clone();
    policy.allow_secret_env.insert(0, DEV_SECRET_ENV.into());
    let tokens = baton_proto::client::dev_token_path("dev")
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
    let own = [
        Some(evidence_key.to_path_buf()),
        Some(std::path::PathBuf::from(".baton")),
        a.store_dir.clone(),
        tokens,
        a.hooks.hook_secret_file.clone(),
        a.hooks.hook_token_file.clone(),
    ];
    policy.policy().protect(own.into_iter().flatten())
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
