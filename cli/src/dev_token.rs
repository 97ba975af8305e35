//! `baton dev`'s admin token on disk, where client commands find it by default.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use baton_proto::client::dev_token_path;
use baton_proto::secret::Secret;

/// Write `token` 0600 for clients of `addr`; with auth off, remove any
/// earlier one. Returns the file written.
pub fn publish(token: Option<&Secret>, addr: SocketAddr) -> Result<Option<PathBuf>, String> {
    let path = dev_token_path(&addr.to_string())
        .ok_or("cannot tell where to keep the dev token: set BATON_STATE_DIR or HOME")?;
    // Never reuse a file: whoever made it may have made it readable to others.
    let _ = std::fs::remove_file(&path);
    let Some(token) = token else {
        return Ok(None);
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(f, "{}", token.expose())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Some(path))
}

pub fn warn_no_auth() {
    eprintln!("  auth:      OFF (--no-auth)");
    eprintln!("  WARNING: the admin API has NO AUTHENTICATION: anyone who can reach");
    eprintln!("  WARNING: the port is an admin. Never use --no-auth outside a laptop.");
}
