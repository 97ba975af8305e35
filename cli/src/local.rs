//! A whole Baton in one process: the coordinator, the gate evaluators and
//! any number of workers, on a NATS server that runs elsewhere.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use baton_coordinator::auth::{token, Auth, Role, TokenStore};
use baton_proto::secret::Secret;
use baton_proto::supervise::Supervisor;
use baton_proto::v1;
use baton_worker::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin_client::{Admin, ClientTls};

/// How much longer than the workers' grace the parts may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// One worker to run in the process.
pub struct WorkerSpec {
    pub options: baton_worker::Options,
    pub runtime: Runtime,
}

/// The running parts. Cancelling `cancel` stops them; `parts` end when they have.
pub struct LocalBaton {
    pub grpc_addr: SocketAddr,
    /// Where webhook triggers are served, when the coordinator options ask for it.
    pub http_addr: Option<SocketAddr>,
    pub cancel: CancellationToken,
    /// One task: the coordinator, the gates and the workers under one
    /// [`Supervisor`] (the rule every component follows): when any of them
    /// ends by itself, the others are stopped and this ends with its error.
    pub parts: Vec<JoinHandle<Result<(), String>>>,
    /// The admin token [`LocalBaton::admin`] sends: the one made at start
    /// when the coordinator options carried no tokens; None with auth off
    /// or with tokens the caller chose.
    pub token: Option<Secret>,
}

/// A fresh admin token named `name`, and a store that knows only it.
pub fn admin_token(name: &str) -> (Secret, Arc<TokenStore>) {
    let t = token::generate();
    let line = token::file_line(&t, name, Role::Admin);
    let store = TokenStore::parse("generated", &line).expect("a generated line parses");
    (t, Arc::new(store))
}

impl LocalBaton {
    /// Build everything first (so a bad address or an unreachable NATS fails
    /// here, clearly), then start it. Each worker's `nats_url` is set to `nats_url`.
    pub async fn start(
        nats_url: &str,
        grpc_addr: SocketAddr,
        workers: Vec<WorkerSpec>,
    ) -> Result<LocalBaton, String> {
        let coordinator = baton_coordinator::Options {
            grpc_addr,
            ..Default::default()
        };
        // Boxed: the builds' futures are large, and tests await this on a 2 MiB stack.
        Box::pin(Self::start_with(nats_url, coordinator, workers)).await
    }

    /// Like [`LocalBaton::start`], with the coordinator's options given
    /// (their `nats_url` is replaced by `nats_url`).
    pub async fn start_with(
        nats_url: &str,
        coordinator: baton_coordinator::Options,
        workers: Vec<WorkerSpec>,
    ) -> Result<LocalBaton, String> {
        // Options with no tokens would refuse to start: a whole Baton in one
        // process makes its own admin token instead, which `admin()` uses.
        let mut coordinator = coordinator;
        let token = match &coordinator.auth {
            Auth::Tokens(s) if s.is_empty() => {
                let (t, store) = admin_token("local-admin");
                coordinator.auth = Auth::Tokens(store);
                Some(t)
            }
            _ => None,
        };
        // One process, one identity: the gates connect as the coordinator does.
        let gates_auth = coordinator.nats_auth.clone();
        // The builds are boxed: their futures are large, and a caller on a
        // test thread (2 MiB of stack) would overflow in debug builds.
        let (coord, handle) = Box::pin(
            baton_coordinator::Options {
                nats_url: nats_url.to_string(),
                ..coordinator
            }
            .build(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let gates = Box::pin(
            baton_gates::Options {
                nats_url: nats_url.to_string(),
                nats_auth: gates_auth,
                ..Default::default()
            }
            .build(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut built = Vec::new();
        let mut grace = Duration::ZERO;
        for w in workers {
            let opts = baton_worker::Options {
                nats_url: nats_url.to_string(),
                ..w.options
            };
            grace = grace.max(opts.grace);
            let id = opts.worker_id.clone();
            built.push((
                id,
                Box::pin(opts.build(w.runtime))
                    .await
                    .map_err(|e| e.to_string())?,
            ));
        }
        let cancel = CancellationToken::new();
        // Past the workers' grace, as `baton worker` allows.
        let mut supervisor =
            Supervisor::new("local baton", &cancel).with_grace(grace + STOP_MARGIN);
        let t = supervisor.token();
        supervisor.spawn("coordinator", async move {
            coord.run(t).await.map_err(|e| e.to_string())
        });
        let t = supervisor.token();
        supervisor.spawn("gates", async move {
            gates.run(t).await.map_err(|e| e.to_string())
        });
        for (id, w) in built {
            let t = supervisor.token();
            supervisor.spawn(format!("worker {id}"), async move {
                w.run(t).await.map_err(|e| e.to_string())
            });
        }
        let parts = vec![tokio::spawn(supervisor.run())];
        Ok(LocalBaton {
            grpc_addr: handle.grpc_addr,
            http_addr: handle.http_addr,
            cancel,
            parts,
            token,
        })
    }

    /// A plaintext client with [`LocalBaton::token`].
    pub async fn admin(&self) -> Result<Admin, String> {
        crate::admin_client::connect(
            &format!("http://{}", self.grpc_addr),
            self.token.as_ref(),
            &ClientTls::default(),
        )
        .await
    }
}

impl Drop for LocalBaton {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Poll until the run ends and return it, or say what it was doing when time ran out.
pub async fn wait_end(admin: &Admin, run: &str, timeout: Duration) -> Result<v1::Run, String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(r) = admin
            .clone()
            .get_run(v1::GetRunRequest { run_id: run.into() })
            .await
        {
            let r = r.into_inner();
            if r.status != "running" {
                return Ok(r);
            }
            last = Some(r);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "run {run} still running after {timeout:?}: {last:#?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
