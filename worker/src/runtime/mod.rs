//! Runtimes: how a worker executes one attempt of an agent task.
//!
//! A [`TaskSpec`] (image, argv, env, timeout, [`Limits`]) goes in; log lines
//! stream out through an `mpsc` channel while the task runs; an [`Outcome`]
//! comes back. Task failures (non-zero exit, `"result":"fail"`, timeout,
//! cancellation, OOM kill, unparseable result) are *outcomes* with
//! `ok == false`; only infrastructure problems (Docker unreachable, image
//! missing, API errors) are [`RuntimeError`]s.
//!
//! # Runtimes
//! - [`DockerRuntime`]: one container per attempt, sandboxed by default (see
//!   [`sandbox`]): no network, read-only root, all capabilities dropped,
//!   `no-new-privileges`, uid 10001, memory/CPU/pids limits, tmpfs `/tmp`,
//!   per-attempt volumes at `/baton/out` (rw, a tmpfs of the artifact limit
//!   plus a margin: [`docker_out`]) and `/baton/in` (ro), and the
//!   workspace (see [`docker_files`]). Images are never pulled (no registry is reachable); build
//!   the agent image with `deploy/images/agent/build.sh`.
//! - [`ProcessRuntime`]: a plain child process, **unsandboxed**, for local
//!   development and tests. Same timeout / cancel / result rules.
//! - [`NoopRuntime`]: runs nothing and succeeds at once, for benchmarks.
//!
//! # The result contract
//! A task reports `{"result":"ok|fail","action":"...","evidence":[...],"outputs":{...}}`
//! either by writing it to `/baton/out/result.json` (`$BATON_OUT/result.json`;
//! the file wins) or by printing it as the **last non-empty line of stdout**.
//! See [`result`] for the exact rules.
//!
//! # Files: `$BATON_OUT`, `$BATON_IN`, `$BATON_WORKSPACE`
//! Every regular file a task leaves in `$BATON_OUT` except `result.json` is
//! an artifact ([`crate::artifacts`]); earlier tasks' artifacts are at
//! `$BATON_IN/<task_id>/<path>`, read-only; `$BATON_WORKSPACE` is the shared
//! workspace, when the dispatch has one. Docker: `/baton/out`, `/baton/in`
//! and the workspace's `mount`; process: per-attempt temporary directories
//! and the host path.
//!
//! # Docker: the `/bin/sh` wrapper (images need `/bin/sh`)
//! `result.json` travels over stdout, although `/baton/out` is a volume that
//! is read back after the task (it is not an artifact): the wrapper also
//! marks the end of the output, which the log handling relies on. The task
//! command is wrapped ([`sandbox::wrapper_script`]):
//! `/bin/sh -c '"$@"; rc=$?; echo; if [ -f /baton/out/result.json ]; then echo @@BATON-RESULT-FILE@@; cat /baton/out/result.json; echo; fi; echo @@BATON-END@@; exit $rc' baton-task <argv...>`.
//! Everything after the `@@BATON-RESULT-FILE@@` line on stdout is the file's
//! content; it is not forwarded as log lines. `@@BATON-END@@` proves that the
//! followed log delivered all output (Docker 20.10 can end a followed log
//! before an unterminated last line arrives; the runtime then re-reads the
//! log). The wrapper's `echo` lines and markers are never forwarded.
//! Consequently every image must provide `/bin/sh` (and `chown`, for the
//! stager of [`docker_files`]), and a task must not print the marker lines
//! itself.
//!
//! Docker mounts tmpfs with `noexec` unless told otherwise, so scripts in
//! `/tmp` must be run as `sh script.sh`. Files in the tmpfs count against the
//! memory limit; files in `/baton/out` count against the artifact limit
//! (read back within it, [`docker_out`]) and, being in a tmpfs too, against
//! the memory limit.

pub mod docker;
mod docker_cleanup;
pub mod docker_files;
pub mod docker_out;
pub mod grant;
mod logs;
pub mod noop;
pub mod output;
pub mod process;
pub mod result;
pub mod sandbox;
pub mod workspace;

use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::ObjectStore;
use baton_proto::v1;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use docker::DockerRuntime;
pub use noop::NoopRuntime;
pub use process::ProcessRuntime;
pub use sandbox::SandboxPolicy;

/// One attempt of one task.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub run_id: String,
    pub task_id: String,
    pub attempt: u32,
    /// Image reference (Docker only), e.g. `baton/agent:local`.
    pub image: String,
    /// Command and arguments; must not be empty.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub limits: Limits,
    /// Shared workspace (see [`workspace`]); `None`: no workspace.
    pub workspace: Option<v1::Workspace>,
    /// Artifacts of earlier tasks, shown read-only at `/baton/in/<task_id>/<path>`.
    pub inputs: Vec<v1::InputArtifacts>,
    /// Largest total size of `/baton/out/` kept; 0 means
    /// [`crate::artifacts::DEFAULT_MAX_ARTIFACT_BYTES`].
    pub max_artifact_bytes: u64,
    /// What the role asked beyond the strict sandbox and this worker
    /// granted ([`grant::grant`]); Docker only.
    pub grant: grant::Grant,
    /// Resolved secrets: extra env, files for `$BATON_SECRETS`, and the
    /// redactor every output of the attempt goes through.
    pub secrets: crate::secrets::Secrets,
}

impl TaskSpec {
    /// Attempt `attempt` of `task_id` in `run_id`: `argv` in `image` with no
    /// environment, workspace, inputs, grant or secrets, default limits and
    /// the default artifact size; change the fields that differ.
    pub fn new(
        run_id: impl Into<String>,
        task_id: impl Into<String>,
        attempt: u32,
        image: impl Into<String>,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Self {
        TaskSpec {
            run_id: run_id.into(),
            task_id: task_id.into(),
            attempt,
            image: image.into(),
            argv,
            env: vec![],
            timeout,
            limits: Limits::default(),
            workspace: None,
            inputs: vec![],
            max_artifact_bytes: 0,
            grant: Default::default(),
            secrets: Default::default(),
        }
    }
}

/// Resource limits of one attempt (Docker only; `<= 0` means unlimited).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: i64,
    /// CPU in units of 10^-9 CPUs (1 CPU = 1_000_000_000).
    pub nano_cpus: i64,
    pub pids: i64,
}

impl Default for Limits {
    /// 256 MiB, 1 CPU, 128 processes.
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            pids: 128,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line the task printed (without its line terminator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub stream: Stream,
    pub line: String,
}

/// Result JSON the task printed: `{"result":"ok|fail","action":"...","evidence":[...],"outputs":{...}}`
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TaskReport {
    pub result: String,
    pub action: Option<String>,
    pub evidence: Vec<String>,
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `report.result == "ok"` and exit code 0 (and not killed, timed out or cancelled).
    pub ok: bool,
    pub exit_code: Option<i64>,
    /// The parsed result, when there was one (also kept on failures).
    pub report: Option<TaskReport>,
    /// Human reason when `!ok`, e.g. `timed out after 30s`,
    /// `killed: exceeded memory limit 64 MiB (exit 137)`, `exit code 3`.
    pub error: Option<String>,
    pub duration: Duration,
    /// What the task left in `/baton/out/`, as stored (sorted by path).
    pub artifacts: Vec<v1::Artifact>,
}

/// Infrastructure problems, not task failures.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach Docker at {endpoint}: {source} — start the engine (systemctl start docker) or set DOCKER_HOST")]
    DockerUnreachable {
        endpoint: String,
        source: bollard::errors::Error,
    },
    #[error("image {image} not found — build it with deploy/images/agent/build.sh (no registry is reachable, so images are never pulled)")]
    ImageMissing { image: String },
    #[error("invalid task spec: {0}")]
    InvalidSpec(String),
    /// The worker's own sandbox settings are refused (at start, never per task).
    #[error(transparent)]
    UnsafePolicy(#[from] sandbox::UnsafePolicy),
    #[error("Docker API error: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An input artifact is missing, damaged or unsafely named: the attempt
    /// cannot succeed as dispatched.
    #[error("{0}")]
    Input(String),
    /// The workspace cannot be used as given (the message says how to fix it).
    #[error("{0}")]
    Workspace(String),
    /// A secret reference cannot be resolved on this worker.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("artifact store: {0}")]
    ArtifactStore(String),
    #[error("Docker volume {volume}: {source} — check `docker volume inspect {volume}` and the engine's free disk space")]
    Volume {
        volume: String,
        source: bollard::errors::Error,
    },
}

impl RuntimeError {
    /// Errors that another attempt of the same dispatch cannot fix.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            RuntimeError::ImageMissing { .. }
                | RuntimeError::InvalidSpec(_)
                | RuntimeError::Input(_)
                | RuntimeError::Workspace(_)
                | RuntimeError::Secret(_)
        )
    }
}

/// The runtime a worker was configured with.
pub enum Runtime {
    Docker(DockerRuntime),
    Process(ProcessRuntime),
    Noop(NoopRuntime),
}

impl Runtime {
    /// Run one attempt to completion. Log lines are sent to `logs` as they
    /// appear (a dropped receiver just stops forwarding); `cancel` kills the
    /// task and yields an outcome with error `cancelled`.
    pub async fn run(
        &self,
        spec: &TaskSpec,
        logs: mpsc::Sender<LogLine>,
        cancel: CancellationToken,
    ) -> Result<Outcome, RuntimeError> {
        match self {
            Runtime::Docker(r) => r.run(Attempt::start(spec, logs, cancel)?).await,
            Runtime::Process(r) => r.run(Attempt::start(spec, logs, cancel)?).await,
            Runtime::Noop(r) => Ok(r.run(&cancel)),
        }
    }

    /// Mark what this runtime starts as `worker`'s, and remove what a
    /// predecessor under the same id left behind (it died mid-task).
    pub async fn adopt_leftovers(&mut self, worker: &str) -> Result<usize, RuntimeError> {
        match self {
            Runtime::Docker(r) => {
                r.label_worker(worker);
                let label = format!("{}={worker}", sandbox::LABEL_WORKER);
                let holders = format!("{}={worker}", docker_out::LABEL_HOLDER_OF);
                let containers =
                    r.remove_labelled(&label).await? + r.remove_labelled(&holders).await?;
                // Volumes after containers: a volume in use cannot go.
                Ok(containers + docker_files::remove_scratch_volumes(r.client(), &label).await?)
            }
            Runtime::Process(_) | Runtime::Noop(_) => Ok(0),
        }
    }

    /// Where artifacts are stored and inputs fetched from (the
    /// `baton_artifacts` bucket). Without one, inputs are refused and
    /// outputs are not kept.
    pub fn set_artifact_store(&mut self, store: ObjectStore) {
        match self {
            Runtime::Docker(r) => r.store = Some(store),
            Runtime::Process(r) => r.store = Some(store),
            Runtime::Noop(_) => {}
        }
    }

    pub fn with_artifact_store(mut self, store: ObjectStore) -> Self {
        self.set_artifact_store(store);
        self
    }

    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Docker(_) => "docker",
            Runtime::Process(_) => "process",
            Runtime::Noop(_) => "noop",
        }
    }
}

impl From<DockerRuntime> for Runtime {
    fn from(r: DockerRuntime) -> Self {
        Runtime::Docker(r)
    }
}

impl From<ProcessRuntime> for Runtime {
    fn from(r: ProcessRuntime) -> Self {
        Runtime::Process(r)
    }
}

impl From<NoopRuntime> for Runtime {
    fn from(r: NoopRuntime) -> Self {
        Runtime::Noop(r)
    }
}

/// Forwards log lines until the receiver goes away (then drops them).
pub(crate) struct Sink {
    tx: mpsc::Sender<LogLine>,
    open: bool,
}

impl Sink {
    pub(crate) fn new(tx: mpsc::Sender<LogLine>) -> Self {
        Self { tx, open: true }
    }

    pub(crate) async fn send(&mut self, stream: Stream, line: String) {
        if self.open && self.tx.send(LogLine { stream, line }).await.is_err() {
            self.open = false;
        }
    }
}

/// One attempt of a spec that passed [`validate`], timed from `started`:
/// what a runtime that executes something is handed.
pub(crate) struct Attempt<'a> {
    pub(crate) spec: &'a TaskSpec,
    pub(crate) logs: mpsc::Sender<LogLine>,
    pub(crate) cancel: CancellationToken,
    pub(crate) started: Instant,
}

impl<'a> Attempt<'a> {
    /// Validates `spec`, then starts the clock.
    fn start(
        spec: &'a TaskSpec,
        logs: mpsc::Sender<LogLine>,
        cancel: CancellationToken,
    ) -> Result<Self, RuntimeError> {
        validate(spec)?;
        Ok(Self {
            spec,
            logs,
            cancel,
            started: Instant::now(),
        })
    }
}

/// Rejects specs no runtime can execute.
pub(crate) fn validate(spec: &TaskSpec) -> Result<(), RuntimeError> {
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err(RuntimeError::InvalidSpec(format!(
            "task {} has an empty command (argv)",
            spec.task_id
        )));
    }
    if spec.timeout.is_zero() {
        return Err(RuntimeError::InvalidSpec(format!(
            "task {} has a zero timeout",
            spec.task_id
        )));
    }
    if let Some(ws) = &spec.workspace {
        workspace::check(ws)?;
    }
    Ok(())
}
