//! A whole Baton in one test process: a real nats-server, a coordinator, the
//! gates and a worker, stopped when the `Cluster` is dropped. Authentication
//! is on: `admin` holds an admin token named [`ADMIN_NAME`], and
//! [`Cluster::client_as`] gives clients of any other name and role.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use baton_coordinator::auth::Role;
use baton_coordinator::auth::{token, Auth, Identity, TokenStore};
pub use baton_proto::client::Admin;
use baton_proto::client::ClientTls;
use baton_proto::secret::Secret;
use baton_proto::v1;
use baton_test_support::NatsServer;
pub use baton_worker::runtime::grant::Ceiling;
use baton_worker::runtime::{
    DockerRuntime, Limits, NoopRuntime, ProcessRuntime, Runtime, SandboxPolicy,
};

use super::eventually;

/// The name of the harness's admin token: what `by` and `submitted_by` say
/// for calls made through `Cluster::admin`.
pub const ADMIN_NAME: &str = "tester";

pub const ROLES: &[&str] = &["arch", "sec", "qa", "ops", "dev"];

/// A 3 s task whose output the next phase's task renders into its env: long
/// enough to kill something while it runs, and it shows whether outputs folded
/// before the kill reach the next phase.
pub const SLOW_THEN_TEMPLATED: &str = include_str!("../fixtures/slow-then-templated.yaml");

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Docker,
    Process,
    Noop,
}

pub struct Cluster {
    pub nats: NatsServer,
    /// A client with an admin token named [`ADMIN_NAME`].
    pub admin: Admin,
    pub grpc_addr: std::net::SocketAddr,
    /// The coordinator's tokens; [`Cluster::issue_token`] adds to them.
    pub tokens: Arc<TokenStore>,
    _token_file: TokenFile,
    _local: baton::local::LocalBaton,
}

/// The admin token written where the CLI looks for `baton dev`'s token for
/// this address, so that `baton … --server <this cluster>` subprocesses
/// authenticate as [`ADMIN_NAME`]; removed on drop.
struct TokenFile(std::path::PathBuf);

impl TokenFile {
    fn write(addr: std::net::SocketAddr, token: &Secret) -> TokenFile {
        use std::os::unix::fs::OpenOptionsExt;
        let path = baton_proto::client::dev_token_path(&addr.to_string()).expect("a state dir");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, token.expose().as_bytes()).unwrap();
        TokenFile(path)
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A worker id no other worker of this process (or of another) has. A
/// Docker worker removes at start what a worker of its id left behind, and
/// every test of this binary shares one process id, on which the default
/// id is built: two tests must never share one.
pub fn worker_id() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-it{n}", baton_worker::service::default_worker_id())
}

/// Build the agent image once per test process if it is missing; Docker
/// must be reachable — a test that needs it fails loudly, never skips.
pub fn ensure_agent_image() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let ok = std::process::Command::new("docker")
            .args(["image", "inspect", "baton/agent:local"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            let script = baton_test_support::workspace_root().join("deploy/images/agent/build.sh");
            let st = std::process::Command::new(script)
                .status()
                .expect("run build.sh");
            assert!(
                st.success(),
                "could not build baton/agent:local — is Docker running?"
            );
        }
    });
}

pub async fn runtime(rt: Rt) -> Runtime {
    match rt {
        Rt::Docker => {
            ensure_agent_image();
            DockerRuntime::connect(SandboxPolicy::default())
                .await
                .expect("Docker must be reachable for this test (it is never skipped)")
                .into()
        }
        Rt::Process => ProcessRuntime::new().into(),
        Rt::Noop => NoopRuntime::new().into(),
    }
}

/// A Docker worker serving role `dev` under a fresh id, with the rest of
/// `options`.
pub async fn dev_worker(options: baton_worker::Options) -> baton::local::WorkerSpec {
    baton::local::WorkerSpec {
        options: baton_worker::Options {
            worker_id: worker_id(),
            roles: vec!["dev".into()],
            ..options
        },
        runtime: runtime(Rt::Docker).await,
    }
}

/// A Baton in this process on `nats`, without authentication, with one
/// Docker worker of role `dev` (see [`dev_worker`]); its admin client.
pub async fn dev_baton(
    nats: &NatsServer,
    worker: baton_worker::Options,
) -> (baton::local::LocalBaton, Admin) {
    let worker = dev_worker(worker).await;
    let local =
        baton::local::LocalBaton::start(&nats.url(), "127.0.0.1:0".parse().unwrap(), vec![worker])
            .await
            .expect("Baton starts");
    let admin = local.admin().await.expect("admin connects");
    (local, admin)
}

impl Cluster {
    pub async fn start(rt: Rt) -> Cluster {
        Self::start_with(rt, Limits::default(), 8).await
    }

    pub async fn start_with(rt: Rt, limits: Limits, concurrency: usize) -> Cluster {
        Self::start_serving(rt, limits, concurrency, ROLES).await
    }

    /// A worker serving exactly `roles` (a plan's own roles, say).
    pub async fn start_serving(
        rt: Rt,
        limits: Limits,
        concurrency: usize,
        roles: &[&str],
    ) -> Cluster {
        Self::start_with_ceiling(rt, limits, concurrency, roles, Ceiling::default()).await
    }

    /// [`Cluster::start_serving`] with a worker started with `ceiling`
    /// (`--allow-mounts`, `--allow-network`, `--max-*`).
    pub async fn start_with_ceiling(
        rt: Rt,
        limits: Limits,
        concurrency: usize,
        roles: &[&str],
        ceiling: Ceiling,
    ) -> Cluster {
        let nats = NatsServer::start();
        let worker = baton::local::WorkerSpec {
            options: baton_worker::Options {
                worker_id: worker_id(),
                roles: roles.iter().map(|s| s.to_string()).collect(),
                concurrency,
                limits,
                ceiling,
                grace: Duration::from_secs(2),
                ..Default::default()
            },
            runtime: runtime(rt).await,
        };
        let tokens = Arc::new(TokenStore::default());
        let admin_token = token::generate();
        tokens.insert(
            &admin_token,
            Identity {
                name: ADMIN_NAME.into(),
                role: Role::Admin,
            },
        );
        let opts = baton_coordinator::Options {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            auth: Auth::Tokens(tokens.clone()),
            ..Default::default()
        };
        let mut local = baton::local::LocalBaton::start_with(&nats.url(), opts, vec![worker])
            .await
            .expect("Baton starts");
        let token_file = TokenFile::write(local.grpc_addr, &admin_token);
        local.token = Some(admin_token);
        let admin = local.admin().await.expect("admin connects");
        Cluster {
            grpc_addr: local.grpc_addr,
            nats,
            admin,
            tokens,
            _token_file: token_file,
            _local: local,
        }
    }

    pub fn server(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A fresh token the coordinator accepts from now on, as `name` with `role`.
    pub fn issue_token(&self, name: &str, role: Role) -> Secret {
        let t = token::generate();
        self.tokens.insert(
            &t,
            Identity {
                name: name.into(),
                role,
            },
        );
        t
    }

    /// A client acting as `name` with `role` (e.g. two approvers: `client_as("ana", Role::Approver)`).
    pub async fn client_as(&self, name: &str, role: Role) -> Admin {
        let t = self.issue_token(name, role);
        self.client_with(Some(&t)).await
    }

    /// A client sending `token` (None: no credentials at all).
    pub async fn client_with(&self, token: Option<&Secret>) -> Admin {
        baton_proto::client::connect(&self.server(), token, &ClientTls::default())
            .await
            .expect("admin connects")
    }

    pub async fn submit(&self, yaml: &str, inputs: &[(&str, &str)]) -> String {
        self.try_submit(yaml, inputs)
            .await
            .expect("plan is accepted")
    }

    pub async fn try_submit(
        &self,
        yaml: &str,
        inputs: &[(&str, &str)],
    ) -> Result<String, tonic::Status> {
        let req = v1::SubmitRunRequest {
            plan_yaml: yaml.into(),
            plan_file: "test.yaml".into(),
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        };
        self.admin
            .clone()
            .submit_run(req)
            .await
            .map(|r| r.into_inner().run_id)
    }

    pub async fn get(&self, run: &str) -> v1::Run {
        self.admin
            .clone()
            .get_run(v1::GetRunRequest { run_id: run.into() })
            .await
            .expect("run exists")
            .into_inner()
    }

    /// Poll until the run ends, and return it.
    pub async fn wait_end(&self, run: &str, timeout: Duration) -> v1::Run {
        baton::local::wait_end(&self.admin, run, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Poll until the run waits for an approval.
    pub async fn wait_waiting(&self, run: &str, timeout: Duration) -> v1::Run {
        let what = format!("run {run} never waited for an approval");
        eventually(&what, timeout, async || {
            let r = self
                .admin
                .clone()
                .get_run(v1::GetRunRequest { run_id: run.into() })
                .await
                .ok()?
                .into_inner();
            if r.waiting.contains("approval") {
                return Some(r);
            }
            assert!(
                r.run_status() == v1::RunStatus::Running,
                "run ended instead of waiting: {r:#?}"
            );
            None
        })
        .await
    }

    pub async fn decide(
        &self,
        run: &str,
        approve: bool,
        reason: &str,
    ) -> Result<(), tonic::Status> {
        let req = v1::DecisionRequest {
            run_id: run.into(),
            reason: reason.into(),
            by: "tester".into(),
            task_id: String::new(),
        };
        let mut a = self.admin.clone();
        if approve {
            a.approve(req).await.map(|_| ())
        } else {
            a.reject(req).await.map(|_| ())
        }
    }

    /// Every event of the run, in order, from the EVENTS stream.
    pub async fn events(&self, run: &str) -> Vec<v1::Event> {
        events(&self.admin, run).await
    }
}

/// Every event of the run, in order, as `WatchRun` streams them from any coordinator.
/// Submit `yaml` (named `file`) through `admin`; its run id. Panics, with
/// the server's answer, when the plan is refused.
pub async fn submit_to(admin: &Admin, yaml: &str, file: &str) -> String {
    submit_request(
        admin,
        v1::SubmitRunRequest {
            plan_yaml: yaml.into(),
            plan_file: file.into(),
            ..Default::default()
        },
    )
    .await
}

/// Submit `req` through `admin`; its run id. Panics when it is refused.
pub async fn submit_request(admin: &Admin, req: v1::SubmitRunRequest) -> String {
    admin
        .clone()
        .submit_run(req)
        .await
        .unwrap_or_else(|e| panic!("the plan was refused: {e:?}"))
        .into_inner()
        .run_id
}

/// The run's events from its first, live: `WatchRun`.
pub async fn watch(admin: &Admin, run: &str) -> tonic::Streaming<v1::RunEvent> {
    admin
        .clone()
        .watch_run(v1::WatchRunRequest { run_id: run.into() })
        .await
        .expect("watch")
        .into_inner()
}

pub async fn events(admin: &Admin, run: &str) -> Vec<v1::Event> {
    use futures::StreamExt;
    let mut s = watch(admin, run).await;
    let mut out = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(5), s.next()).await {
        out.push(e.event.unwrap());
    }
    out
}

/// A task's log lines, every attempt, as `baton logs` would print them.
pub async fn logs_of(c: &Cluster, run: &str, task: &str) -> Vec<String> {
    log_entries(&c.admin, run, task)
        .await
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// The log entries of one task (every task when `task` is empty), in order.
pub async fn log_entries(admin: &Admin, run: &str, task: &str) -> Vec<v1::LogEntry> {
    use futures::StreamExt;
    let mut s = admin
        .clone()
        .logs(v1::LogsRequest {
            run_id: run.into(),
            task_id: task.into(),
            follow: false,
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(Ok(l)) = s.next().await {
        out.push(l);
    }
    out
}

pub fn task<'a>(r: &'a v1::Run, id: &str) -> &'a v1::TaskView {
    r.tasks
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no task {id} in {r:#?}"))
}

pub fn release_train() -> String {
    std::fs::read_to_string(
        baton_test_support::workspace_root().join("examples/release-train.yaml"),
    )
    .unwrap()
}

/// A client of the coordinator serving gRPC (plain HTTP) at `grpc_addr`,
/// sending `token`.
pub async fn client_at(grpc_addr: std::net::SocketAddr, token: &Secret) -> Admin {
    baton_proto::client::connect(
        &format!("http://{grpc_addr}"),
        Some(token),
        &ClientTls::default(),
    )
    .await
    .expect("admin connects")
}
