//! `/baton/out` of a Docker attempt, bounded: a size-limited tmpfs while
//! the task runs, and reading it back within size, time and cancellation.
//!
//! # A quota while the task runs
//! `/baton/out` is the per-attempt volume `<container>-out`, created here
//! *before* [`super::docker_files::prepare`] as a `local` volume of type
//! tmpfs with `size=` [`out_quota`] (the artifact limit plus a
//! margin), `nosuid,nodev`, `mode=0755` and, for a numeric sandbox user, its
//! `uid`/`gid`. `prepare` then creates the same name, which Docker treats
//! as a no-op (the driver is the same), and its stager hands the root to the
//! sandbox user as before. A task that writes past the quota gets `No space
//! left on device`; nothing it writes lands on the engine's disk. Why a
//! tmpfs: the volumes of this engine live on the host's root file system
//! (`local` driver, no `size` option in Docker 20.10), and the container
//! storage driver (`fuse-overlayfs`) takes no `--storage-opt size`, so a
//! tmpfs is the one size limit every engine honours. Its pages count
//! against the task's memory limit, like `/tmp`'s.
//!
//! A tmpfs volume is unmounted, and its files lost, when no running
//! container uses it any more, and the task's container has stopped by the
//! time its files are read. So a *holder* keeps it mounted: a container from
//! the task's image (it has `/bin/sh`, for the wrapper) running `/bin/sh`
//! on an open, silent stdin, with the volume read-only, as the sandbox user,
//! no network, a read-only root, no capabilities, 16 MiB and 4 processes.
//! It starts before the stager (so that the stager's `chown` stays) and is
//! removed with the attempt; its files are read back through it. It carries
//! the attempt's labels, but the worker's under [`LABEL_HOLDER_OF`] rather
//! than `org.baton.worker`, which marks the containers that run tasks; a
//! worker restarted under the same id removes both kinds.
//!
//! # Reading back within bounds
//! `GET /containers/<holder>/archive?path=/baton/out` is parsed as it
//! arrives ([`docker_files::collect`]) by
//! [`crate::artifacts::local::extract_tar`], which refuses from the tar
//! headers what is over the limit (a sparse 10 TiB file costs one header)
//! and stops; the stream is then dropped, which closes the connection and
//! ends the engine's side. The reading also ends at once on the attempt's
//! cancellation (a `baton cancel` or the worker's shutdown) and after
//! [`deadline`] ([`bounded`]); the attempt then fails, its files are not
//! kept, and its containers and volumes go as usual.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use tokio_util::sync::CancellationToken;

use super::docker_cleanup::{is_status, remove_quietly};
use super::docker_files::{self, LABEL_SCRATCH};
use super::result::format_duration;
use super::sandbox::{self, numeric_ids, SandboxPolicy, OUT_DIR};
use super::{RuntimeError, TaskSpec};
use crate::artifacts::local::{human_bytes, Collected};
use crate::artifacts::out_quota;

/// Suffix of the holder's container name.
pub const HOLDER_SUFFIX: &str = "-hold";
/// On a holder, instead of `org.baton.worker` (which marks the containers
/// that run tasks): the worker that started it, for `adopt_leftovers`.
pub const LABEL_HOLDER_OF: &str = "org.baton.holder-of";
/// Reading back `/baton/out` may take this long, plus [`READ_RATE`].
const READ_BASE: Duration = Duration::from_secs(20);
/// The slowest reading speed allowed for the limit, in bytes per second.
const READ_RATE: u64 = 32 * 1024 * 1024;

/// How long reading back `/baton/out` may take when `limit` bytes are kept.
pub fn deadline(limit: u64) -> Duration {
    READ_BASE + Duration::from_secs(limit / READ_RATE)
}

/// The `local` driver options of the out volume: a tmpfs of `quota` bytes.
pub fn volume_options(policy: &SandboxPolicy, quota: u64) -> HashMap<String, String> {
    let mut o = format!("size={quota},nosuid,nodev,mode=0755");
    if let Some((uid, gid)) = numeric_ids(&policy.user) {
        o.push_str(&format!(",uid={uid},gid={gid}"));
    }
    HashMap::from([
        ("type".to_string(), "tmpfs".to_string()),
        ("device".to_string(), "tmpfs".to_string()),
        ("o".to_string(), o),
    ])
}

/// Removes an attempt's containers, then its volumes (a volume in use
/// cannot go), also when dropped half-way (the `run` future is dropped).
pub(crate) struct Cleanup {
    pub(crate) docker: Docker,
    pub(crate) containers: Vec<String>,
    pub(crate) volumes: Vec<String>,
}

impl Cleanup {
    pub(crate) fn new(docker: Docker) -> Self {
        Self {
            docker,
            containers: Vec::new(),
            volumes: Vec::new(),
        }
    }

    pub(crate) async fn remove(&mut self) {
        let containers = std::mem::take(&mut self.containers);
        let volumes = std::mem::take(&mut self.volumes);
        remove_all(&self.docker, containers, volumes).await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut self.containers);
        let volumes = std::mem::take(&mut self.volumes);
        if containers.is_empty() && volumes.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let docker = self.docker.clone();
                handle.spawn(async move { remove_all(&docker, containers, volumes).await });
            }
            Err(_) => {
                tracing::warn!(?containers, ?volumes, "no runtime to remove the containers")
            }
        }
    }
}

async fn remove_all(docker: &Docker, containers: Vec<String>, mut volumes: Vec<String>) {
    futures::future::join_all(containers.iter().map(|id| remove_quietly(docker, id))).await;
    // `prepare` lists the out volume that `docker_files::prepare` lists too.
    let mut seen = std::collections::HashSet::new();
    volumes.retain(|v| seen.insert(v.clone()));
    for v in volumes {
        match docker_files::remove_volume(docker, &v).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => tracing::warn!(volume = %v, error = %e, "cannot remove volume"),
        }
    }
}

/// Create the out volume `<name>-out` as a tmpfs of the attempt's quota and
/// start its holder; both are registered with `cleanup` at once. Returns
/// the holder's id, to read the files back through.
pub(crate) async fn prepare(
    docker: &Docker,
    spec: &TaskSpec,
    policy: &SandboxPolicy,
    name: &str,
    cleanup: &mut Cleanup,
) -> Result<String, RuntimeError> {
    let limit = crate::artifacts::limit(spec.max_artifact_bytes);
    let volume = format!("{name}-out");
    let mut labels = sandbox::labels(spec, policy);
    labels.insert(LABEL_SCRATCH.to_string(), "true".to_string());
    let request = VolumeCreateRequest {
        name: Some(volume.clone()),
        driver: Some("local".to_string()),
        driver_opts: Some(volume_options(policy, out_quota(limit))),
        labels: Some(labels),
        ..Default::default()
    };
    docker
        .create_volume(request)
        .await
        .map_err(|source| RuntimeError::Volume {
            volume: volume.clone(),
            source,
        })?;
    cleanup.volumes.push(volume.clone());

    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(vec!["/bin/sh".to_string()]),
        // `sh` reads commands from a stdin nobody writes to: it waits.
        open_stdin: Some(true),
        stdin_once: Some(false),
        attach_stdin: Some(false),
        tty: Some(false),
        user: Some(policy.user.clone()),
        labels: Some(holder_labels(spec, policy)),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(vec![Mount {
                target: Some(OUT_DIR.to_string()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(true),
                ..Default::default()
            }]),
            network_mode: Some("none".to_string()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            privileged: Some(false),
            memory: Some(16 * 1024 * 1024),
            memory_swap: Some(16 * 1024 * 1024),
            nano_cpus: Some(100_000_000),
            pids_limit: Some(4),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&format!("{name}{HOLDER_SUFFIX}"))
        .build();
    let id = docker.create_container(Some(options), body).await?.id;
    cleanup.containers.push(id.clone());
    if let Err(source) = docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
    {
        // Under load the engine can answer 500 "cannot start an already
        // running container" for a start that did take: what counts is
        // whether the holder runs.
        let running = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|st| st.running)
            .unwrap_or(false);
        if !running {
            return Err(RuntimeError::Volume { volume, source });
        }
        tracing::debug!(container = %id, error = %source, "holder start answered an error but the holder runs");
    }
    Ok(id)
}

/// The attempt's labels, with the worker's under [`LABEL_HOLDER_OF`].
pub fn holder_labels(spec: &TaskSpec, policy: &SandboxPolicy) -> HashMap<String, String> {
    let mut labels = sandbox::labels(spec, policy);
    if let Some(worker) = labels.remove(sandbox::LABEL_WORKER) {
        labels.insert(LABEL_HOLDER_OF.to_string(), worker);
    }
    labels
}

/// How reading `/baton/out` back ended.
#[derive(Debug)]
pub(crate) enum Collection {
    Done(Collected),
    /// Cancelled, or past its deadline: the reason, for the outcome.
    Interrupted(String),
}

/// Read `/baton/out` through the holder into `dest`, within `limit`
/// ([`docker_files::collect`] unpacks with
/// [`crate::artifacts::local::extract_tar`], which
/// stops at the limit), the [`deadline`] and `cancel`.
pub(crate) async fn collect(
    docker: &Docker,
    holder: &str,
    dest: &Path,
    limit: u64,
    cancel: &CancellationToken,
) -> Result<Collection, RuntimeError> {
    let state = docker
        .inspect_container(holder, None::<InspectContainerOptions>)
        .await?
        .state
        .unwrap_or_default();
    if state.running != Some(true) {
        // Its volume was unmounted when the task stopped: the files are gone.
        return Err(RuntimeError::Io(std::io::Error::other(format!(
            "the container holding /baton/out ({holder}) stopped before the task's files were read back (exit {}, OOM-killed: {}) — they are lost; check the engine's log",
            state.exit_code.map_or("none".to_string(), |c| c.to_string()),
            state.oom_killed.unwrap_or(false)
        ))));
    }
    bounded(
        docker_files::collect(docker, holder, dest, limit),
        limit,
        cancel,
        deadline(limit),
    )
    .await
}

/// `reading` unless `cancel` fires or `within` passes first. Dropping it
/// drops the archive stream, which closes the connection (the engine stops
/// sending), and the channel to the unpacking thread, which then meets the
/// end of its input and returns; the caller removes the containers before
/// the staging directory goes, which leaves that thread ample time.
pub(crate) async fn bounded(
    reading: impl std::future::Future<Output = Result<Collected, RuntimeError>>,
    limit: u64,
    cancel: &CancellationToken,
    within: Duration,
) -> Result<Collection, RuntimeError> {
    tokio::select! {
        collected = reading => collected.map(Collection::Done),
        _ = cancel.cancelled() => Ok(Collection::Interrupted("cancelled".to_string())),
        _ = tokio::time::sleep(within) => Ok(Collection::Interrupted(format!(
            "reading /baton/out back did not finish within {} (max_artifact_bytes {}) — the Docker engine is slow or overloaded; the task's files were not kept",
            format_duration(within),
            human_bytes(limit)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A reading that never ends (an engine streaming the zeros of a huge
    /// sparse file within a raised limit) ends at once on a cancel.
    #[tokio::test]
    async fn cancel_ends_a_reading_at_once() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let ended = bounded(
            futures::future::pending(),
            1000,
            &cancel,
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        assert!(
            matches!(&ended, Collection::Interrupted(r) if r == "cancelled"),
            "{ended:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_stalled_reading_ends_at_the_deadline() {
        let ended = bounded(
            futures::future::pending(),
            1000,
            &CancellationToken::new(),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        let Collection::Interrupted(reason) = ended else {
            panic!("{ended:?}")
        };
        assert_eq!(
            reason,
            "reading /baton/out back did not finish within 300ms (max_artifact_bytes 1000 bytes) — the Docker engine is slow or overloaded; the task's files were not kept"
        );
    }

    #[tokio::test]
    async fn a_finished_reading_is_kept() {
        let ended = bounded(
            async { Ok(Collected::default()) },
            1000,
            &CancellationToken::new(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert!(matches!(ended, Collection::Done(c) if c == Collected::default()));
    }

    #[test]
    fn the_holder_is_not_labelled_as_a_task_container() {
        let policy = SandboxPolicy {
            extra_labels: vec![(sandbox::LABEL_WORKER.into(), "w1".into())],
            ..Default::default()
        };
        let spec = TaskSpec::new(
            "r1",
            "t1",
            1,
            "img",
            vec!["true".into()],
            Duration::from_secs(1),
        );
        let labels = holder_labels(&spec, &policy);
        assert_eq!(labels.get(sandbox::LABEL_WORKER), None);
        assert_eq!(labels[LABEL_HOLDER_OF], "w1");
        assert_eq!(labels[sandbox::LABEL_RUN], "r1");
        assert_eq!(labels[sandbox::LABEL_MANAGED], "true");
    }

    #[test]
    fn quota_options() {
        let o = volume_options(&SandboxPolicy::default(), out_quota(64 << 20));
        assert_eq!(o["type"], "tmpfs");
        assert_eq!(
            o["o"],
            "size=75497472,nosuid,nodev,mode=0755,uid=10001,gid=10001"
        );
        let named = SandboxPolicy {
            user: "agent".into(),
            ..Default::default()
        };
        assert_eq!(
            volume_options(&named, 5000)["o"],
            "size=5000,nosuid,nodev,mode=0755"
        );
        assert_eq!(out_quota(1000), 1000 + (4 << 20));
        assert_eq!(deadline(64 << 20), Duration::from_secs(22));
    }
}
