//! Snapshots against a nats-server whose messages are small (64 KiB): a
//! run too big for one message is written split, and a second coordinator
//! reads it back; a run whose snapshot cannot fit even split is an error in
//! the log, naming the run and the sizes, never a silent skip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_coordinator::auth::Auth;
use baton_proto::client::{self, Admin};
use baton_proto::v1;
use baton_test_support::NatsServer;
use tokio_util::sync::CancellationToken;

/// What this binary logged at WARN and above, one line per event.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Fields of one event, as `name=value`.
struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Log {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut line = Line(e.metadata().level().to_string());
        e.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn log() -> Log {
    static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        tracing::subscriber::set_global_default(log.clone()).expect("the only subscriber");
        log
    })
    .clone()
}

/// A coordinator serving on `nats`; its admin client.
async fn coordinator(nats: &NatsServer, id: &str, cancel: &CancellationToken) -> Admin {
    let (c, handle) = baton_coordinator::Options {
        nats_url: nats.url(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        auth: Auth::Off,
        id: id.into(),
        lease_ttl: Duration::from_secs(2),
        ..Default::default()
    }
    .build()
    .await
    .expect("coordinator builds");
    tokio::spawn(c.run(cancel.clone()));
    let url = format!("http://{}", handle.grpc_addr);
    for _ in 0..100 {
        if let Ok(a) = client::connect(&url, None, &Default::default()).await {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("coordinator {id} does not answer")
}

async fn submit(a: &Admin, yaml: String) -> String {
    a.clone()
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: yaml,
            plan_file: "big.yaml".into(),
            ..Default::default()
        })
        .await
        .expect("run accepted")
        .into_inner()
        .run_id
}

/// A plan of `tasks` tasks (no worker serves them: they stay queued), its
/// description `description` bytes long.
fn plan(tasks: usize, description: usize) -> String {
    let mut y = format!(
        "name: big\ndescription: \"{}\"\nroles:\n  dev: {{ image: \"baton/agent:local\" }}\nphases:\n  - id: only\n    tasks:\n",
        "d".repeat(description)
    );
    for t in 0..tasks {
        y.push_str(&format!(
            "      - id: task{t}\n        role: dev\n        run: [\"true\"]\n"
        ));
    }
    y
}

/// This binary's log, a nats-server whose messages are small (64 KiB), and
/// the token that stops the coordinators started on it.
fn small_messages() -> (Log, NatsServer, CancellationToken) {
    let log = log();
    let nats = NatsServer::start_with_config("max_payload: 65536\n");
    (log, nats, CancellationToken::new())
}

/// The bucket of run snapshots on `nats`.
async fn runs_bucket(nats: &NatsServer) -> async_nats::jetstream::kv::Store {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.get_key_value(baton_proto::subjects::RUNS_BUCKET)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_too_big_for_a_message_is_read_back_by_a_second_coordinator() {
    let (log, nats, cancel) = small_messages();
    let a = coordinator(&nats, "c-a", &cancel).await;
    let b = coordinator(&nats, "c-b", &cancel).await;
    // The plan's YAML and its model: about 2 × 28 KiB, more than the
    // 48 KiB a snapshot may be here.
    let run = submit(&a, plan(3, 28 * 1024)).await;
    let runs = runs_bucket(&nats).await;
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        matches!(runs.get(&run).await, Ok(Some(_))),
        "no snapshot written: {:#?}",
        log.lines()
    );
    let head = runs.get(&run).await.unwrap().unwrap();
    assert!(head.len() < 16 * 1024, "{} bytes", head.len());
    // The peer, which never folded the run, puts it back together.
    let r = b
        .clone()
        .get_run(v1::GetRunRequest {
            run_id: run.clone(),
        })
        .await
        .expect("the peer answers")
        .into_inner();
    assert_eq!(r.plan, "big");
    assert_eq!(r.run_status(), v1::RunStatus::Running);
    assert_eq!(r.tasks.len(), 3, "{r:#?}");
    assert!(
        !log.lines().iter().any(|l| l.contains(&run)),
        "{:#?}",
        log.lines()
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_cannot_fit_is_an_error_naming_the_run_and_its_size() {
    let (log, nats, cancel) = small_messages();
    let a = coordinator(&nats, "c-alone", &cancel).await;
    // 120 tasks: their states alone are more than 48 KiB.
    let run = submit(&a, plan(120, 0)).await;
    let refused = |l: &String| {
        l.starts_with("ERROR")
            && l.contains("snapshot NOT written")
            && l.contains(&run)
            && l.contains("bytes=")
            && l.contains("limit=49152")
            && l.contains("docs/operations.md")
    };
    baton_test_support::assert_eventually!(
        Duration::from_secs(5),
        log.lines().iter().any(refused),
        "no error for the snapshot not written: {:#?}",
        log.lines()
    );
    println!("{}", log.lines().into_iter().find(refused).unwrap());
    let runs = runs_bucket(&nats).await;
    assert!(runs.get(&run).await.unwrap().is_none());
    // The owner still answers from what it folded.
    let r = a
        .clone()
        .get_run(v1::GetRunRequest { run_id: run })
        .await
        .expect("the owner answers")
        .into_inner();
    assert_eq!(r.tasks.len(), 120);
    cancel.cancel();
}
