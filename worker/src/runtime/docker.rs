//! [`DockerRuntime`]: one sandboxed container per attempt, through bollard.
//!
//! Flow: `inspect_image` (404 → [`RuntimeError::ImageMissing`], never pull) →
//! the out volume, a tmpfs of the artifact quota, and its holder
//! ([`super::docker_out::prepare`]) →
//! `create_container` (see [`super::sandbox`]) → `start_container` →
//! `logs(follow)` in a task, forwarding lines → `wait_container` raced against
//! the timeout and the cancel token (`kill_container` on either) →
//! a second, non-follow `logs` read if the wrapper's end marker is missing
//! (see [`super::logs`]) → `inspect_container` for `OOMKilled` →
//! `/baton/out` read back through the holder, within the artifact limit, a
//! deadline and the cancel token ([`super::docker_out::collect`]) →
//! `remove_container(force, v)` of both containers and the attempt's
//! volumes, which a guard also removes if the future is dropped half-way →
//! artifacts uploaded.
//! Before the container is created, inputs are fetched and verified and the
//! volumes prepared ([`super::docker_files::prepare`]).
//!
//! bollard's request timeout (2 minutes by default) covers a request until its
//! response headers arrive. Docker 20.10 sends the headers of `/wait` and
//! `/logs?follow` at once, but to stay safe behind proxies or other engines
//! these long requests use a client whose timeout exceeds the task's.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, StartContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::docker_cleanup::{force_remove, is_status};
use super::docker_files;
use super::docker_out::{self, Cleanup, Collection};
use super::logs::{self, Capture};
use super::result::{evaluate, format_duration, format_mib};
use super::workspace::{self, Kind};
use super::{sandbox, Attempt, Outcome, RuntimeError, SandboxPolicy, TaskSpec};
use crate::artifacts;

/// How long output may keep arriving after the container stopped.
const LOG_DRAIN: Duration = Duration::from_secs(10);
/// Bound on waiting for a killed container to stop.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// Runs tasks in containers; cheap to share (`Docker` is a pooled client).
pub struct DockerRuntime {
    docker: Docker,
    policy: SandboxPolicy,
    pub(crate) store: Option<ObjectStore>,
}

enum End {
    Exited(i64),
    TimedOut,
    Cancelled,
}

impl DockerRuntime {
    /// Connect (`DOCKER_HOST` or the local socket), negotiate the API
    /// version down to the engine's, and ping.
    pub async fn connect(policy: SandboxPolicy) -> Result<Self, RuntimeError> {
        policy.check()?;
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let endpoint = host
            .clone()
            .unwrap_or_else(|| "/var/run/docker.sock".to_string());
        let unreachable = |source| RuntimeError::DockerUnreachable {
            endpoint: endpoint.clone(),
            source,
        };
        let client = match &host {
            Some(h) if !h.starts_with("unix://") => Docker::connect_with_defaults(),
            _ => Docker::connect_with_local_defaults(),
        }
        .map_err(unreachable)?;
        let docker = client.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(Self {
            docker,
            policy,
            store: None,
        })
    }

    /// Timeout of the short API requests (bollard's default is 2 minutes).
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.docker = self.docker.with_timeout(timeout);
        self
    }

    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// Label every container with the worker that starts it.
    pub(crate) fn label_worker(&mut self, id: &str) {
        self.policy
            .extra_labels
            .retain(|(k, _)| k != sandbox::LABEL_WORKER);
        self.policy
            .extra_labels
            .push((sandbox::LABEL_WORKER.to_string(), id.to_string()));
    }

    /// The underlying client, e.g. for inspecting what a test left behind.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Force-remove every container (running or not) matching a label filter
    /// such as `org.baton.managed=true` or `org.baton.run=<id>`.
    pub async fn remove_labelled(&self, label_filter: &str) -> Result<usize, RuntimeError> {
        let filters = HashMap::from([("label".to_string(), vec![label_filter.to_string()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        let mut removed = 0;
        for id in containers.into_iter().filter_map(|c| c.id) {
            match self
                .docker
                .remove_container(&id, Some(force_remove()))
                .await
            {
                Ok(()) => removed += 1,
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    pub(crate) async fn run(&self, attempt: Attempt<'_>) -> Result<Outcome, RuntimeError> {
        let spec = attempt.spec;
        let image_missing = || RuntimeError::ImageMissing {
            image: spec.image.clone(),
        };
        match self.docker.inspect_image(&spec.image).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => return Err(image_missing()),
            Err(e) => return Err(e.into()),
        }

        let name = sandbox::container_name(spec, &format!("{:04x}", rand::random::<u16>()));
        // Worker-private scratch space: verified inputs, then /baton/out's files.
        let staging = tempfile::Builder::new().prefix("baton-files-").tempdir()?;
        let inputs = if spec.inputs.iter().any(|i| !i.artifacts.is_empty()) {
            let dir = staging.path().join("in");
            std::fs::create_dir_all(&dir)?;
            artifacts::fetch_inputs(self.store.as_ref(), &spec.inputs, &dir).await?;
            Some(dir)
        } else {
            None
        };
        let mut guard = Cleanup::new(self.docker.clone());
        let result = self
            .create_and_drive(
                attempt,
                &name,
                inputs.as_deref(),
                staging.path(),
                &mut guard,
            )
            .await;
        guard.remove().await;
        let (mut outcome, mut collected) = result?;
        artifacts::settle(self.store.as_ref(), spec, &mut collected, &mut outcome).await?;
        Ok(outcome)
    }

    /// Everything that needs the container and its volumes, which `guard` removes.
    async fn create_and_drive(
        &self,
        attempt: Attempt<'_>,
        name: &str,
        inputs: Option<&std::path::Path>,
        staging: &std::path::Path,
        guard: &mut Cleanup,
    ) -> Result<(Outcome, artifacts::Collected), RuntimeError> {
        let (spec, cancel) = (attempt.spec, attempt.cancel.clone());
        // First: the stager of `prepare` mounts the out volume too.
        let holder = docker_out::prepare(&self.docker, spec, &self.policy, name, guard).await?;
        let mounts = docker_files::prepare(
            &self.docker,
            spec,
            &self.policy,
            name,
            inputs,
            &mut guard.volumes,
        )
        .await?;
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let body = sandbox::container_body(spec, &self.policy, mounts);
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            Err(e) if is_status(&e, 404) => {
                return Err(RuntimeError::ImageMissing {
                    image: spec.image.clone(),
                })
            }
            Err(e) => return Err(bind_error(spec, e)),
        };
        guard.containers.push(id.clone());
        tracing::debug!(container = %name, task = %spec.task_id, "container created");

        let mut outcome = self.drive(&id, attempt).await?;
        if cancel.is_cancelled() {
            // Cancelled or shutting down: the files are not wanted.
            interrupt(&mut outcome, "cancelled".to_string());
            return Ok((outcome, artifacts::Collected::default()));
        }
        let out = staging.join("out");
        std::fs::create_dir_all(&out)?;
        let limit = artifacts::limit(spec.max_artifact_bytes);
        match docker_out::collect(&self.docker, &holder, &out, limit, &cancel).await? {
            Collection::Done(collected) => Ok((outcome, collected)),
            Collection::Interrupted(reason) => {
                tracing::warn!(task = %spec.task_id, %reason, "/baton/out not read back");
                interrupt(&mut outcome, reason);
                Ok((outcome, artifacts::Collected::default()))
            }
        }
    }

    async fn drive(&self, id: &str, attempt: Attempt<'_>) -> Result<Outcome, RuntimeError> {
        let spec = attempt.spec;
        // Long-lived requests outlive the API timeout (see module docs).
        let streaming = self
            .docker
            .clone()
            .with_timeout(spec.timeout + KILL_WAIT + LOG_DRAIN + Duration::from_secs(60));
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await?;

        let stop_logs = CancellationToken::new();
        let mut follower = tokio::spawn(logs::follow(
            streaming.clone(),
            id.to_string(),
            Capture::new(attempt.logs, spec.secrets.redactor.clone()),
            stop_logs.clone(),
        ));

        let end = tokio::select! {
            code = wait_exit(&streaming, id) => End::Exited(code?),
            _ = tokio::time::sleep(spec.timeout) => End::TimedOut,
            _ = attempt.cancel.cancelled() => End::Cancelled,
        };
        let exit_code = match end {
            End::Exited(code) => Some(code),
            End::TimedOut | End::Cancelled => {
                let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
                match self.docker.kill_container(id, Some(kill)).await {
                    Ok(()) => {}
                    // 409: not running any more (it exited meanwhile).
                    Err(e) if is_status(&e, 409) || is_status(&e, 404) => {}
                    Err(e) => return Err(e.into()),
                }
                tokio::time::timeout(KILL_WAIT, wait_exit(&streaming, id))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };

        let mut capture = match tokio::time::timeout(LOG_DRAIN, &mut follower).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!(
                    container = id,
                    "log stream still open after exit; closing it"
                );
                stop_logs.cancel();
                follower.await
            }
        }
        .map_err(|e| std::io::Error::other(format!("log follower failed: {e}")))?;
        if !capture.stdout.ended() {
            tracing::debug!(container = id, "end marker missing; re-reading the log");
            logs::catch_up(&streaming, id, &mut capture).await;
        }
        capture.finish().await;
        let stdout = &capture.stdout;

        let state = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?
            .state
            .unwrap_or_default();
        let exit_code = exit_code.or(state.exit_code);
        let verdict = evaluate(
            exit_code,
            stdout.last_non_empty_line(),
            stdout.result_file(),
        );
        let code_text = exit_code.map_or("none".to_string(), |c| c.to_string());
        let (ok, error) = match end {
            End::TimedOut => (
                false,
                Some(format!("timed out after {}", format_duration(spec.timeout))),
            ),
            End::Cancelled => (false, Some("cancelled".to_string())),
            End::Exited(_) if state.oom_killed == Some(true) => (
                false,
                Some(format!(
                    "killed: exceeded memory limit {} (exit {code_text})",
                    format_mib(spec.limits.memory_bytes)
                )),
            ),
            End::Exited(_) => (verdict.ok, verdict.error),
        };
        Ok(Outcome {
            ok,
            exit_code,
            report: verdict.report,
            error,
            duration: attempt.started.elapsed(),
            artifacts: Vec::new(),
        })
    }
}

/// Fail the attempt for `reason` (once: a cancelled task is not cancelled
/// again by its collection).
fn interrupt(outcome: &mut Outcome, reason: String) {
    outcome.ok = false;
    outcome.error = match outcome.error.take() {
        None => Some(reason),
        Some(first) if first == reason => Some(first),
        Some(first) => Some(format!("{first}; {reason}")),
    };
}

/// A host workspace that Docker cannot bind-mount is the dispatch's fault;
/// say which path and how to fix it.
fn bind_error(spec: &TaskSpec, e: DockerError) -> RuntimeError {
    match &spec.workspace {
        Some(ws) if is_status(&e, 400) && workspace::check(ws).ok() == Some(Kind::Host) => {
            RuntimeError::Workspace(format!(
                "cannot bind-mount host path {} at {}: {e} — create the directory on the Docker host or fix workspace.source",
                ws.source, ws.mount
            ))
        }
        _ => e.into(),
    }
}

/// Exit code of the container; a non-zero exit arrives as an `Err` from bollard.
pub(crate) async fn wait_exit(docker: &Docker, id: &str) -> Result<i64, DockerError> {
    let mut waits = Box::pin(docker.wait_container(id, None::<WaitContainerOptions>));
    match waits.next().await {
        Some(Ok(response)) => Ok(response.status_code),
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e),
        None => Ok(docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await?
            .state
            .and_then(|s| s.exit_code)
            .unwrap_or(-1)),
    }
}
