//! Incidents from real runs: a `stop_when` that kills a running task and
//! rolls back, and a halt; each reaches `baton.incident.<run>` and the
//! plan's webhook (a real HTTP receiver).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use baton_proto::v1::{self, event::Body};
use futures::StreamExt;

use crate::support::*;

const T: Duration = Duration::from_secs(60);

type Seen = Arc<Mutex<Vec<serde_json::Value>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_when_kills_running_tasks_rolls_back_and_notifies() {
    let c = Cluster::start(Rt::Process).await;
    let (url, seen) = receiver().await;
    let client = async_nats::connect(c.nats.url()).await.unwrap();
    let mut incidents = client.subscribe("baton.incident.>").await.unwrap();
    client.flush().await.unwrap();
    let yaml = format!(
        r#"
name: stop
roles: {{ sec: {{ image: x }}, ops: {{ image: x }} }}
stop_when: ["tasks.scan.outputs.critical > 0"]
incidents: {{ webhook: "{url}" }}
phases:
  - id: audit
    tasks:
      - {{ id: scan, role: sec, run: "sleep 1; echo '{{\"result\":\"ok\",\"outputs\":{{\"critical\":2}}}}'" }}
      - {{ id: long, role: ops, run: "sleep 60; echo '{{\"result\":\"ok\"}}'" }}
    rollback: [ {{ id: undo, role: ops, run: "echo '{{\"result\":\"ok\"}}'" }} ]
"#
    );
    let run = c.submit(&yaml, &[]).await;
    let r = c.wait_end(&run, T).await;
    assert_eq!(
        r.run_status(),
        v1::RunStatus::RolledBack,
        "{} {:?}",
        r.reason,
        r.phases
    );
    assert!(r.reason.contains("stop_when"), "{}", r.reason);
    assert_eq!(task(&r, "long").task_status(), v1::TaskStatus::Cancelled);
    assert_eq!(task(&r, "undo").task_status(), v1::TaskStatus::Succeeded);
    assert_eq!(r.incidents.len(), 1);
    assert_eq!(
        (r.incidents[0].kind.as_str(), r.incidents[0].stop),
        ("stop_when", true)
    );

    let msg = tokio::time::timeout(Duration::from_secs(5), incidents.next())
        .await
        .expect("incident on core NATS")
        .unwrap();
    assert_eq!(msg.subject.as_str(), format!("baton.incident.{run}"));
    let json: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(json["kind"], "stop_when");
    assert!(json["reasons"][0]
        .as_str()
        .unwrap()
        .contains("tasks.scan.outputs.critical = 2"));
    assert!(
        json.get("webhook").is_none(),
        "the webhook URL is never published"
    );

    baton_test_support::assert_eventually!(
        Duration::from_secs(10),
        !seen.lock().unwrap().is_empty(),
        "the webhook got nothing"
    );
    assert_eq!(seen.lock().unwrap()[0]["run_id"], run.as_str());

    // The worker killed `long` at once instead of letting it sleep for a minute.
    baton_test_support::assert_eventually!(
        Duration::from_secs(15),
        c.events(&run).await.iter().any(|e| {
            matches!(&e.body, Some(Body::TaskFinished(f)) if f.task_id == "long" && f.duration_ms < 30_000)
        }),
        "task long was not killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_raises_an_incident_with_the_phase_and_reasons() {
    let c = Cluster::start(Rt::Process).await;
    let (url, seen) = receiver().await;
    let yaml = format!(
        r#"
name: halts
roles: {{ qa: {{ image: x }} }}
incidents: {{ webhook: "{url}" }}
phases:
  - id: verify
    on_fail: halt
    tasks: [ {{ id: t, role: qa, run: "echo '{{\"result\":\"ok\",\"outputs\":{{\"p95\":900}}}}'" }} ]
    gates: [ {{ expr: "tasks.t.outputs.p95 < 250" }} ]
"#
    );
    let run = c.submit(&yaml, &[]).await;
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::Halted);
    let inc: &v1::Incident = &r.incidents[0];
    assert_eq!(
        (inc.kind.as_str(), inc.phase_id.as_str()),
        ("halt", "verify")
    );
    assert!(
        inc.reasons[0].contains("tasks.t.outputs.p95 = 900"),
        "{inc:?}"
    );
    baton_test_support::assert_eventually!(
        Duration::from_secs(10),
        !seen.lock().unwrap().is_empty(),
        "the webhook got nothing"
    );
    let got = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (got["kind"].as_str(), got["phase_id"].as_str()),
        (Some("halt"), Some("verify"))
    );
}
