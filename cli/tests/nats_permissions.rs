//! NATS credentials and least-privilege subjects, against a real
//! nats-server running `deploy/nats/auth/baton-auth.conf` as shipped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use baton_proto::nats_auth::{Error as AuthError, NatsAuth, Secret};
use baton_proto::v1::{self, event::Body};
use baton_proto::{bus, codec, subjects};
use baton_test_support::{assert_eventually, workspace_root, NatsServer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(60);

/// Two phases, a gate between them: the coordinator dispatches, the worker
/// runs and reports, the gate evaluator judges.
const GATED: &str = r#"
name: gated
roles:
  dev: { image: "unused-by-the-process-runtime" }
phases:
  - id: build
    tasks:
      - id: make
        role: dev
        run: ["sh", "-c", "echo '{\"result\":\"ok\",\"outputs\":{\"n\":7}}'"]
    gates:
      - expr: "tasks.make.outputs.n == 7"
  - id: ship
    tasks:
      - id: push
        role: dev
        run: ["sh", "-c", "echo '{\"result\":\"ok\"}'"]
"#;

const USERS: &[(&str, &str)] = &[
    ("COORDINATOR", "coordinator"),
    ("GATES", "gates"),
    ("WORKER", "worker"),
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
    let client = auth
        .apply(async_nats::ConnectOptions::new())
        .unwrap()
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
    admin: baton::admin_client::Admin,
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
    let admin = baton::admin_client::connect(
        &format!("http://{}", handle.grpc_addr),
        Some(&token),
        &Default::default(),
    )
    .await
    .unwrap();
    Parts { admin, cancel }
}

/// Every event of a run, read back from the events stream.
async fn run_events(js: &jetstream::Context, run: &str) -> Vec<(String, v1::Event)> {
    let stream = js.get_stream(subjects::EVENTS_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects::run_events(run),
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
            .expect("events within the deadline")
            .unwrap()
            .unwrap();
        out.push((m.subject.to_string(), codec::decode(&m.payload).unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_as_its_own_user_runs_a_plan_and_a_worker_cannot_decide() {
    let nats = deploy_server();
    let parts = start_parts(&nats.url()).await;
    let run = parts
        .admin
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
    let ended = baton::local::wait_end(&parts.admin, &run, T).await.unwrap();
    assert_eq!(ended.status, "succeeded", "{ended:#?}");

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
        (forged_decision, subjects::event(&run, "decision")),
        (forged_gate, subjects::event(&run, "gate")),
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
        subjects::event(&run, "decision"),
        subjects::event(&run, "gate"),
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
        subjects::event(&run, "decision"),
        subjects::event(&run, "gate"),
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
