//! Governed approvals against a real nats-server, a real coordinator and gate
//! evaluator, and a worker running tasks in Docker: approvals over NATS as
//! two identities reach a quorum; the submitter, an empty reason, a bad body
//! and a run not waiting are refused with a clear reply; an approval that
//! expires halts its run.

use std::time::{Duration, Instant};

use baton_proto::v1::{self, event::Body};
use futures::StreamExt;

use crate::support::*;

const FOUR_EYES: &str = include_str!("fixtures/four-eyes.yaml");

const EXPIRES_FAST: &str = include_str!("fixtures/expires-fast.yaml");

/// A request on `baton.approve.<identity>.<run>`, as a credential of that
/// identity would send it; the coordinator's JSON reply.
async fn approve_over_nats(
    nats: &async_nats::Client,
    identity: &str,
    run: &str,
    body: &str,
) -> serde_json::Value {
    let subject = baton_proto::subjects::approval(identity, run);
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        nats.request(subject, body.to_string().into()),
    )
    .await
    .expect("a coordinator answers within 10 s")
    .expect("request");
    serde_json::from_slice(&reply.payload).expect("reply is JSON")
}

fn error_of(reply: &serde_json::Value) -> &str {
    reply["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error reply, got {reply}"))
}

/// Who the run's submission names: the identity its submitter's credential had.
async fn submitter(c: &Cluster, run: &str) -> String {
    let mut s = watch(&c.admin, run).await;
    match s.next().await.expect("first event").expect("event").event {
        Some(v1::Event {
            body: Some(Body::RunSubmitted(sub)),
            ..
        }) => sub.submitted_by,
        other => panic!("a run starts with its submission, not {other:?}"),
    }
}

/// The approval gate's answer to the round asked after the run's `n`-th
/// decision, read live from the run's events.
async fn approval_answer_after(c: &Cluster, run: &str, n: usize) -> v1::GateEvaluated {
    let mut s = watch(&c.admin, run).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut decisions = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, s.next())
            .await
            .unwrap_or_else(|_| panic!("no approval answer after decision {n} within 20 s"))
            .expect("the run goes on")
            .expect("event")
            .event
            .expect("event body");
        match ev.body {
            Some(Body::Decision(_)) => decisions += 1,
            Some(Body::GateEvaluated(g)) if g.kind == "approval" && decisions == n => return g,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_over_nats_quorum_self_approval_reasons_and_expiry() {
    let c = Cluster::start_serving(Rt::Docker, Default::default(), 4, &["ops"]).await;
    let nats = async_nats::connect(c.nats.url()).await.expect("connect");

    let run = c.submit(FOUR_EYES, &[]).await;
    let fast = c.submit(EXPIRES_FAST, &[]).await;
    c.wait_waiting(&run, Duration::from_secs(60)).await;
    c.wait_waiting(&fast, Duration::from_secs(60)).await;

    // The submitter's own credential may not approve: the gate forbids it.
    let me = submitter(&c, &run).await;
    assert!(!me.is_empty());
    let r = approve_over_nats(&nats, &me, &run, r#"{"approve":true,"reason":"mine"}"#).await;
    assert!(error_of(&r).contains("forbids self-approval"), "{r}");
    // A decision needs a reason; a body must be what the contract says.
    let r = approve_over_nats(&nats, "alice", &run, r#"{"approve":true,"reason":" "}"#).await;
    assert!(error_of(&r).contains("needs a reason"), "{r}");
    let r = approve_over_nats(&nats, "alice", &run, r#"{"approve":true}"#).await;
    assert!(error_of(&r).contains("needs a reason"), "{r}");
    let r = approve_over_nats(&nats, "alice", &run, "ship it").await;
    assert!(error_of(&r).contains("approval body is not valid"), "{r}");
    let r = approve_over_nats(
        &nats,
        "alice",
        &run,
        r#"{"approve":true,"reason":"ok","by":"bob"}"#,
    )
    .await;
    assert!(error_of(&r).contains("unknown field `by`"), "{r}");
    // gRPC refuses an empty reason the same way, as INVALID_ARGUMENT.
    let e = c.decide(&run, true, "").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("needs a reason"), "{e:?}");

    // alice approves, twice: one person counts once.
    let body = r#"{"approve":true,"reason":"diff reviewed"}"#;
    assert_eq!(
        approve_over_nats(&nats, "alice", &run, body).await["ok"],
        true
    );
    assert_eq!(
        approve_over_nats(&nats, "alice", &run, body).await["ok"],
        true
    );
    let g = approval_answer_after(&c, &run, 2).await;
    assert_eq!(g.verdict, v1::Verdict::Pending as i32, "{g:?}");
    assert!(
        g.reasons[0].starts_with("1/2 approvals, approved so far by alice; 1 more needed"),
        "{g:?}"
    );
    assert_eq!(c.get(&run).await.run_status(), v1::RunStatus::Running);

    // bob is the second person: the quorum is reached and the run ends well.
    let body = r#"{"approve":true,"reason":"canary metrics fine","task_id":""}"#;
    let sent = Instant::now();
    let r = approve_over_nats(&nats, "bob", &run, body).await;
    let replied = sent.elapsed();
    assert_eq!(r["ok"], true, "{r}");
    let end = c.wait_end(&run, Duration::from_secs(30)).await;
    eprintln!(
        "NATS approval: reply after {replied:?}, run ended {:?} after the request",
        sent.elapsed()
    );
    assert_eq!(end.run_status(), v1::RunStatus::Succeeded, "{end:#?}");
    let gate = &end.phases[0]
        .gates
        .iter()
        .find(|g| g.kind == "approval")
        .unwrap();
    assert_eq!(gate.reasons[0], "approved by alice, bob");
    let decisions: Vec<(String, String)> = events(&c.admin, &run)
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Body::Decision(d)) => Some((d.by, d.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("alice".to_string(), "diff reviewed".to_string()),
            ("alice".into(), "diff reviewed".into()),
            ("bob".into(), "canary metrics fine".into()),
        ],
        "refused requests publish nothing; each accepted one is recorded with its identity"
    );
    // Once the run ended there is nothing to decide.
    let r = approve_over_nats(&nats, "carol", &run, body).await;
    assert!(
        error_of(&r).contains("is not waiting for an approval"),
        "{r}"
    );

    // Nobody approved the other run within its 2 s: it halts with an incident.
    let end = c.wait_end(&fast, Duration::from_secs(30)).await;

    assert_eq!(end.run_status(), v1::RunStatus::Halted, "{end:#?}");
    assert_eq!(
        end.phases[0].reason,
        "approval expired after 2s (0/1 approvals)"
    );
    let incident = end.incidents.first().expect("a halt incident");
    assert_eq!(incident.kind, "halt");
    assert_eq!(
        incident.reasons,
        ["approval expired after 2s (0/1 approvals)"]
    );
    eprintln!(
        "expiry of 2s: run halted {} ms after it was created (its task ran first)",
        end.finished_ms - end.created_ms
    );
}

#[test]
fn the_cli_refuses_a_decision_without_a_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "approve",
            "some-run",
            "--reason",
            "  ",
            "--server",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a decision needs a reason"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["reject", "some-run", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
}
