//! NATS credentials and least-privilege subjects, against a real
//! nats-server running `deploy/nats/auth/baton-auth.conf` as shipped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use baton_proto::kinds::EventKind;
use baton_proto::nats_auth::{Error as AuthError, NatsAuth, Secret};
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use baton_test_support::{assert_eventually, workspace_root, NatsServer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::support::submit_to;

const T: Duration = Duration::from_secs(60);

/// Two phases, a gate between them: the coordinator dispatches, the worker
/// runs and reports, the gate evaluator judges.
const GATED: &str = include_str!("fixtures/gated-as-users.yaml");

const USERS: &[(&str, &str)] = &[
    ("COORDINATOR", "coordinator"),
    ("GATES", "gates"),
    ("WORKER", "worker"),
    ("WORKER_BUILD", "worker-build"),
    ("ALICE", "approver-alice"),
    ("TRIGGER", "trigger"),
    ("VIEWER", "viewer"),
];

fn password_of(user: &str) -> String {
    format!("pw-{user}-0123456789")
}

/// The deploy config as shipped, with each password variable defined
/// ahead of it (nats-server would otherwise take them from its environment).
fn deploy_server() -> NatsServer {
    let conf = std::fs::read_to_string(workspace_root().join("deploy/nats/auth/baton-auth.conf"))
        .expect("read deploy/nats/auth/baton-auth.conf");
    let vars: String = USERS
        .iter()
        .map(|(var, user)| format!("BATON_NATS_{var}_PASSWORD: \"{}\"\n", password_of(user)))
        .collect();
    NatsServer::start_with_config(&format!("{vars}{conf}"))
}

fn as_user(user: &str) -> NatsAuth {
    NatsAuth {
        user: Some(user.into()),
        password: Some(Secret::new(password_of(user))),
        ..Default::default()
    }
}

/// A client whose server errors (permission violations) are collected.
async fn client_with_errors(
    url: &str,
    auth: &NatsAuth,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = errors.clone();
    let user = auth.user.clone().unwrap_or_default();
    let client = auth
        .apply(async_nats::ConnectOptions::new())
        .unwrap()
        // Each user may read its own inbox only.
        .custom_inbox_prefix(bus::inbox_prefix(&user))
        .event_callback(move |ev| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = ev {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("connect with the worker's credentials");
    (client, errors)
}

struct Parts {
    admin: baton_proto::client::Admin,
    handle: baton_coordinator::Handle,
    cancel: CancellationToken,
}

impl Drop for Parts {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The coordinator, the gates and a worker, each as its own user. The
/// coordinator goes first: only it may create the streams and buckets.
async fn start_parts(url: &str) -> Parts {
    let (token, tokens) = baton::local::admin_token("tester");
    let (coord, handle) = Box::pin(
        baton_coordinator::Options {
            nats_url: url.into(),
            nats_auth: as_user("coordinator"),
            auth: baton_coordinator::auth::Auth::Tokens(tokens),
            grpc_addr: ([127, 0, 0, 1], 0).into(),
            ..Default::default()
        }
        .build(),
    )
    .await
    .expect("the coordinator starts as `coordinator`");
    let gates = Box::pin(
        baton_gates::Options {
            nats_url: url.into(),
            nats_auth: as_user("gates"),
            ..Default::default()
        }
        .build(),
    )
    .await
    .expect("the gates start as `gates`");
    let worker = Box::pin(
        baton_worker::Options {
            nats_url: url.into(),
            nats_auth: as_user("worker"),
            roles: vec!["dev".into()],
            ..Default::default()
        }
        .build(baton_worker::runtime::ProcessRuntime::new().into()),
    )
    .await
    .expect("the worker starts as `worker`");
    let cancel = CancellationToken::new();
    let t = cancel.child_token();
    tokio::spawn(async move { coord.run(t).await });
    let t = cancel.child_token();
    tokio::spawn(async move { gates.run(t).await });
    let t = cancel.child_token();
    tokio::spawn(async move { worker.run(t).await });
    let admin = crate::support::client_at(handle.grpc_addr, &token).await;
    Parts {
        admin,
        handle,
        cancel,
    }
}

/// Every message on `filter` in `stream`, in order: (subject, payload).
async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    filter: String,
) -> Vec<(String, Vec<u8>)> {
    let stream = js.get_stream(stream).await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = consumer.cached_info().num_pending;
    let mut msgs = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < pending {
        let m = tokio::time::timeout(T, msgs.next())
            .await
            .expect("messages within the deadline")
            .unwrap()
            .unwrap();
        out.push((m.subject.to_string(), m.payload.to_vec()));
    }
    out
}

/// Every event of a run, read back from the events stream.
async fn run_events(js: &jetstream::Context, run: &str) -> Vec<(String, v1::Event)> {
    read_stream(js, subjects::EVENTS_STREAM, subjects::run_events(run))
        .await
        .into_iter()
        .map(|(subject, payload)| (subject, codec::decode(&payload).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_as_its_own_user_runs_a_plan_and_a_worker_cannot_decide() {
    let nats = deploy_server();
    let parts = start_parts(&nats.url()).await;
    let run = submit_to(&parts.admin, GATED, "gated.yaml").await;
    let ended = baton::local::wait_end(&parts.admin, &run, T).await.unwrap();
    assert_eq!(ended.run_status(), v1::RunStatus::Succeeded, "{ended:#?}");

    // Read as the coordinator (the only user allowed to read streams whole).
    let admin_client = bus::connect_with(&nats.url(), "test-reader", &as_user("coordinator"))
        .await
        .unwrap();
    let js = jetstream::new(admin_client);
    let before = run_events(&js, &run).await;
    assert!(
        before
            .iter()
            .any(|(_, e)| matches!(e.body, Some(Body::GateEvaluated(_)))),
        "the gates published their verdict as `gates`: {before:#?}"
    );

    // The permissions were enough: no component was refused anything.
    let log = nats.log();
    assert!(
        log.contains("Server is ready"),
        "the server log is read: {log}"
    );
    assert!(
        !log.contains("Violation"),
        "a component was refused something: {}",
        log.lines()
            .filter(|l| l.contains("Violation"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Now forge, with the worker's credentials.
    let (worker, errors) = client_with_errors(&nats.url(), &as_user("worker")).await;
    let wjs = jetstream::new(worker.clone());
    let forged_decision = Body::Decision(v1::Decision {
        approve: true,
        by: "forged-by-worker".into(),
        reason: "forged".into(),
        task_id: String::new(),
    });
    let forged_gate = Body::GateEvaluated(v1::GateEvaluated {
        phase_id: "build".into(),
        reasons: vec!["forged-by-worker".into()],
        ..Default::default()
    });
    for (body, subject) in [
        (forged_decision, EventKind::Decision.subject(&run)),
        (forged_gate, EventKind::GateEvaluated.subject(&run)),
    ] {
        let ev = codec::event_now(&run, body);
        let r = bus::publish(&wjs, subject.clone(), "forged", &ev, "").await;
        // The server drops the message: no stream ever acks it.
        if let Ok(ack) = r {
            assert!(ack.await.is_err(), "{subject} was acknowledged");
        }
    }
    worker
        .publish(subjects::approval("alice", &run), "approve".into())
        .await
        .unwrap();
    // The same connection may still do a worker's job: the refusals above
    // are permissions, not a broken connection.
    worker
        .publish(subjects::log(&run, "make"), "a log line".into())
        .await
        .unwrap();
    worker.flush().await.unwrap();
    for subject in [
        EventKind::Decision.subject(&run),
        EventKind::GateEvaluated.subject(&run),
        subjects::approval("alice", &run),
    ] {
        let want = format!("Permissions Violation for Publish to \"{subject}\"");
        assert_eventually!(
            T,
            errors.lock().unwrap().iter().any(|e| e.contains(&want)),
            "no `{want}` in {:?}",
            errors.lock().unwrap()
        );
    }
    assert!(
        !errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("baton.log.")),
        "a worker may publish logs: {:?}",
        errors.lock().unwrap()
    );
    // The server saw them as the worker's: refused at the server, not dropped by the client.
    let log = nats.log();
    for subject in [
        EventKind::Decision.subject(&run),
        EventKind::GateEvaluated.subject(&run),
        subjects::approval("alice", &run),
    ] {
        let want = format!("\"$G/user:worker\" - Publish Violation - Subject \"{subject}\"");
        assert!(log.contains(&want), "no `{want}` in the server log: {log}");
    }
    let after = run_events(&js, &run).await;
    assert_eq!(
        after.len(),
        before.len(),
        "no forged event landed: {after:#?}"
    );
    let shown = format!("{after:?}");
    assert!(!shown.contains("forged"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_clearly_and_never_shown() {
    let nats = deploy_server();
    let auth = NatsAuth {
        user: Some("worker".into()),
        password: Some(Secret::new("not-the-password-42")),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = bus::connect_with(&nats.url(), "test", &auth)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Refused { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("user `worker`"), "{msg}");
    assert!(msg.contains("check the user and password"), "{msg}");
    assert!(!msg.contains("not-the-password-42"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "refused at once, not after the 10 s connect deadline: {:?}",
        started.elapsed()
    );
    // No credentials at all: refused the same way.
    let err = bus::connect_with(&nats.url(), "test", &NatsAuth::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Refused { .. }), "{err:?}");
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a server certificate for 127.0.0.1 and localhost.
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server-key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_trusted_ca_and_an_nkey_user_connect() {
    let pki = Pki::new();
    let user = nkeys::KeyPair::new_user();
    let conf = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  users = [ {{ nkey: {} }} ]\n}}\n",
        pki.path("server.pem").display(),
        pki.path("server-key.pem").display(),
        user.public_key()
    );
    let nats = NatsServer::start_with_config(&conf);
    let seed = write(pki.dir.path(), "worker.nk", &user.seed().unwrap());
    let trusted = NatsAuth {
        nkey_file: Some(seed.clone()),
        tls_ca: Some(pki.path("ca.pem")),
        ..Default::default()
    };
    let client = bus::connect_with(&nats.url(), "tls-test", &trusted)
        .await
        .expect("TLS with the CA, as the nkey user");
    // The connection is usable: a round trip through the server.
    let mut sub = client.subscribe("tls.ping").await.unwrap();
    client.publish("tls.ping", "pong".into()).await.unwrap();
    let m = tokio::time::timeout(T, sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"pong");

    // Without the CA, the server's certificate is not trusted.
    let untrusted = NatsAuth {
        nkey_file: Some(seed),
        require_tls: true,
        ..Default::default()
    };
    let err = bus::connect_with(&nats.url(), "tls-test", &untrusted)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--nats-tls-ca"), "{err}");

    // Another user's seed is refused.
    let other = write(
        pki.dir.path(),
        "other.nk",
        &nkeys::KeyPair::new_user().seed().unwrap(),
    );
    let err = bus::connect_with(
        &nats.url(),
        "tls-test",
        &NatsAuth {
            nkey_file: Some(other),
            tls_ca: Some(pki.path("ca.pem")),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AuthError::Refused { .. }), "{err:?}");
}

/// A four-eyes gate: two distinct people, never the submitter.
const FOUR_EYES: &str = include_str!("fixtures/four-eyes-as-users.yaml");

async fn submit(parts: &Parts, yaml: &str, file: &str) -> String {
    submit_to(&parts.admin, yaml, file).await
}

async fn get_run(parts: &Parts, run: &str) -> v1::Run {
    parts
        .admin
        .clone()
        .get_run(v1::GetRunRequest { run_id: run.into() })
        .await
        .unwrap()
        .into_inner()
}

/// The attack of the trust-boundary issue, exactly: the `worker` user
/// publishes approvals by alice, bob and carol under `task_finished`, a
/// subject its permissions allow. None of them may count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_worker_cannot_forge_approvals_under_its_own_subjects() {
    let nats = deploy_server();
    let parts = start_parts(&nats.url()).await;
    let run = submit(&parts, FOUR_EYES, "four-eyes.yaml").await;
    assert_eventually!(
        T,
        get_run(&parts, &run).await.phases[0].phase_status() == v1::PhaseStatus::Gating,
        "the build phase waits for its approvals: {:#?}",
        get_run(&parts, &run).await
    );

    let (worker, _errors) = client_with_errors(&nats.url(), &as_user("worker")).await;
    let wjs = jetstream::new(worker.clone());
    for who in ["alice", "bob", "carol"] {
        let ev = codec::event_now(
            &run,
            Body::Decision(v1::Decision {
                approve: true,
                by: who.into(),
                reason: "forged".into(),
                task_id: String::new(),
            }),
        );
        let ack = bus::publish(
            &wjs,
            EventKind::TaskFinished.subject(&run),
            &format!("forged-{who}"),
            &ev,
            "",
        )
        .await
        .expect("the subject is a worker's");
        ack.await
            .expect("the stream stores what the worker may publish");
    }
    // The forgeries are on the stream; give the fold ample time to act on them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = get_run(&parts, &run).await;
    assert_eq!(
        now.run_status(),
        v1::RunStatus::Running,
        "forged approvals moved the run: {now:#?}"
    );
    assert_eq!(
        now.phases[0].phase_status(),
        v1::PhaseStatus::Gating,
        "{now:#?}"
    );
    let approval = now.phases[0]
        .gates
        .iter()
        .find(|g| g.kind == "approval")
        .expect("the approval gate was asked");
    assert_ne!(
        approval.verdict, "pass",
        "the approval gate passed on forged approvals: {now:#?}"
    );
    assert_eq!(
        parts.handle.rejected_events(),
        3,
        "each forgery is counted as a dropped event"
    );
    let log = read_audit(&nats, &run).await;
    assert!(
        !log.contains("approved") && !log.contains("forged"),
        "a forged approval reached the audit trail: {log}"
    );
}

/// A worker that did not claim an attempt reports it, under the claiming
/// worker's name: the result must not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_a_result_from_a_worker_that_did_not_claim_the_attempt_is_dropped() {
    let nats = deploy_server();
    let parts = start_parts(&nats.url()).await;
    let plan = r#"
name: slow
roles:
  dev: { image: "unused-by-the-process-runtime" }
phases:
  - id: build
    tasks:
      - id: make
        role: dev
        run: ["sh", "-c", "sleep 3; echo '{\"result\":\"fail\"}'; exit 1"]
"#;
    let run = submit(&parts, plan, "slow.yaml").await;
    assert_eventually!(
        T,
        get_run(&parts, &run).await.tasks[0].task_status() == v1::TaskStatus::Running,
        "the task runs: {:#?}",
        get_run(&parts, &run).await
    );
    // The claim names its worker; anyone who reads the stream knows it.
    let reader = bus::connect_with(&nats.url(), "test-reader", &as_user("coordinator"))
        .await
        .unwrap();
    let claimer = run_events(&jetstream::new(reader), &run)
        .await
        .into_iter()
        .find_map(|(_, e)| match e.body {
            Some(Body::TaskStarted(s)) => Some(s.worker),
            _ => None,
        })
        .expect("the attempt was claimed");

    let (worker, _errors) = client_with_errors(&nats.url(), &as_user("worker")).await;
    let wjs = jetstream::new(worker.clone());
    let forged = Body::TaskFinished(v1::TaskFinished {
        task_id: "make".into(),
        attempt: 1,
        ok: true,
        report_json: r#"{"result":"ok","outputs":{"forged":true}}"#.into(),
        worker: claimer.clone(),
        ..Default::default()
    });
    let ack = bus::publish(
        &wjs,
        EventKind::TaskFinished.subject(&run),
        &format!("forged-finish-{run}"),
        &codec::event_now(&run, forged),
        "",
    )
    .await
    .unwrap();
    ack.await.unwrap();

    let ended = baton::local::wait_end(&parts.admin, &run, T).await.unwrap();
    assert_eq!(
        (ended.run_status(), ended.tasks[0].task_status()),
        (v1::RunStatus::RolledBack, v1::TaskStatus::Failed),
        "the forged success counted instead of the real failure: {ended:#?}"
    );
    assert!(!format!("{ended:?}").contains("forged"), "{ended:#?}");
    assert_eq!(parts.handle.refusals.by_reason()["unclaimed"], 1);
}

/// The run's audit records as text, read as the coordinator.
async fn read_audit(nats: &NatsServer, run: &str) -> String {
    let client = bus::connect_with(&nats.url(), "test-audit", &as_user("coordinator"))
        .await
        .unwrap();
    read_stream(
        &jetstream::new(client),
        subjects::AUDIT_STREAM,
        subjects::audit(run),
    )
    .await
    .into_iter()
    .map(|(_, payload)| String::from_utf8_lossy(&payload).into_owned() + "\n")
    .collect()
}

/// Least privilege, completed: a worker reads no run snapshot, plan, audit
/// record, evidence or submitted event, only claims; a role-limited worker
/// pulls only its roles; no user reads another's inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_workers_read_only_claims_pull_only_their_roles_and_inboxes_are_private() {
    let nats = deploy_server();
    let parts = start_parts(&nats.url()).await;
    let run = submit(&parts, GATED, "gated.yaml").await;
    let ended = baton::local::wait_end(&parts.admin, &run, T).await.unwrap();
    assert_eq!(ended.run_status(), v1::RunStatus::Succeeded, "{ended:#?}");

    let worker = bus::connect_with(&nats.url(), "hostile", &as_user("worker"))
        .await
        .unwrap();
    // A refused request gets no answer: wait 1 s for one, not the default 5.
    let wjs = jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(worker.clone());
    // What only the coordinator reads: each refused (no answer comes back).
    let runs = wjs.get_key_value(subjects::RUNS_BUCKET).await.unwrap();
    assert!(
        runs.get(&run).await.is_err(),
        "a worker read the run's snapshot"
    );
    let plans = wjs.get_key_value(subjects::PLANS_BUCKET).await.unwrap();
    assert!(plans.get("gated").await.is_err(), "a worker read a plan");
    let audit = wjs.get_stream(subjects::AUDIT_STREAM).await.unwrap();
    assert!(
        audit
            .get_last_raw_message_by_subject(&subjects::audit(&run))
            .await
            .is_err(),
        "a worker read the audit trail"
    );
    let events = wjs.get_stream(subjects::EVENTS_STREAM).await.unwrap();
    assert!(
        events
            .get_last_raw_message_by_subject(&EventKind::RunSubmitted.subject(&run))
            .await
            .is_err(),
        "a worker read the submitted plan and inputs"
    );
    assert!(
        events
            .direct_get_last_for_subject(EventKind::RunSubmitted.subject(&run))
            .await
            .is_err(),
        "a worker read the submitted plan with a direct get"
    );
    // A claim it may read back: that is how it learns who holds an attempt.
    let claim = events
        .direct_get_last_for_subject(subjects::task_claim(&run, "dev", "make", 1))
        .await
        .expect("a worker reads a claim");
    assert!(codec::decode_event(&claim.subject, &claim.payload).is_ok());

    // A worker limited to `build` pulls build tasks, and nothing else.
    let builder = bus::connect_with(&nats.url(), "builder", &as_user("worker-build"))
        .await
        .unwrap();
    let tasks = jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(builder)
        .get_stream(subjects::TASKS_STREAM)
        .await
        .unwrap();
    let config = |role: &str| jetstream::consumer::pull::Config {
        durable_name: Some(subjects::role_consumer(role)),
        filter_subject: subjects::role_tasks(role),
        ..Default::default()
    };
    tasks
        .get_or_create_consumer(&subjects::role_consumer("build"), config("build"))
        .await
        .expect("worker-build may pull role build");
    assert!(
        tasks
            .get_or_create_consumer(&subjects::role_consumer("dev"), config("dev"))
            .await
            .is_err(),
        "worker-build reached role dev's queue"
    );

    // Nor claim another role's attempt: the claim subject names the role.
    let (builder, _) = client_with_errors(&nats.url(), &as_user("worker-build")).await;
    builder
        .publish(subjects::task_claim(&run, "dev", "push", 9), "claim".into())
        .await
        .unwrap();
    builder.flush().await.unwrap();

    // Inboxes: the viewer cannot listen to the worker's replies.
    let (viewer, errors) = client_with_errors(&nats.url(), &as_user("viewer")).await;
    let _sub = viewer.subscribe("_INBOX.worker.>").await.unwrap();
    viewer.flush().await.unwrap();
    assert_eventually!(
        T,
        errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Permissions Violation for Subscription to \"_INBOX.worker.>\"")),
        "the viewer subscribed to the worker's inbox: {:?}",
        errors.lock().unwrap()
    );
    let log = nats.log();
    for (user, what) in [
        ("worker", "KV_baton_runs"),
        ("worker", "KV_baton_plans"),
        ("worker", "BATON_AUDIT"),
        ("worker-build", "role-dev"),
        ("worker-build", "task_started.dev.push.9"),
    ] {
        assert!(
            log.lines().any(|l| l.contains(&format!("user:{user}\""))
                && l.contains("Violation")
                && l.contains(what)),
            "no violation by {user} on {what} in the server log"
        );
    }
}
