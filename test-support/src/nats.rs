//! Baton's one nats-server launcher: for each test, for `baton dev` and
//! `baton bench`, and for the chaos cluster.
//!
//! A server is started with JetStream on `127.0.0.1`, a store directory (a
//! temporary one unless given) and, optionally, extra config text (users,
//! permissions, TLS, `sync_interval`). It is ready when it has written its
//! ports file *and* accepts connections; it is killed hard on drop, keeping
//! a given store, so the next start on that store is a crash recovery.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server gets to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the `nats-server` binary is: `$BATON_NATS_SERVER`, then
/// `.baton/bin/nats-server` (what `scripts/setup.sh` installs) in the working
/// directory, next to the running binary or in this workspace, then `PATH`.
pub fn find_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BATON_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(".baton/bin/nats-server");
    let mut candidates = vec![local.to_path_buf()];
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/baton → <workspace>/.baton/bin
        candidates.extend(exe.ancestors().skip(1).take(4).map(|d| d.join(local)));
    }
    candidates.push(crate::workspace_root().join(local));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// [`find_binary`], or plain `nats-server` so that the spawn error names it.
pub fn nats_server_binary() -> PathBuf {
    find_binary().unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// What to start. The default is a random port and a temporary store.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// `None` picks a free port.
    pub port: Option<u16>,
    /// `None` uses a temporary directory, removed on drop.
    pub store_dir: Option<PathBuf>,
    /// nats-server config text given with `-c` (`authorization`, `tls`,
    /// `jetstream { sync_interval: always }`, …). The port, address,
    /// JetStream and store come from the command line, so it cannot pin them.
    pub config: Option<String>,
}

/// Why a server did not start. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("nats-server not found — run scripts/setup.sh (installs it into .baton/bin), put it on PATH or set BATON_NATS_SERVER")]
    NotFound,
    #[error("cannot prepare nats-server's files: {0}")]
    Files(#[source] std::io::Error),
    #[error("cannot start {binary}: {source} — run scripts/setup.sh or set BATON_NATS_SERVER")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nats-server exited at start ({status}){hint}; it said: {log}")]
    Exited {
        status: std::process::ExitStatus,
        hint: String,
        log: String,
    },
    #[error("nats-server did not accept connections within {START_TIMEOUT:?}; it said: {log}")]
    Timeout { log: String },
}

enum Store {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

pub struct NatsServer {
    child: Option<Child>,
    store: Store,
    /// The ports file, the config and stderr.
    scratch: tempfile::TempDir,
    port: u16,
    binary: PathBuf,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// A test's server: JetStream on a random port and a temporary store.
    /// Panics, naming the fix, when it cannot start.
    pub fn start() -> Self {
        Self::launch(NatsOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`NatsServer::start`], with `config` (nats-server config text:
    /// `authorization`, `tls`, …) added.
    pub fn start_with_config(config: &str) -> Self {
        Self::launch(NatsOptions {
            config: Some(config.into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start a server as `options` say, and wait until it accepts connections.
    pub fn launch(options: NatsOptions) -> Result<Self, LaunchError> {
        let binary = find_binary().ok_or(LaunchError::NotFound)?;
        let scratch = tempfile::tempdir().map_err(LaunchError::Files)?;
        let store = match options.store_dir {
            Some(d) => Store::Given(d),
            None => Store::Temp(tempfile::tempdir().map_err(LaunchError::Files)?),
        };
        let config = match options.config {
            Some(text) => {
                let path = scratch.path().join("extra.conf");
                std::fs::write(&path, text).map_err(LaunchError::Files)?;
                Some(path)
            }
            None => None,
        };
        let mut s = NatsServer {
            child: None,
            store,
            scratch,
            port: 0,
            binary,
            config,
        };
        s.spawn(options.port)?;
        Ok(s)
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<(), LaunchError> {
        let port_arg = port.map(|p| p.to_string()).unwrap_or_else(|| "-1".into());
        let mut cmd = Command::new(&self.binary);
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        let stderr = std::fs::File::create(self.scratch.path().join("stderr.log"))
            .map_err(LaunchError::Files)?;
        let child = cmd
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "--store_dir"])
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(self.scratch.path())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        let pid = child.id();
        self.child = Some(child);
        let ports_file = self.scratch.path().join(format!(
            "{}_{pid}.ports",
            self.binary
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let deadline = Instant::now() + START_TIMEOUT;
        let mut listening = None;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let hint = port
                    .map(|p| format!(" — is port {p} taken?"))
                    .unwrap_or_default();
                return Err(LaunchError::Exited {
                    status,
                    hint,
                    log: self.log(),
                });
            }
            if listening.is_none() {
                listening = std::fs::read_to_string(&ports_file)
                    .ok()
                    .and_then(|t| parse_client_port(&t));
            }
            // The ports file appears before the listener accepts.
            if let Some(p) = listening {
                if std::net::TcpStream::connect(("127.0.0.1", p)).is_ok() {
                    self.port = p;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(LaunchError::Timeout { log: self.log() });
            }
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
        self.start_again().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Start a killed server again on its port and store.
    pub fn start_again(&mut self) -> Result<(), LaunchError> {
        let port = self.port;
        self.spawn(Some(port))
    }

    /// Kill the server hard (SIGKILL), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's process id while it runs (to freeze it, for example).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server has logged since it last started (its stderr), e.g. to
    /// look for permission violations.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn store_dir(&self) -> &Path {
        match &self.store {
            Store::Temp(t) => t.path(),
            Store::Given(p) => p,
        }
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
    use super::*;

    #[test]
    fn a_taken_port_is_named_in_the_error() {
        let first = NatsServer::start();
        let err = NatsServer::launch(NatsOptions {
            port: Some(first.port()),
            ..Default::default()
        })
        .err()
        .expect("a second server on a taken port must not start");
        let text = err.to_string();
        assert!(
            matches!(err, LaunchError::Exited { .. }),
            "want Exited, got {text}"
        );
        assert!(
            text.contains(&format!("is port {} taken?", first.port())),
            "{text}"
        );
    }

    #[test]
    fn a_given_store_outlives_the_server_and_config_text_applies() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("js");
        let s = NatsServer::launch(NatsOptions {
            store_dir: Some(store.clone()),
            config: Some("server_name: launcher_test\n".into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.store_dir(), store);
        assert!(s.log().contains("launcher_test"), "{}", s.log());
        drop(s);
        assert!(store.join("jetstream").is_dir(), "the store was removed");
    }

    #[test]
    fn parses_ports_file() {
        let t = r#"{"nats":["nats://127.0.0.1:39511"],"monitoring":[]}"#;
        assert_eq!(super::parse_client_port(t), Some(39511));
        let t = r#"{"nats":["tls://127.0.0.1:4443"],"monitoring":[]}"#;
        assert_eq!(super::parse_client_port(t), Some(4443));
    }
}
