//! The coordinator as a component: `Options` → `build()` → `Coordinator::run(cancel)`.

use std::net::SocketAddr;
use std::time::Duration;

use baton_proto::supervise::Supervisor;
use baton_proto::topology::TopologyOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminService;
use crate::engine::Engine;
use crate::state_store::RunStore;
use crate::submit::Submitter;
use crate::Error;

#[derive(Clone, Debug)]
pub struct Options {
    pub nats_url: String,
    /// Credentials and TLS for NATS (default: none).
    pub nats_auth: baton_proto::nats_auth::NatsAuth,
    pub grpc_addr: SocketAddr,
    pub topology: TopologyOptions,
    /// This coordinator's name in leases. A coordinator restarted under the
    /// same id resumes its runs at once instead of waiting out their leases.
    pub id: String,
    /// How long a run's owner may go silent before a peer takes the run over.
    pub lease_ttl: Duration,
    /// Where to serve webhook triggers (`POST /hooks/<plan>`); None = nowhere.
    pub http_addr: Option<SocketAddr>,
    /// HMAC key that webhook bodies must be signed with. Without it (and
    /// without a token) the webhook endpoint refuses everything.
    pub hook_secret: Option<baton_proto::secret::Secret>,
    /// The text of `--hook-token-file`: a bearer token accepted instead of a
    /// signature for Alertmanager notifications (Alertmanager cannot sign),
    /// `<token>` for every plan or `<token> <plan>,<plan>…` for only those.
    pub hook_bearer_token: Option<baton_proto::secret::Secret>,
    /// Tokens the admin API accepts. The default, tokens with none in it,
    /// refuses to start: an admin API is never open by accident.
    pub auth: crate::auth::Auth,
    /// TLS for the admin API (mTLS with a client CA); None = plaintext.
    pub tls: Option<crate::auth::TlsOptions>,
    /// PEM PKCS#8 ed25519 key that signs each ended run's evidence; without
    /// one, no evidence is stored.
    pub evidence_key: Option<std::path::PathBuf>,
    /// How often the work queues are swept for messages a consumer gave up
    /// on whose max-deliveries advisory no coordinator heard (default 30 s;
    /// zero: never). A sweep also runs at start.
    pub deadletter_sweep: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nats_url: baton_proto::bus::DEFAULT_NATS_URL.into(),
            nats_auth: Default::default(),
            grpc_addr: ([127, 0, 0, 1], 7233).into(),
            topology: TopologyOptions::default(),
            id: default_id(),
            lease_ttl: Duration::from_secs(5),
            http_addr: None,
            hook_secret: None,
            hook_bearer_token: None,
            auth: crate::auth::Auth::default(),
            tls: None,
            evidence_key: None,
            deadletter_sweep: crate::deadletter::DEFAULT_SWEEP,
        }
    }
}

/// How long the coordinator's parts may take to stop: the engine's hand-over
/// (snapshots, then leases) included. Less than `baton coordinator`'s 10 s,
/// so that a part that hangs is named here.
pub const STOP_GRACE: Duration = Duration::from_secs(8);

/// `<host>-<pid>-<random>`: unique, so that two coordinators never share leases by accident.
pub fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "coordinator".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

pub struct Coordinator {
    client: async_nats::Client,
    engine: Engine,
    admin: AdminService,
    submitter: Submitter,
    listener: tokio::net::TcpListener,
    hooks: Option<(tokio::net::TcpListener, crate::hooks::Hooks)>,
    timers: TaskTracker,
    auth: crate::auth::Auth,
    tls: Option<tonic::transport::ServerTlsConfig>,
    deadletter_sweep: Duration,
}

/// Cheap to clone; tells where the coordinator listens.
#[derive(Clone, Debug)]
pub struct Handle {
    pub grpc_addr: SocketAddr,
    /// Where webhook triggers are served, when they are.
    pub http_addr: Option<SocketAddr>,
    /// Events the fold dropped as not bound to their subject or claim.
    pub refusals: crate::engine::refusals::Refusals,
}

impl Handle {
    /// How many events this coordinator refused to fold since it started.
    pub fn rejected_events(&self) -> u64 {
        self.refusals.total()
    }
}

impl Options {
    pub async fn build(self) -> Result<(Coordinator, Handle), Error> {
        if let crate::auth::Auth::Tokens(t) = &self.auth {
            if t.is_empty() {
                return Err(Error::NoTokens);
            }
        }
        // Checked here, so that a bad certificate fails the start.
        let tls = self.tls.as_ref().map(|t| t.server_config());
        if let Some(t) = &tls {
            tonic::transport::Server::builder()
                .tls_config(t.clone())
                .map_err(Error::Tls)?;
        }
        use baton_proto::bus::{self, BusError};
        let bus::Bus { client, js, topo } = bus::connect_and_ensure(bus::BusOptions {
            url: &self.nats_url,
            name: "baton-coordinator",
            auth: &self.nats_auth,
            topology: &self.topology,
        })
        .await
        .map_err(|e| match e {
            BusError::Connect(e) => Error::NatsUnreachable(e.to_string()),
            // The coordinator creates the topology: its failure is the bus's.
            BusError::Topology(e) => Error::Bus(e),
        })?;
        let store = RunStore::new(topo.runs.clone(), topo.events.clone());
        if self.lease_ttl < Duration::from_millis(300) {
            return Err(Error::Config(format!(
                "lease ttl {:?} is too short — renewals every ttl/3 need at least 300ms",
                self.lease_ttl
            )));
        }
        let leases =
            crate::lease::Leases::new(topo.leases.clone(), self.id.clone(), self.lease_ttl);
        let submitter = Submitter {
            js: js.clone(),
            plans: topo.plans.clone(),
            leases: leases.clone(),
            roles: crate::roles::RoleRegistry::new(topo.roles.clone()),
        };
        let evidence = match &self.evidence_key {
            Some(path) => Some(crate::evidence::Sealer {
                js: js.clone(),
                topo: topo.clone(),
                key: std::sync::Arc::new(crate::evidence::keys::load_signing_key(path)?),
            }),
            None => {
                tracing::warn!(
                    "no --evidence-key: evidence of ended runs is not signed, and none is stored"
                );
                None
            }
        };
        let timers = TaskTracker::new();
        let admin = AdminService {
            submitter: submitter.clone(),
            store: store.clone(),
            events: topo.events.clone(),
            workers: crate::workers::WorkerDirectory::new(topo.workers.clone()),
            evidence: topo.evidence.clone(),
        };
        let listener = tokio::net::TcpListener::bind(self.grpc_addr)
            .await
            .map_err(|source| Error::Listen {
                what: "gRPC",
                addr: self.grpc_addr.to_string(),
                source,
            })?;
        let grpc_addr = listener.local_addr().map_err(|source| Error::Listen {
            what: "gRPC",
            addr: self.grpc_addr.to_string(),
            source,
        })?;
        // Bound here, so that a busy port fails the start, not the first request.
        let (hooks, http_addr) = match self.http_addr {
            None => (None, None),
            Some(addr) => {
                let listen = |source| Error::Listen {
                    what: "webhooks (HTTP)",
                    addr: addr.to_string(),
                    source,
                };
                let l = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
                let bound = l.local_addr().map_err(listen)?;
                let hooks = crate::hooks::Hooks::new(
                    submitter.clone(),
                    self.hook_secret.clone(),
                    self.hook_bearer_token.as_ref(),
                    topo.hook_nonces.clone(),
                )?;
                (Some((l, hooks)), Some(bound))
            }
        };
        let refusals = crate::engine::refusals::Refusals::default();
        let engine = Engine {
            js,
            topo,
            store,
            timers: timers.clone(),
            leases,
            evidence,
            refusals: refusals.clone(),
        };
        Ok((
            Coordinator {
                client,
                engine,
                admin,
                submitter,
                listener,
                hooks,
                timers,
                auth: self.auth,
                tls,
                deadletter_sweep: self.deadletter_sweep,
            },
            Handle {
                grpc_addr,
                http_addr,
                refusals,
            },
        ))
    }
}

impl Coordinator {
    /// Serve until `cancel`: the fold loop, the gRPC server, the triggers and the webhooks.
    ///
    /// The parts run under one [`Supervisor`]: when one of them ends (the
    /// engine fails to recover, a listener's subscription closes), the others
    /// are stopped and `run` returns that part's error, so that the process
    /// exits and is restarted instead of serving half.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), Error> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(baton_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| Error::Bus(e.to_string().into()))?;
        // Without TCP_NODELAY, small replies wait out Nagle and a delayed ACK: 40 ms each.
        let incoming =
            tonic::transport::server::TcpIncoming::from(self.listener).with_nodelay(Some(true));
        // The engine reads the events before anything can submit a run.
        let feed = self.engine.subscribe().await?;
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = self.tls {
            server = server.tls_config(tls).map_err(Error::Tls)?;
        }
        // One rule for all of them: the first to end stops the rest, and its
        // error is logged then and returned (see `baton_proto::supervise`).
        let mut parts = Supervisor::new("coordinator", &cancel).with_grace(STOP_GRACE);
        let stop = parts.token();
        let grpc = server
            .layer(crate::auth::AuthLayer::new(&self.auth))
            .add_service(reflection)
            .add_service(baton_proto::v1::admin_server::AdminServer::new(self.admin))
            .serve_with_incoming_shutdown(incoming, stop.child_token().cancelled_owned());
        parts.spawn(
            "gRPC server",
            async move { grpc.await.map_err(Error::Grpc) },
        );
        parts.spawn(
            "NATS triggers",
            crate::trigger::run(self.client.clone(), self.submitter, stop.child_token()),
        );
        let dead_letters = crate::deadletter::DeadLetters {
            js: self.engine.js.clone(),
            tasks: self.engine.topo.tasks.clone(),
            gates: self.engine.topo.gates.clone(),
            events: self.engine.topo.events.clone(),
        };
        parts.spawn(
            "dead-letter listener",
            crate::deadletter::run(
                self.client.clone(),
                dead_letters.clone(),
                stop.child_token(),
            ),
        );
        // Advisories nobody heard (every coordinator down) are found here.
        parts.spawn(
            "dead-letter sweep",
            crate::deadletter::sweep(dead_letters, self.deadletter_sweep, stop.child_token()),
        );
        parts.spawn(
            "NATS approvals",
            crate::approvals::nats::run(
                self.client.clone(),
                self.engine.js.clone(),
                self.engine.store.clone(),
                stop.child_token(),
            ),
        );
        if let Some((l, h)) = self.hooks {
            parts.spawn(
                "webhook server",
                crate::hooks::serve(l, h, stop.child_token()),
            );
        }
        // Revocations in the tokens file apply while serving, not at the next restart.
        if crate::auth::reload::follows_file(&self.auth) {
            let (auth, t) = (self.auth.clone(), stop.child_token());
            parts.spawn("tokens file", async move {
                crate::auth::reload::watch(auth, t).await;
                Ok(())
            });
        }
        parts.spawn("engine", self.engine.run(feed, stop.child_token()));
        let r = parts.run().await;
        self.timers.close();
        // Timers still sleeping are dropped: their events are re-derived from
        // state by whoever folds the run next.
        let _ = tokio::time::timeout(Duration::from_millis(100), self.timers.wait()).await;
        let _ = self.client.flush().await;
        r
    }
}
