//! The audit trail against a real nats-server, a real coordinator and real
//! Docker: a run's decisions land on its hash chain, `baton audit verify`
//! passes, and each kind of tampering (removed, inserted, changed) is found
//! and the first bad record named.
//!
//! How the tests tamper: `ensure` creates BATON_AUDIT with `deny_delete`
//! and `deny_purge`, which stops anyone going through the JetStream API. The
//! tamper test plays an operator with admin rights over the server: it
//! creates the stream itself first, without those two flags (`ensure` keeps
//! an existing stream), then deletes, purges and republishes raw messages.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use baton_coordinator::audit::Record;
use baton_proto::{subjects, v1};
use baton_test_support::NatsServer;

use crate::support::audit::*;
use crate::support::{eventually, submit_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_is_audited_and_every_kind_of_tampering_is_found() {
    let b = Box::pin(start(true)).await;
    let run = submit(&b, "carol").await;
    eventually("the approval wait", Duration::from_secs(90), async || {
        (!run_view(&b, &run).await.waiting.is_empty()).then_some(())
    })
    .await;
    b.admin
        .clone()
        .approve(v1::DecisionRequest {
            run_id: run.clone(),
            reason: "reviewed the diff".into(),
            by: "alice".into(),
            task_id: String::new(),
        })
        .await
        .expect("approval accepted");
    baton::local::wait_end(&b.admin, &run, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chain = finished_chain(&b, &run).await;
    let k = kinds(&chain);
    for want in [
        "submitted",
        "dispatched",
        "completed",
        "approved",
        "gate",
        "promoted",
        "phase_failed",
        "rolled_back",
        "finished",
    ] {
        assert!(k.contains(&want), "no {want} record in {k:?}");
    }
    assert_eq!(k[0], "submitted");
    assert_eq!(*k.last().unwrap(), "finished");
    let rec = |kind: &str| {
        chain
            .iter()
            .map(|(_, r)| r)
            .find(|r| r.kind == kind)
            .unwrap()
    };
    // Who approved is whoever the Decision event names (the admin API's
    // caller), and why is the person's reason.
    let events = read(&b, subjects::EVENTS_STREAM, subjects::run_events(&run)).await;
    let by_seq: HashMap<u64, v1::Event> = events
        .iter()
        .map(|(q, e)| (*q, prost::Message::decode(e.as_slice()).unwrap()))
        .collect();
    // Who submitted is whoever the submission event names (the caller).
    let submitted = rec("submitted");
    let Some(v1::event::Body::RunSubmitted(sub)) = &by_seq[&submitted.event_seq].body else {
        panic!("the submitted record does not point at the submission event");
    };
    assert_eq!(submitted.actor, sub.submitted_by);
    assert_eq!(submitted.subject, "audited.yaml");
    let approved = rec("approved");
    let Some(v1::event::Body::Decision(d)) = &by_seq[&approved.event_seq].body else {
        panic!("the approved record does not point at the decision event");
    };
    assert_eq!(
        (approved.actor.as_str(), approved.reason.as_str()),
        (d.by.as_str(), "reviewed the diff")
    );
    assert!(!approved.actor.is_empty());
    let gates: Vec<_> = chain
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.kind == "gate")
        .collect();
    assert!(gates
        .iter()
        .any(|g| g.detail["verdict"] == "pass" && g.actor == "gate:approval"));
    assert!(
        gates.iter().any(|g| g.detail["verdict"] == "fail"
            && g.subject == "verify#1"
            && g.actor == "gate:expr"),
        "{gates:#?}"
    );
    let dispatched: Vec<_> = chain
        .iter()
        .filter(|(_, r)| r.kind == "dispatched")
        .map(|(_, r)| r.subject.as_str())
        .collect();
    assert_eq!(
        dispatched,
        ["compile", "check", "restore"],
        "each attempt once"
    );
    // Exactly one record per audited event: no duplicates from replays.
    let mut seqs: Vec<u64> = chain.iter().map(|(_, r)| r.event_seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), chain.len());

    // Cancelled, with who and why.
    let other = submit(&b, "dave").await;
    b.admin
        .clone()
        .cancel_run(v1::CancelRunRequest {
            run_id: other.clone(),
            reason: "wrong branch".into(),
            by: "dave".into(),
        })
        .await
        .expect("cancel accepted");
    let cancelled = finished_chain(&b, &other).await;
    let c = cancelled
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.kind == "cancelled")
        .expect("a cancelled record");
    assert_eq!(c.reason, "wrong branch");

    // Intact: every chain verifies, and the head is the last record's hash.
    let head = &chain.last().unwrap().1;
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "ok: {run}, {} records, head {}",
            chain.len(),
            head.hash
        )),
        "{out}"
    );
    let (code, out) = verify(&b, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("ok: {other},")), "{out}");

    let original: Vec<Vec<u8>> = chain.iter().map(|(_, r)| r.to_bytes()).collect();
    let k = 3; // a record in the middle

    // Removed: one record deleted.
    let s = b.js.get_stream(subjects::AUDIT_STREAM).await.unwrap();
    assert!(s.delete_message(chain[k].0).await.unwrap());
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("record n={} ", k + 1)) && out.contains("removed"),
        "{out}"
    );
    assert!(out.contains(&format!("record {k} is missing")), "{out}");
    // Only that run fails; the other's chain still holds.
    let (code, out) = verify(&b, None);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("ok: {other},")), "{out}");

    // Inserted at the end: a forged approval that claims to follow record k.
    rewrite(&b, &run, &original).await;
    assert_eq!(
        verify(&b, Some(&run)).0,
        0,
        "a restored chain verifies again"
    );
    let forged = forge(&chain[k].1);
    b.js.publish(subjects::audit(&run), forged.to_bytes().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 1, "{out}");
    let last_seq = records(&b, &run).await.last().unwrap().0;
    assert!(
        out.contains(&format!(
            "record n={} (audit stream seq {last_seq}) inserted",
            k + 1
        )),
        "{out}"
    );

    // Inserted in the middle: its links are perfect, but no event backs it.
    let mut spliced = original.clone();
    spliced.insert(k + 1, forged.to_bytes());
    rewrite(&b, &run, &spliced).await;
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 1, "{out}");
    let forged_seq = records(&b, &run).await[k + 1].0;
    assert!(
        out.contains(&format!("(audit stream seq {forged_seq}) inserted")),
        "{out}"
    );

    // Changed: one field altered, its hash kept.
    let mut altered = chain.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>();
    let i = altered.iter().position(|r| r.kind == "approved").unwrap();
    altered[i].actor = "mallory".into();
    rewrite(
        &b,
        &run,
        &altered.iter().map(Record::to_bytes).collect::<Vec<_>>(),
    )
    .await;
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("record n={i} ")) && out.contains("changed"),
        "{out}"
    );

    rewrite(&b, &run, &original).await;
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn the_audit_stream_refuses_deletes_and_purges() {
    let nats = NatsServer::start();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let topo = baton_proto::topology::ensure(&js, &Default::default())
        .await
        .unwrap();
    let ack = js
        .publish(subjects::audit("r1"), "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(topo.audit.delete_message(ack.sequence).await.is_err());
    assert!(topo.audit.purge().await.is_err());
    let info = topo.audit.get_info().await.unwrap();
    assert_eq!(info.state.messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_taking_a_run_over_continues_its_chain_without_duplicates() {
    // `b` brings the gates, a worker and the coordinator that takes over;
    // `first` owns the run until it stops and hands its leases back.
    let b = Box::pin(start(false)).await;
    let (token, tokens) = baton::local::admin_token("carol");
    let (first, handle) = Box::pin(
        baton_coordinator::Options {
            nats_url: b.nats.url(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            id: "coord-first".into(),
            auth: baton_coordinator::auth::Auth::Tokens(tokens),
            ..Default::default()
        }
        .build(),
    )
    .await
    .expect("second coordinator starts");
    let stop = tokio_util::sync::CancellationToken::new();
    let first = tokio::spawn(first.run(stop.clone()));
    let to_first = crate::support::client_at(handle.grpc_addr, &token).await;
    let run = submit_request(
        &to_first,
        v1::SubmitRunRequest {
            plan_yaml: PLAN.into(),
            plan_file: "audited.yaml".into(),
            submitted_by: "carol".into(),
            ..Default::default()
        },
    )
    .await;
    eventually("the approval wait", Duration::from_secs(90), async || {
        (!run_view(&b, &run).await.waiting.is_empty()).then_some(())
    })
    .await;
    let before = records(&b, &run).await;
    assert!(
        kinds(&before).contains(&"completed"),
        "{:?}",
        kinds(&before)
    );
    stop.cancel();
    first.await.unwrap().unwrap();
    // The other coordinator takes the run; an approval only it can fold.
    eventually(
        "the approval accepted",
        Duration::from_secs(30),
        async || {
            b.admin
                .clone()
                .approve(v1::DecisionRequest {
                    run_id: run.clone(),
                    reason: "after takeover".into(),
                    by: "alice".into(),
                    task_id: String::new(),
                })
                .await
                .ok()
        },
    )
    .await;
    let chain = finished_chain(&b, &run).await;
    assert_eq!(
        &chain[..before.len()],
        &before[..],
        "the first owner's records stay as they were"
    );
    let mut seqs: Vec<u64> = chain.iter().map(|(_, r)| r.event_seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        chain.len(),
        "an event recorded twice: {:?}",
        kinds(&chain)
    );
    let promoted = chain
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.kind == "promoted")
        .unwrap();
    assert_ne!(
        promoted.actor, "coord-first",
        "the new owner decided the promotion"
    );
    let (code, out) = verify(&b, Some(&run));
    assert_eq!(code, 0, "{out}");
}
