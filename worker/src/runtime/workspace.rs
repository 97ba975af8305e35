//! The shared workspace of a dispatch (`TaskDispatch.workspace`), checked
//! before anything runs.
//!
//! - kind `volume`: a Docker volume named `source` (Docker runtime only),
//!   created on first use and labelled `org.baton.run=<run>`.
//! - kind `host`: the absolute host path `source`, bind-mounted (Docker) or
//!   given as is (process runtime, which cannot make it read-only). The
//!   worker grants it first, like a role's mount: only under its
//!   `--allow-mounts`, resolved (`grant::grant`). Here, whatever granted
//!   it, a path that is never mounted (`grant::never_mounted`: the host's
//!   root, `/proc`, `/etc`, an engine socket, …) is refused once more.
//!
//! It is mounted at `mount` (absolute, outside `/baton` and `/tmp`),
//! read-only when `read_only`; tasks find the path in `$BATON_WORKSPACE`.

use std::path::Path;

use baton_proto::v1::Workspace;
use bollard::models::{Mount, MountType};

use super::{grant, RuntimeError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Volume,
    Host,
}

/// The workspace's kind, or an error that says how to fix the dispatch.
pub fn check(ws: &Workspace) -> Result<Kind, RuntimeError> {
    let kind = match ws.kind.as_str() {
        "volume" => {
            if !valid_volume_name(&ws.source) {
                return Err(RuntimeError::Workspace(format!(
                    "workspace volume name {:?} is not valid — use letters, digits, _ . - (starting with a letter or digit)",
                    ws.source
                )));
            }
            Kind::Volume
        }
        "host" => {
            if !is_clean_absolute(&ws.source) {
                return Err(RuntimeError::Workspace(format!(
                    "workspace host path {:?} must be absolute and without `..` — give the full path on the Docker host",
                    ws.source
                )));
            }
            never_mounted(&ws.source)?;
            Kind::Host
        }
        other => {
            return Err(RuntimeError::Workspace(format!(
                "workspace kind {other:?} is unknown — use \"volume\" or \"host\""
            )))
        }
    };
    let reserved = ["/", "/baton", "/tmp"];
    let under_reserved = ws.mount.starts_with("/baton/") || ws.mount.starts_with("/tmp/");
    if !is_clean_absolute(&ws.mount)
        || reserved.contains(&ws.mount.trim_end_matches('/'))
        || ws.mount.trim_end_matches('/').is_empty()
        || under_reserved
    {
        return Err(RuntimeError::Workspace(format!(
            "workspace mount {:?} must be an absolute path outside /baton and /tmp, e.g. /workspace",
            ws.mount
        )));
    }
    Ok(kind)
}

/// The last line of defence: a spec that reached the runtime without the
/// worker's grant still cannot mount the host's root, kernel interfaces,
/// configuration or an engine socket, as given or resolved.
fn never_mounted(source: &str) -> Result<(), RuntimeError> {
    let given = Path::new(source);
    // A path that does not resolve fails at the bind, naming the path.
    let resolved = std::fs::canonicalize(given).ok();
    let why = grant::never_mounted(given).map(|w| (w, None)).or_else(|| {
        let r = resolved?;
        grant::never_mounted(&r).map(|w| (w, Some(r)))
    });
    match why {
        None => Ok(()),
        Some((why, resolved)) => {
            let shown = match resolved {
                Some(r) => format!("{source} (resolves to {})", r.display()),
                None => source.to_string(),
            };
            Err(RuntimeError::Workspace(format!(
                "workspace host path {shown} is refused: {why}; it is never mounted, whatever --allow-mounts says — use a directory of its own under one of the worker's --allow-mounts DIR"
            )))
        }
    }
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_clean_absolute(p: &str) -> bool {
    p.starts_with('/') && !p.split('/').any(|c| c == "..")
}

/// The task container's mount of a checked workspace.
pub fn mount(ws: &Workspace, kind: Kind) -> Mount {
    Mount {
        target: Some(ws.mount.clone()),
        source: Some(ws.source.clone()),
        typ: Some(match kind {
            Kind::Volume => MountType::VOLUME,
            Kind::Host => MountType::BIND,
        }),
        read_only: Some(ws.read_only),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(kind: &str, source: &str, mount: &str) -> Workspace {
        Workspace {
            kind: kind.into(),
            source: source.into(),
            mount: mount.into(),
            read_only: false,
        }
    }

    #[test]
    fn kinds_and_paths() {
        assert_eq!(
            check(&ws("volume", "ws-1", "/workspace")).ok(),
            Some(Kind::Volume)
        );
        assert_eq!(
            check(&ws("host", "/srv/repo", "/repo")).ok(),
            Some(Kind::Host)
        );
        for bad in [
            ws("volume", "-x", "/workspace"),
            ws("volume", "a/b", "/workspace"),
            ws("host", "relative", "/workspace"),
            ws("host", "/a/../b", "/workspace"),
            ws("nfs", "x", "/workspace"),
            ws("volume", "ws", "/baton/out"),
            ws("volume", "ws", "/baton"),
            ws("volume", "ws", "/"),
            ws("volume", "ws", "workspace"),
            ws("host", "/", "/workspace"),
            ws("host", "/var/run", "/workspace"),
            ws("host", "/etc", "/workspace"),
            ws("host", "/proc/1/root", "/workspace"),
        ] {
            let e = check(&bad).expect_err(&format!("{bad:?}"));
            assert!(e.is_permanent(), "{e}");
        }
    }

    #[test]
    fn a_link_to_a_never_mounted_path_is_refused_here_too() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("root");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let source = link.to_str().unwrap();
        let e = check(&Workspace {
            kind: "host".into(),
            source: source.into(),
            mount: "/workspace".into(),
            read_only: true,
        })
        .unwrap_err();
        assert!(e.is_permanent());
        assert!(
            e.to_string()
                .contains(&format!("{source} (resolves to /) is refused")),
            "{e}"
        );
    }
}
