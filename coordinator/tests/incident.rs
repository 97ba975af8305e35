//! Incident delivery against a real nats-server and a real HTTP receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use baton_proto::v1;
use baton_test_support::NatsServer;
use futures::StreamExt;

/// What the receiver saw: (content type, body) per request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A receiver on 127.0.0.1 that answers `statuses` in turn, then 200.
async fn receiver(statuses: Vec<u16>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let s = s.clone();
            let statuses = statuses.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut seen = s.lock().unwrap();
                seen.push((ct, body));
                let code = statuses.get(seen.len() - 1).copied().unwrap_or(200);
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://user:pw@{addr}/hook?token=t0p"), seen)
}

fn incident(run: &str, webhook: &str) -> v1::Incident {
    v1::Incident {
        kind: "halt".into(),
        run_id: run.into(),
        plan: "p".into(),
        phase_id: "deploy".into(),
        reasons: vec!["error rate 7% > 5%".into()],
        webhook: webhook.into(),
        time_ms: 1_700_000_000_000,
        stop: true,
    }
}

async fn wait_for(seen: &Seen, n: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while seen.lock().unwrap().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} requests arrived",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_reaches_the_subject_and_the_webhook() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut sub = client.subscribe("baton.incident.run-1").await.unwrap();
    client.flush().await.unwrap();
    let (url, seen) = receiver(vec![]).await;

    baton_coordinator::incident::deliver(client.clone(), incident("run-1", &url));

    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("incident published")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(v["kind"], "halt");
    assert_eq!(v["run_id"], "run-1");
    assert_eq!(v["plan"], "p");
    assert_eq!(v["phase_id"], "deploy");
    assert_eq!(v["reasons"][0], "error rate 7% > 5%");
    assert_eq!(v["time_ms"], 1_700_000_000_000i64);
    assert_eq!(v["stop"], true);
    assert!(
        v.get("webhook").is_none(),
        "the webhook URL may hold a token"
    );

    wait_for(&seen, 1, Duration::from_secs(5)).await;
    let (ct, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(ct, "application/json");
    let posted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(posted, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_retried_until_it_answers_2xx() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let (url, seen) = receiver(vec![500, 500]).await;
    let started = std::time::Instant::now();
    baton_coordinator::incident::deliver(client, incident("run-2", &url));
    wait_for(&seen, 3, Duration::from_secs(10)).await;
    // Backoff 1 s then 2 s before the third attempt.
    assert!(started.elapsed() >= Duration::from_millis(2900));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.lock().unwrap().len(), 3, "no attempt after a 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gives_up_after_three_attempts() {
    let (url, seen) = receiver(vec![500, 503, 502, 500]).await;
    let ok = baton_coordinator::incident::post(
        &url,
        b"{}".to_vec(),
        "run-3",
        &[Duration::from_millis(10), Duration::from_millis(10)],
    )
    .await;
    assert!(!ok);
    assert_eq!(seen.lock().unwrap().len(), 3);
}
