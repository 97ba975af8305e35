//! A Baton of separate processes on this machine: one nats-server with
//! JetStream (fsync on every write, as in production), coordinators, the
//! gate evaluators and workers, each a `baton` process with its log in the
//! cluster's folder. Workers reach NATS through a [`Proxy`] the runner can cut.
//! Everything is killed when the cluster is dropped.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton_test_support::{NatsOptions, NatsServer};

use crate::proxy::Proxy;

pub struct ClusterOptions {
    pub baton_bin: PathBuf,
    /// Prefix of every coordinator and worker id, so that clusters on one
    /// Docker engine never take each other's containers for leftovers.
    pub name: String,
    pub coordinators: usize,
    pub workers: usize,
    pub worker_concurrency: usize,
    pub roles: Vec<String>,
    pub lease_ttl: Duration,
    pub ack_wait: Duration,
    /// `process` (fast, unsandboxed) or `docker`.
    pub runtime: String,
}

/// One `baton` process that can be killed, frozen and restarted.
pub struct Proc {
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Bumped on each restart; coordinators restart under a new id, as a
    /// replaced pod would, so that takeover by a peer is what gets measured.
    pub generation: u32,
}

impl Proc {
    fn new(name: &str, bin: &Path, args: Vec<String>, dir: &Path) -> Proc {
        Proc {
            name: name.to_string(),
            bin: bin.to_path_buf(),
            args,
            log: dir.join(format!("{name}.log")),
            child: None,
            generation: 0,
        }
    }

    pub fn spawn(&mut self) -> std::io::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{gen}", &self.generation.to_string()))
            .collect();
        let child = Command::new(&self.bin)
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no clean-up, no hand-over.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill9();
        self.generation += 1;
        self.spawn()
    }

    /// SIGSTOP / SIGCONT: the local stand-in for `docker pause`.
    pub fn pause(&self) {
        self.signal("-STOP");
    }
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM, then wait up to `grace` for a clean exit (SIGKILL after).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal("-TERM");
        let deadline = Instant::now() + grace;
        let mut c = self.child.take()?;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            // The `kill` command, so that this crate needs no unsafe code.
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(
            &std::fs::read_to_string(&self.log).unwrap_or_default(),
            lines,
        )
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nats: NatsServer,
    pub nats_port: u16,
    pub coordinators: Vec<Proc>,
    pub grpc: Vec<SocketAddr>,
    pub gates: Proc,
    pub workers: Vec<Proc>,
    pub proxies: Vec<Proxy>,
    /// An admin token every coordinator accepts (its hash is in the
    /// cluster's tokens file).
    pub token: baton_proto::secret::Secret,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    pub async fn start(o: &ClusterOptions) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // Every write on disk before it is acknowledged: a kill -9 of the
        // server must lose nothing that it confirmed.
        let nats = NatsServer::launch(NatsOptions {
            store_dir: Some(dir.path().join("js")),
            config: Some("jetstream {\n  sync_interval: always\n}\n".into()),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        let nats_port = nats.port();
        let url = format!("nats://127.0.0.1:{nats_port}");
        let upstream: SocketAddr = ([127, 0, 0, 1], nats_port).into();
        let token = baton_coordinator::auth::token::generate();
        let tokens_file = dir.path().join("tokens");
        std::fs::write(
            &tokens_file,
            baton_coordinator::auth::token::file_line(
                &token,
                "chaos",
                baton_coordinator::auth::Role::Admin,
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut coordinators = Vec::new();
        let mut grpc = Vec::new();
        for i in 0..o.coordinators {
            let port = free_port().map_err(|e| e.to_string())?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            grpc.push(addr);
            coordinators.push(Proc::new(
                &format!("{}coordinator-{i}", o.name),
                &o.baton_bin,
                vec![
                    "coordinator".into(),
                    "--nats-url".into(),
                    url.clone(),
                    "--grpc-addr".into(),
                    addr.to_string(),
                    "--id".into(),
                    format!("{}coordinator-{i}-g{{gen}}", o.name),
                    "--lease-ttl-ms".into(),
                    o.lease_ttl.as_millis().to_string(),
                    "--tokens-file".into(),
                    tokens_file.display().to_string(),
                ],
                dir.path(),
            ));
        }
        let gates = Proc::new(
            "gates",
            &o.baton_bin,
            vec!["gates".into(), "--nats-url".into(), url.clone()],
            dir.path(),
        );
        let mut workers = Vec::new();
        let mut proxies = Vec::new();
        for i in 0..o.workers {
            let proxy = Proxy::start(upstream).await.map_err(|e| e.to_string())?;
            workers.push(Proc::new(
                &format!("{}worker-{i}", o.name),
                &o.baton_bin,
                vec![
                    "worker".into(),
                    "--nats-url".into(),
                    proxy.url(),
                    "--roles".into(),
                    o.roles.join(","),
                    "--id".into(),
                    format!("{}worker-{i}", o.name),
                    "--runtime".into(),
                    o.runtime.clone(),
                    "--concurrency".into(),
                    o.worker_concurrency.to_string(),
                    "--ack-wait-secs".into(),
                    o.ack_wait.as_secs().max(1).to_string(),
                    "--grace-secs".into(),
                    "5".into(),
                ],
                dir.path(),
            ));
            proxies.push(proxy);
        }
        let mut c = Cluster {
            dir,
            nats,
            nats_port,
            coordinators,
            grpc,
            gates,
            workers,
            proxies,
            token,
        };
        for p in c
            .coordinators
            .iter_mut()
            .chain(std::iter::once(&mut c.gates))
            .chain(c.workers.iter_mut())
        {
            p.spawn()
                .map_err(|e| format!("cannot start {}: {e}", p.name))?;
        }
        for (i, addr) in c.grpc.iter().enumerate() {
            if !wait_listening(addr.port(), Duration::from_secs(30)).await {
                return Err(format!(
                    "coordinator-{i} did not start: {}",
                    c.coordinators[i].log_tail(20)
                ));
            }
        }
        Ok(c)
    }

    /// A client of coordinator `i` that sends the cluster's admin token.
    pub async fn admin(
        &self,
        i: usize,
    ) -> Result<baton_proto::client::Admin, baton_proto::client::ClientError> {
        baton_proto::client::connect(
            &format!("http://{}", self.grpc[i]),
            Some(&self.token),
            &baton_proto::client::ClientTls::default(),
        )
        .await
    }

    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }

    /// kill -9 the server, start it again on the same port and store.
    pub async fn restart_nats(&mut self, down_for: Duration) -> Result<(), String> {
        self.nats.kill();
        tokio::time::sleep(down_for).await;
        self.nats
            .start_again()
            .map_err(|e| format!("nats-server did not come back: {e}"))
    }

    /// Stop everything but keep the folder (logs, sink, store) for a person.
    pub fn keep(self) -> PathBuf {
        let Cluster { dir, .. } = self;
        dir.keep()
    }

    /// Every process's last log lines, for a failure message.
    pub fn logs(&self, lines: usize) -> String {
        std::iter::once(format!(
            "--- nats-server ---\n{}",
            tail(&self.nats.log(), lines)
        ))
        .chain(
            self.coordinators
                .iter()
                .chain(std::iter::once(&self.gates))
                .chain(self.workers.iter())
                .map(|p| format!("--- {} ---\n{}", p.name, p.log_tail(lines))),
        )
        .collect::<Vec<_>>()
        .join("\n")
    }
}

pub async fn wait_listening(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}
