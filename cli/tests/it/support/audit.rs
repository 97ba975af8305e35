//! What the audit tests share: a Baton whose AUDIT stream an operator can
//! edit, reading chains, running `baton audit verify`, rewriting a chain.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, stream};
use baton_coordinator::audit::Record;
use baton_proto::{subjects, v1};
use baton_test_support::NatsServer;
use futures::StreamExt;

use super::{dev_baton, eventually};

/// An approval, then a failing gate whose phase rolls back.
pub const PLAN: &str = include_str!("../fixtures/audited.yaml");

pub struct Baton {
    pub nats: NatsServer,
    pub js: jetstream::Context,
    pub admin: baton_proto::client::Admin,
    _local: baton::local::LocalBaton,
}

/// NATS, then (when `open_audit`) an AUDIT stream an operator can edit,
/// then a coordinator, the gates and one Docker worker.
pub async fn start(open_audit: bool) -> Baton {
    let nats = NatsServer::start();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    if open_audit {
        js.create_stream(stream::Config {
            name: subjects::AUDIT_STREAM.into(),
            subjects: vec![subjects::AUDIT_ALL.into()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let (local, admin) = dev_baton(
        &nats,
        baton_worker::Options {
            concurrency: 2,
            ..Default::default()
        },
    )
    .await;
    Baton {
        nats,
        js,
        admin,
        _local: local,
    }
}

pub async fn submit(b: &Baton, by: &str) -> String {
    b.admin
        .clone()
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: PLAN.into(),
            plan_file: "audited.yaml".into(),
            submitted_by: by.into(),
            ..Default::default()
        })
        .await
        .expect("run accepted")
        .into_inner()
        .run_id
}

pub async fn run_view(b: &Baton, run: &str) -> v1::Run {
    let req = v1::GetRunRequest { run_id: run.into() };
    b.admin.clone().get_run(req).await.unwrap().into_inner()
}

/// Every message on `filter` in `stream`: (sequence, bytes).
pub async fn read(b: &Baton, stream: &str, filter: String) -> Vec<(u64, Vec<u8>)> {
    let s = b.js.get_stream(stream).await.unwrap();
    let c = s
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut pending = c.cached_info().num_pending;
    let mut msgs = c.messages().await.unwrap();
    let mut out = Vec::new();
    while pending > 0 {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .expect("stream delivers")
            .unwrap()
            .unwrap();
        out.push((m.info().unwrap().stream_sequence, m.payload.to_vec()));
        pending -= 1;
    }
    out
}

pub async fn records(b: &Baton, run: &str) -> Vec<(u64, Record)> {
    read(b, subjects::AUDIT_STREAM, subjects::audit(run))
        .await
        .into_iter()
        .map(|(q, bytes)| (q, serde_json::from_slice(&bytes).expect("a record")))
        .collect()
}

/// Records until the chain holds the run's `finished` record.
pub async fn finished_chain(b: &Baton, run: &str) -> Vec<(u64, Record)> {
    eventually("the finished record", Duration::from_secs(20), async || {
        let rs = records(b, run).await;
        rs.iter().any(|(_, r)| r.kind == "finished").then_some(rs)
    })
    .await
}

/// `baton audit verify`: its exit code and output.
pub fn verify(b: &Baton, run: Option<&str>) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.args(["audit", "verify", "--nats-url", &b.nats.url()]);
    if let Some(r) = run {
        cmd.args(["--run", r]);
    }
    let out = cmd.output().expect("baton runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Put a run's chain back to `chain`, as an operator with purge rights can.
pub async fn rewrite(b: &Baton, run: &str, chain: &[Vec<u8>]) {
    let s = b.js.get_stream(subjects::AUDIT_STREAM).await.unwrap();
    s.purge().filter(subjects::audit(run)).await.unwrap();
    for bytes in chain {
        b.js.publish(subjects::audit(run), bytes.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

pub fn kinds(rs: &[(u64, Record)]) -> Vec<&str> {
    rs.iter().map(|(_, r)| r.kind.as_str()).collect()
}

/// A record anyone could write: right shape, right links, valid hash.
pub fn forge(after: &Record) -> Record {
    let e = baton_coordinator::audit::Entry {
        event_seq: after.event_seq + 1,
        time_ms: after.time_ms + 1,
        kind: "approved",
        actor: "mallory".into(),
        reason: "looks fine".into(),
        subject: String::new(),
        detail: Default::default(),
    };
    Record::seal(&after.run, after.n + 1, &after.hash, &e)
}
