//! A real JetStream server for one test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the `nats-server` binary is: `$BATON_NATS_SERVER`, then the
/// project-local install of `scripts/setup.sh` (`.baton/bin/`), then `PATH`.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("BATON_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let local = crate::workspace_root().join(".baton/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

pub struct NatsServer {
    child: Option<Child>,
    store: tempfile::TempDir,
    ports_dir: tempfile::TempDir,
    port: u16,
    binary: PathBuf,
    /// An extra config file (users, permissions, TLS) given with `-c`.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Start a server with JetStream on a random port and a temporary store.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Like [`NatsServer::start`], with `config` (nats-server config text:
    /// `authorization`, `tls`, …) added. The port, address, JetStream and
    /// store still come from the command line, so a config cannot pin them.
    pub fn start_with_config(config: &str) -> Self {
        Self::start_inner(Some(config))
    }

    fn start_inner(config: Option<&str>) -> Self {
        let binary = nats_server_binary();
        let store = tempfile::tempdir().expect("temp store dir");
        let ports_dir = tempfile::tempdir().expect("temp ports dir");
        let mut s = NatsServer {
            child: None,
            store,
            ports_dir,
            port: 0,
            binary,
            config: None,
        };
        if let Some(text) = config {
            let path = s.ports_dir.path().join("extra.conf");
            std::fs::write(&path, text).expect("write the test nats-server config");
            s.config = Some(path);
        }
        s.spawn(None);
        s
    }

    fn spawn(&mut self, port: Option<u16>) {
        let port_arg = port.map(|p| p.to_string()).unwrap_or_else(|| "-1".into());
        let mut cmd = Command::new(&self.binary);
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        let child = cmd
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "--store_dir"])
            .arg(self.store.path())
            .arg("--ports_file_dir")
            .arg(self.ports_dir.path())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.ports_dir.path().join("stderr.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} — run scripts/setup.sh (it installs nats-server into .baton/bin) or set BATON_NATS_SERVER",
                    self.binary.display()
                )
            });
        let pid = child.id();
        self.child = Some(child);
        let ports_file = self.ports_dir.path().join(format!(
            "{}_{pid}.ports",
            self.binary.file_name().unwrap().to_string_lossy()
        ));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                if let Some(p) = parse_client_port(&text) {
                    self.port = p;
                    break;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nats-server ({exited:?}) did not write {ports_file:?} within 15s; it said: {}",
                std::fs::read_to_string(self.ports_dir.path().join("stderr.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // The ports file appears before the listener accepts; wait until it does.
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server is not accepting on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server hard, then start it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(Some(port));
    }

    /// Kill the server hard (SIGKILL), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the server has logged so far (its stderr), e.g. to look for
    /// permission violations.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.ports_dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn store_dir(&self) -> &std::path::Path {
        self.store.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn parse_client_port(text: &str) -> Option<u16> {
    // {"nats":["nats://127.0.0.1:4222"],...}
    let start = text.find("\"nats\"")?;
    let rest = &text[start..];
    // `nats://` or, with TLS on, `tls://`.
    let url_start = rest.find("://")? + "://".len();
    let rest = &rest[url_start..];
    let end = rest.find('"')?;
    rest[..end].rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_ports_file() {
        let t = r#"{"nats":["nats://127.0.0.1:39511"],"monitoring":[]}"#;
        assert_eq!(super::parse_client_port(t), Some(39511));
        let t = r#"{"nats":["tls://127.0.0.1:4443"],"monitoring":[]}"#;
        assert_eq!(super::parse_client_port(t), Some(4443));
    }
}
