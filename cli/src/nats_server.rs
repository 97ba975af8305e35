//! `baton dev` runs its own nats-server when no `--nats-url` is given.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `$BATON_NATS_SERVER`, then `.baton/bin/nats-server` (what scripts/setup.sh
/// installs) next to the working directory or the binary, then `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BATON_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from(".baton/bin/nats-server")];
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/baton → <workspace>/.baton/bin
        for dir in exe.ancestors().skip(1).take(4) {
            candidates.push(dir.join(".baton/bin/nats-server"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

pub struct DevNats {
    child: Child,
    pub url: String,
    _store: Option<tempfile::TempDir>,
}

impl DevNats {
    pub fn start(port: u16, store_dir: Option<&Path>) -> anyhow::Result<DevNats> {
        let bin = find().ok_or_else(|| {
            anyhow::anyhow!("nats-server not found — run scripts/setup.sh (installs it into .baton/bin), put it on PATH, or pass --nats-url")
        })?;
        let (store, dir) = match store_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let child = Command::new(&bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--store_dir",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let mut me = DevNats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = me.child.try_wait() {
                anyhow::bail!("nats-server exited at start ({status}) — is port {port} taken? pass --nats-port or --nats-url");
            }
            if Instant::now() > deadline {
                anyhow::bail!("nats-server did not listen on {port} within 10s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }
}

impl Drop for DevNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
