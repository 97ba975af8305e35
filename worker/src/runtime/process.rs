//! [`ProcessRuntime`]: the task as a plain child process — **no sandbox**.
//!
//! For local development and tests only. The child gets a cleared
//! environment (only `PATH`, the task's env, `BATON_OUT`, `BATON_IN` and,
//! with a workspace, `BATON_WORKSPACE`), a fresh temporary working directory
//! with an `out/` folder (`$BATON_OUT`; the result file is
//! `$BATON_OUT/result.json`, every other file an artifact) and an `in/`
//! folder (`$BATON_IN`: verified inputs at `<task_id>/<path>`, made
//! read-only by mode only — the process could chmod them back), and its own process group, which
//! is killed as a whole when the task ends, times out or is cancelled —
//! like a container whose PID 1 exited.
//!
//! Secrets: variables join the task's env; files are written 0400 into
//! `secrets/` (0500) of the working directory, `$BATON_SECRETS`, removed
//! with it. Both output streams and `result.json` pass the attempt's redactor.
//!
//! Workspaces: kind `host` only, given as is in `$BATON_WORKSPACE`
//! (`read_only` cannot be enforced without a sandbox); kind `volume` needs
//! Docker and is refused with a permanent error.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::ObjectStore;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::output::{LineSplitter, StdoutCollector};
use super::result::{evaluate, format_duration, MAX_RESULT_FILE_BYTES};
use super::workspace::{self, Kind};
use super::{Attempt, LogLine, Outcome, RuntimeError, Sink, Stream, TaskSpec};
use crate::artifacts::{self, local};
use crate::redact::StreamRedactor;

/// How long output may keep arriving after the process group was killed.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Runs tasks as unsandboxed child processes.
pub struct ProcessRuntime {
    path: String,
    pub(crate) store: Option<ObjectStore>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("path", &self.path)
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl Default for ProcessRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessRuntime {
    pub fn new() -> Self {
        tracing::warn!(
            "process runtime: tasks run UNSANDBOXED as this user, with full network and \
             file-system access — use the docker runtime outside development"
        );
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string());
        Self { path, store: None }
    }

    pub(crate) async fn run(&self, attempt: Attempt<'_>) -> Result<Outcome, RuntimeError> {
        let spec = attempt.spec;
        let workspace = match &spec.workspace {
            Some(ws) => Some(host_workspace(ws)?),
            None => None,
        };
        let dir = TaskDir::create(spec)?;
        let out = dir.path.join("out");
        let inputs = dir.path.join("in");
        artifacts::fetch_inputs(self.store.as_ref(), &spec.inputs, &inputs).await?;
        make_read_only(&inputs)?;
        let secrets = dir.path.join("secrets");
        write_secret_files(&secrets, &spec.secrets.files)?;

        let mut command = tokio::process::Command::new(&spec.argv[0]);
        command
            .args(&spec.argv[1..])
            .env_clear()
            .env("PATH", &self.path)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(
                spec.secrets
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env("BATON_SECRETS", &secrets)
            .env("BATON_OUT", &out)
            .env("BATON_IN", &inputs)
            .envs(workspace.iter().map(|w| ("BATON_WORKSPACE", w.as_str())))
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Ok(failed(
                    format!("cannot start {:?}: {e}", spec.argv[0]),
                    attempt.started,
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let group = child.id();

        let stop = CancellationToken::new();
        let stdout = child.stdout.take().map(|r| {
            let lines = StdoutCollector::new(false);
            let (tx, stop) = (attempt.logs.clone(), stop.clone());
            tokio::spawn(forward(r, tx, stop, redactor(spec), Stream::Stdout, lines))
        });
        let stderr = child.stderr.take().map(|r| {
            let lines = LineSplitter::default();
            let (tx, stop) = (attempt.logs, stop.clone());
            tokio::spawn(forward(r, tx, stop, redactor(spec), Stream::Stderr, lines))
        });

        enum End {
            Exited(ExitStatus),
            TimedOut,
            Cancelled,
        }
        let end = tokio::select! {
            status = child.wait() => End::Exited(status?),
            _ = tokio::time::sleep(spec.timeout) => End::TimedOut,
            _ = attempt.cancel.cancelled() => End::Cancelled,
        };
        kill_group(group).await;
        let status = match end {
            End::Exited(status) => status,
            End::TimedOut | End::Cancelled => {
                let _ = child.start_kill();
                child.wait().await?
            }
        };

        // Readers end when every holder of the pipes is gone; bound it anyway
        // (a process may have left the group with setsid).
        let readers = async {
            let collector = match stdout {
                Some(h) => h.await.ok(),
                None => None,
            };
            if let Some(h) = stderr {
                let _ = h.await;
            }
            collector
        };
        tokio::pin!(readers);
        let collected = tokio::select! {
            c = &mut readers => c,
            _ = tokio::time::sleep(OUTPUT_DRAIN) => {
                tracing::warn!(task = %spec.task_id, "output still open after the task ended; closing it");
                stop.cancel();
                readers.await
            }
        };
        let collected = collected.unwrap_or_else(|| StdoutCollector::new(false));

        let file =
            read_result_file(&out.join("result.json"))?.map(|f| spec.secrets.redactor.bytes(&f));
        let exit_code = status.code().map(i64::from);
        let verdict = evaluate(exit_code, collected.last_non_empty_line(), file.as_deref());
        let error = match end {
            End::TimedOut => Some(format!("timed out after {}", format_duration(spec.timeout))),
            End::Cancelled => Some("cancelled".to_string()),
            End::Exited(_) => match status.signal() {
                Some(signal) if exit_code.is_none() => Some(format!("killed by signal {signal}")),
                _ => verdict.error,
            },
        };
        let ok = matches!(end, End::Exited(_)) && verdict.ok;
        let mut outcome = Outcome {
            ok,
            exit_code,
            report: verdict.report,
            error: if ok { None } else { error },
            duration: attempt.started.elapsed(),
            artifacts: Vec::new(),
        };
        let limit = artifacts::limit(spec.max_artifact_bytes);
        let mut collected = tokio::task::spawn_blocking(move || local::collect_dir(&out, limit))
            .await
            .map_err(|e| std::io::Error::other(format!("reading $BATON_OUT failed: {e}")))??;
        artifacts::settle(self.store.as_ref(), spec, &mut collected, &mut outcome).await?;
        drop(dir);
        Ok(outcome)
    }
}

/// `$BATON_WORKSPACE` of a checked workspace, which must exist here.
fn host_workspace(ws: &baton_proto::v1::Workspace) -> Result<String, RuntimeError> {
    if workspace::check(ws)? == Kind::Volume {
        return Err(RuntimeError::Workspace(format!(
            "workspace kind \"volume\" (volume {}) needs the docker runtime — the process runtime supports kind \"host\" only",
            ws.source
        )));
    }
    if !Path::new(&ws.source).is_dir() {
        return Err(RuntimeError::Workspace(format!(
            "workspace host path {} is not a directory on this machine — create it or fix workspace.source",
            ws.source
        )));
    }
    Ok(ws.source.clone())
}

/// Files 0444 and directories 0555 from `dir` down (children before parents).
fn make_read_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            make_read_only(&path)?;
        } else if meta.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

fn failed(error: String, started: Instant) -> Outcome {
    Outcome {
        ok: false,
        exit_code: None,
        report: None,
        error: Some(error),
        duration: started.elapsed(),
        artifacts: Vec::new(),
    }
}

/// Kill the task's whole process group (best effort; the group may be gone).
async fn kill_group(pgid: Option<u32>) {
    let Some(pgid) = pgid else { return };
    let _ = tokio::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

fn redactor(spec: &TaskSpec) -> StreamRedactor {
    StreamRedactor::new(spec.secrets.redactor.clone())
}

/// Secret files 0400 in a 0500 directory: only this user reads them.
fn write_secret_files(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500))
}

/// Turns a stream's (redacted) bytes into the lines to forward.
trait Lines {
    fn push(&mut self, chunk: &[u8]) -> Vec<String>;
    /// The rest, at end of stream.
    fn finish(&mut self) -> Vec<String>;
}

impl Lines for StdoutCollector {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        StdoutCollector::push(self, chunk)
    }

    fn finish(&mut self) -> Vec<String> {
        StdoutCollector::finish(self)
    }
}

impl Lines for LineSplitter {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        LineSplitter::push(self, chunk);
        std::iter::from_fn(|| self.next_line()).collect()
    }

    fn finish(&mut self) -> Vec<String> {
        LineSplitter::finish(self).into_iter().collect()
    }
}

/// Reads `reader` until end of stream (or `stop`), redacts it and sends its
/// lines as `stream`; returns `lines` for what it kept.
async fn forward<L: Lines>(
    mut reader: impl AsyncRead + Unpin,
    tx: mpsc::Sender<LogLine>,
    stop: CancellationToken,
    mut redactor: StreamRedactor,
    stream: Stream,
    mut lines: L,
) -> L {
    let mut sink = Sink::new(tx);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            n = reader.read(&mut buf) => n.unwrap_or(0),
            _ = stop.cancelled() => 0,
        };
        if n == 0 {
            break;
        }
        for line in lines.push(&redactor.push(&buf[..n])) {
            sink.send(stream, line).await;
        }
    }
    for line in lines.push(&redactor.finish()) {
        sink.send(stream, line).await;
    }
    for line in lines.finish() {
        sink.send(stream, line).await;
    }
    lines
}

/// `result.json` if it exists, capped one byte above the limit.
fn read_result_file(path: &Path) -> Result<Option<Vec<u8>>, RuntimeError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RESULT_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// A fresh working directory with `out/` and `in/`, removed on drop.
struct TaskDir {
    path: PathBuf,
}

impl TaskDir {
    fn create(spec: &TaskSpec) -> Result<Self, RuntimeError> {
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(40)
                .collect()
        };
        let name = format!(
            "baton-{}-{}-{}-{:08x}",
            safe(&spec.run_id),
            safe(&spec.task_id),
            spec.attempt,
            rand::random::<u32>()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(path.join("out"))?;
        std::fs::create_dir_all(path.join("in"))?;
        Ok(Self { path })
    }
}

impl Drop for TaskDir {
    fn drop(&mut self) {
        // Read-only inputs would stop remove_dir_all; open them up first.
        let _ = make_writable(&self.path.join("in"));
        let _ = make_writable(&self.path.join("secrets"));
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove task directory");
        }
    }
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            make_writable(&path)?;
        }
    }
    Ok(())
}
