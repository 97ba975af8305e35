//! Removing what an attempt created in Docker: its container, then its
//! per-attempt volumes, also when the `run` future is dropped half-way.

use bollard::errors::Error as DockerError;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;

use super::docker_files;

pub(crate) fn force_remove() -> bollard::query_parameters::RemoveContainerOptions {
    RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build()
}

pub(crate) fn is_status(e: &DockerError, status: u16) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// Removes the container, then the attempt's volumes (a volume in use
/// cannot go), also when dropped (if the `run` future is dropped).
pub(crate) struct RemoveOnDrop {
    pub(crate) docker: Docker,
    pub(crate) id: Option<String>,
    pub(crate) volumes: Vec<String>,
}

impl RemoveOnDrop {
    pub(crate) async fn remove(&mut self) {
        let (id, volumes) = (self.id.take(), std::mem::take(&mut self.volumes));
        remove_all(&self.docker, id, volumes).await;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (id, volumes) = (self.id.take(), std::mem::take(&mut self.volumes));
        if id.is_none() && volumes.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let docker = self.docker.clone();
                handle.spawn(async move { remove_all(&docker, id, volumes).await });
            }
            Err(_) => {
                tracing::warn!(container = ?id, ?volumes, "no runtime to remove the container")
            }
        }
    }
}

async fn remove_all(docker: &Docker, id: Option<String>, volumes: Vec<String>) {
    if let Some(id) = id {
        remove_quietly(docker, &id).await;
    }
    for v in volumes {
        match docker_files::remove_volume(docker, &v).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => tracing::warn!(volume = %v, error = %e, "cannot remove volume"),
        }
    }
}

pub(crate) async fn remove_quietly(docker: &Docker, id: &str) {
    match docker.remove_container(id, Some(force_remove())).await {
        Ok(()) => {}
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
        Err(e) => tracing::warn!(container = %id, error = %e, "cannot remove container"),
    }
}
