//! The shared workspace of a dispatch (`TaskDispatch.workspace`), checked
//! before anything runs (pure).
//!
//! - kind `volume`: a Docker volume named `source` (Docker runtime only),
//!   created on first use and labelled `org.baton.run=<run>`.
//! - kind `host`: the absolute host path `source`, bind-mounted (Docker) or
//!   given as is (process runtime, which cannot make it read-only).
//!
//! It is mounted at `mount` (absolute, outside `/baton` and `/tmp`),
//! read-only when `read_only`; tasks find the path in `$BATON_WORKSPACE`.

use baton_proto::v1::Workspace;
use bollard::models::{Mount, MountType};

use super::RuntimeError;

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
        ] {
            let e = check(&bad).expect_err(&format!("{bad:?}"));
            assert!(e.is_permanent(), "{e}");
        }
    }
}
