//! A whole Baton in one process: the coordinator, the gate evaluators and
//! any number of workers, on a NATS server that runs elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use baton_coordinator::auth::{token, Auth, Role, TokenStore};
use baton_proto::secret::Secret;
use baton_proto::supervise::Supervisor;
use baton_proto::v1;
use baton_worker::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use baton_proto::client::{Admin, ClientTls};

/// How much longer than the workers' grace the parts may take to stop.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// One worker to run in the process.
pub struct WorkerSpec {
    pub options: baton_worker::Options,
    pub runtime: Runtime,
}

/// The running parts. Cancelling `cancel` stops them; `parts` end when they have.
pub struct LocalBaton {
    pub grpc_addr: SocketAddr,
    /// Where webhook triggers are served, when the coordinator options ask for it.
    pub http_addr: Option<SocketAddr>,
    pub cancel: CancellationToken,
    /// One task: the coordinator, the gates and the workers under one
    /// [`Supervisor`] (the rule every component follows): when any of them
    /// ends by itself, the others are stopped and this ends with its error.
    pub parts: Vec<JoinHandle<Result<(), String>>>,
    /// The admin token [`LocalBaton::admin`] sends: the one made at start
    /// when the coordinator options carried no tokens; None with auth off
    /// or with tokens the caller chose.
    pub token: Option<Secret>,
}

/// A fresh admin token named `name`, and a store that knows only it.
pub fn admin_token(name: &str) -> (Secret, Arc<TokenStore>) {
    let t = token::generate();
    let line = token::file_line(&t, name, Role::Admin);
    let store = TokenStore::parse("generated", &line).expect("a generated line parses");
    (t, Arc::new(store))
}

impl LocalBaton {
    /// Build everything first (so a bad address or an unreachable NATS fails
    /// here, clearly), then start it. Each worker's `nats_url` is set to `nats_url`.
    pub async fn start(
        nats_url: &str,
        grpc_addr: SocketAddr,
        workers: Vec<WorkerSpec>,
    ) -> Result<LocalBaton, String> {
        let coordinator = baton_coordinator::Options {
            grpc_addr,
            ..Default::default()
        };
        // Boxed: the builds' futures are large, and tests await this on a 2 MiB stack.
        Box::pin(Self::start_with(nats_url, coordinator, workers)).await
    }

    /// Like [`LocalBaton::start`], with the coordinator's options given
    /// (their `nats_url` is replaced by `nats_url`).
    pub async fn start_with(
        nats_url: &str,
        coordinator: baton_coordinator::Options,
        workers: Vec<WorkerSpec>,
    ) -> Result<LocalBaton, String> {
        // Options with no tokens would refuse to start: a whole Baton in one
        // process makes its own admin token instead, which `admin()` uses.
        let mut coordinator = coordinator;
        let token = match &coordinator.auth {
            Auth::Tokens(s) if s.is_empty() => {
                let (t, store) = admin_token("local-admin");
                coordinator.auth = Auth::Tokens(store);
                Some(t)
            }
            _ => None,
        };
        // One process, one identity: the gates connect as the coordinator does.
        let gates_auth = coordinator.nats_auth.clone();
        // The builds are boxed: their futures are large, and a caller on a
        // test thread (2 MiB of stack) would overflow in debug builds.
        let (coord, handle) = Box::pin(
            baton_coordinator::Options {
                nats_url: nats_url.to_string(),
                ..coordinator
            }
            .build(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let gates = Box::pin(
            baton_gates::Options {
                nats_url: nats_url.to_string(),
                nats_auth: gates_auth,
                ..Default::default()
            }
            .build(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut built = Vec::new();
        let mut grace = Duration::ZERO;
        for w in workers {
            let opts = baton_worker::Options {
                nats_url: nats_url.to_string(),
                ..w.options
            };
            grace = grace.max(opts.grace);
            let id = opts.worker_id.clone();
            built.push((
                id,
                Box::pin(opts.build(w.runtime))
                    .await
                    .map_err(|e| e.to_string())?,
            ));
        }
        let cancel = CancellationToken::new();
        // Past the workers' grace, as `baton worker` allows.
        let mut supervisor =
            Supervisor::new("local baton", &cancel).with_grace(grace + STOP_MARGIN);
        let t = supervisor.token();
        supervisor.spawn("coordinator", async move {
            coord.run(t).await.map_err(|e| e.to_string())
        });
        let t = supervisor.token();
        supervisor.spawn("gates", async move {
            gates.run(t).await.map_err(|e| e.to_string())
        });
        for (id, w) in built {
            let t = supervisor.token();
            supervisor.spawn(format!("worker {id}"), async move {
                w.run(t).await.map_err(|e| e.to_string())
            });
        }
        let parts = vec![tokio::spawn(supervisor.run())];
        Ok(LocalBaton {
            grpc_addr: handle.grpc_addr,
            http_addr: handle.http_addr,
            cancel,
            parts,
            token,
        })
    }

    /// A plaintext client with [`LocalBaton::token`].
    pub async fn admin(&self) -> Result<Admin, baton_proto::client::ClientError> {
        baton_proto::client::connect(
            &format!("http://{}", self.grpc_addr),
            self.token.as_ref(),
            &ClientTls::default(),
        )
        .await
    }
}

impl Drop for LocalBaton {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How long to wait before watching again when the watch could not start
/// or broke (the run not visible yet, a coordinator or NATS restarting).
const REWATCH: Duration = Duration::from_millis(50);
/// After this long without an event the run is read anyway: a watch that
/// stalls without breaking must not outlast the run.
const QUIET: Duration = Duration::from_secs(2);
/// The longest one GetRun may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Wait until the run ends and return it, or say what it was doing when
/// time ran out.
///
/// Follows the run's events (`WatchRun`) until its `finished` event, then
/// reads the run once (`GetRun`): the coordinator writes the run's final
/// state before it announces the end. `WatchRun` replays the run's events
/// from its first, so a run that ended before the call is answered at once
/// (the stream ends right after the replayed `finished`). When the stream
/// ends or breaks without it, or stays quiet for [`QUIET`], the run is read
/// and, still running, watched again.
pub async fn wait_end(admin: &Admin, run: &str, timeout: Duration) -> Result<v1::Run, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut admin = admin.clone();
    let mut last: Option<v1::Run> = None;
    let mut events: Option<tonic::Streaming<v1::RunEvent>> = None;
    // The end was announced but the run did not read as ended yet.
    let mut announced = false;
    loop {
        let next = if announced {
            Next::Pause
        } else {
            match events.as_mut() {
                Some(s) => next_event(s, deadline).await,
                None => {
                    events = watch(&mut admin, run, deadline).await;
                    if events.is_some() {
                        continue;
                    }
                    Next::Pause
                }
            }
        };
        match next {
            Next::Event { finished: false } if tokio::time::Instant::now() < deadline => continue,
            // Events kept coming up to the deadline: read the run a last time.
            Next::Event { finished: false } => {}
            Next::Event { finished: true } => {
                announced = true;
                events = None;
            }
            Next::Quiet => {}
            Next::Ended | Next::Pause => {
                events = None;
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + REWATCH)).await
            }
        }
        if let Some(r) = read(&mut admin, run).await {
            if r.run_status() != v1::RunStatus::Running {
                return Ok(r);
            }
            last = Some(r);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "run {run} still running after {timeout:?}: {last:#?}"
            ));
        }
    }
}

/// What the watch gave.
enum Next {
    /// An event; `finished` for the run's end.
    Event { finished: bool },
    /// The stream ended or broke without the run's end.
    Ended,
    /// Nothing for [`QUIET`], or the deadline came.
    Quiet,
    /// No watch to wait on: wait [`REWATCH`] (or to the deadline).
    Pause,
}

/// Start watching the run; None if the coordinator would not (yet), or the deadline came.
async fn watch(
    admin: &mut Admin,
    run: &str,
    deadline: tokio::time::Instant,
) -> Option<tonic::Streaming<v1::RunEvent>> {
    let req = v1::WatchRunRequest { run_id: run.into() };
    match tokio::time::timeout_at(deadline, admin.watch_run(req)).await {
        Ok(Ok(s)) => Some(s.into_inner()),
        _ => None,
    }
}

async fn next_event(
    events: &mut tonic::Streaming<v1::RunEvent>,
    deadline: tokio::time::Instant,
) -> Next {
    let until = deadline.min(tokio::time::Instant::now() + QUIET);
    match tokio::time::timeout_at(until, events.message()).await {
        Ok(Ok(Some(ev))) => Next::Event {
            finished: matches!(
                ev.event.and_then(|e| e.body),
                Some(v1::event::Body::RunFinished(_))
            ),
        },
        Ok(Ok(None) | Err(_)) => Next::Ended,
        Err(_) => Next::Quiet,
    }
}

/// The run now, or None if it cannot be read.
async fn read(admin: &mut Admin, run: &str) -> Option<v1::Run> {
    let req = v1::GetRunRequest { run_id: run.into() };
    match tokio::time::timeout(READ_TIMEOUT, admin.get_run(req)).await {
        Ok(Ok(r)) => Some(r.into_inner()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use baton_test_support::NatsServer;
    use baton_worker::runtime::NoopRuntime;

    use super::*;

    /// One task behind an approval gate: the run waits until approved.
    const GATED: &str = "name: gated\nroles:\n  n0: { image: none }\nphases:\n  - id: p\n    tasks:\n      - id: t\n        role: n0\n        run: [\"noop\"]\n    gates: [ { approval: { quorum: 1 } } ]\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_end_follows_the_watch_times_out_with_the_last_state_and_answers_an_ended_run_at_once(
    ) {
        let nats = NatsServer::start();
        let local = LocalBaton::start(
            &nats.url(),
            "127.0.0.1:0".parse().unwrap(),
            vec![WorkerSpec {
                options: baton_worker::Options {
                    roles: vec!["n0".into()],
                    ..Default::default()
                },
                runtime: NoopRuntime::new().into(),
            }],
        )
        .await
        .unwrap();
        let admin = local.admin().await.unwrap();
        let run = admin
            .clone()
            .submit_run(v1::SubmitRunRequest {
                plan_yaml: GATED.into(),
                plan_file: "gated.yaml".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .run_id;

        // Waiting for the approval: time runs out, and the run is described.
        let e = wait_end(&admin, &run, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!("run {run} still running after 300ms: Some(")),
            "{e}"
        );

        // Approved, it ends; the end is seen on the watch.
        admin
            .clone()
            .approve(v1::DecisionRequest {
                run_id: run.clone(),
                reason: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let r = wait_end(&admin, &run, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");

        // Already ended: the replay ends with `finished`, no quiet spell is waited out.
        let asked = Instant::now();
        let again = wait_end(&admin, &run, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(again.run_status(), v1::RunStatus::Succeeded);
        assert!(asked.elapsed() < QUIET, "took {:?}", asked.elapsed());

        // A run that does not exist never ends: the timeout, with nothing known.
        let e = wait_end(&admin, "r-nonexistent", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e, "run r-nonexistent still running after 200ms: None");
    }
}
