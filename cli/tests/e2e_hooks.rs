//! HTTP webhook triggers against a real bus, coordinator and worker (process
//! runtime): signed bodies and Alertmanager notifications start runs; bad
//! requests get the status and message the caller needs.

mod common;

use std::time::Duration;

use baton_coordinator::hooks::{signature::sign, Secret};
use baton_proto::v1;
use baton_test_support::NatsServer;
use common::*;

const T: Duration = Duration::from_secs(60);
const SECRET: &str = "s3cret-hook-key";
const TOKEN: &str = "am-token";

const HOOKED: &str = r#"
name: hooked
inputs:
  who: { default: "world" }
  service: { default: "none" }
roles:
  dev: { image: "baton/agent:local" }
phases:
  - id: only
    tasks:
      - id: hello
        role: dev
        env: { WHO: "${{ inputs.who }}", SERVICE: "${{ inputs.service }}" }
        run: ["sh", "-c", "echo \"{\\\"result\\\":\\\"ok\\\",\\\"outputs\\\":{\\\"who\\\":\\\"$WHO\\\",\\\"service\\\":\\\"$SERVICE\\\"}}\""]
"#;

const ALERT: &str = r#"{
  "version": "4", "status": "firing", "receiver": "baton", "groupKey": "{}:{alertname=\"DiskFull\"}",
  "groupLabels": {"alertname": "DiskFull"},
  "commonLabels": {"alertname": "DiskFull", "service": "db", "severity": "page"},
  "commonAnnotations": {"summary": "disk full"},
  "externalURL": "http://alertmanager:9093",
  "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "service": "db", "who": "alertmanager", "instance": "db-1"},
              "annotations": {"summary": "disk full"}, "startsAt": "2026-11-22T20:00:00Z", "fingerprint": "abc"}]
}"#;

struct Hooked {
    _nats: NatsServer,
    local: baton::local::LocalBaton,
    admin: baton::admin_client::Admin,
    base: String,
    http: reqwest::Client,
}

async fn start() -> Hooked {
    let nats = NatsServer::start();
    let worker = baton::local::WorkerSpec {
        options: baton_worker::Options {
            roles: ROLES.iter().map(|s| s.to_string()).collect(),
            concurrency: 4,
            ..Default::default()
        },
        runtime: runtime(Rt::Process).await,
    };
    let local = baton::local::LocalBaton::start_with(
        &nats.url(),
        baton_coordinator::Options {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            hook_secret: Some(Secret::new(SECRET)),
            hook_bearer_token: Some(Secret::new(TOKEN)),
            ..Default::default()
        },
        vec![worker],
    )
    .await
    .expect("Baton starts");
    let admin = local.admin().await.expect("admin connects");
    admin
        .clone()
        .apply_plan(v1::ApplyPlanRequest {
            plan_yaml: HOOKED.into(),
            plan_file: "hooked.yaml".into(),
        })
        .await
        .expect("apply");
    let base = format!("http://{}", local.http_addr.expect("webhooks are served"));
    Hooked {
        _nats: nats,
        local,
        admin,
        base,
        http: reqwest::Client::new(),
    }
}

impl Hooked {
    async fn post(
        &self,
        plan: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(format!("{}/hooks/{plan}", self.base))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.expect("webhook answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, v)
    }

    async fn signed(&self, plan: &str, body: &str) -> (u16, serde_json::Value) {
        let sig = sign(SECRET, body.as_bytes());
        self.post(plan, body, &[("x-baton-signature", sig)]).await
    }

    /// The run started by a 202 answer succeeds; its task's outputs.
    async fn outputs(&self, answer: (u16, serde_json::Value)) -> serde_json::Value {
        assert_eq!(answer.0, 202, "{}", answer.1);
        let run = answer.1["run_id"].as_str().expect("run id").to_string();
        let r = baton::local::wait_end(&self.admin, &run, T)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, "succeeded", "{r:#?}");
        let t = task(&r, "hello");
        let out: serde_json::Value = serde_json::from_str(&t.result_json).unwrap();
        out["outputs"].clone()
    }
}

fn error_of(v: &serde_json::Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_start_runs_with_their_inputs() {
    let h = start().await;

    let out = h
        .outputs(h.signed("hooked", r#"{"inputs":{"who":"http"}}"#).await)
        .await;
    assert_eq!(out["who"], "http");
    assert_eq!(out["service"], "none");

    // Alertmanager, signed: labels the plan declares become inputs, the rest are dropped.
    let out = h.outputs(h.signed("hooked", ALERT).await).await;
    assert_eq!(out["who"], "alertmanager");
    assert_eq!(out["service"], "db");

    // Alertmanager cannot sign: the bearer token lets it in.
    let bearer = [("authorization", format!("Bearer {TOKEN}"))];
    let out = h.outputs(h.post("hooked", ALERT, &bearer).await).await;
    assert_eq!(out["service"], "db");

    let health = h
        .http
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_with_the_reason() {
    let h = start().await;
    let body = r#"{"inputs":{"who":"x"}}"#;

    let (s, v) = h.post("hooked", body, &[]).await;
    assert_eq!(s, 401);
    assert!(
        error_of(&v).starts_with("missing `X-Baton-Signature`"),
        "{v}"
    );
    assert!(error_of(&v).contains("openssl dgst -sha256 -hmac"), "{v}");

    let wrong = sign("not-the-secret", body.as_bytes());
    let (s, v) = h
        .post("hooked", body, &[("x-baton-signature", wrong)])
        .await;
    assert_eq!(s, 401);
    assert!(error_of(&v).starts_with("signature mismatch"), "{v}");
    assert!(!v.to_string().contains(SECRET));

    let (s, v) = h
        .post("hooked", body, &[("x-baton-signature", "sha1=abc".into())])
        .await;
    assert_eq!(s, 401);
    assert!(error_of(&v).starts_with("malformed"), "{v}");

    let (s, v) = h
        .post("hooked", body, &[("authorization", "Bearer nope".into())])
        .await;
    assert_eq!(s, 401);
    assert!(error_of(&v).contains("bearer token does not match"), "{v}");

    let resolved = ALERT.replace(
        r#""status": "firing", "receiver""#,
        r#""status": "resolved", "receiver""#,
    );
    let (s, v) = h.signed("hooked", &resolved).await;
    assert_eq!((s, v), (200, serde_json::json!({"ignored": "resolved"})));

    let (s, v) = h.signed("nope", body).await;
    assert_eq!(s, 404);
    assert!(error_of(&v).contains("baton plan apply"), "{v}");

    let (s, v) = h.signed("hooked", r#"{"inputs":{"whom":"x"}}"#).await;
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("unknown input `whom`"), "{v}");

    let (s, v) = h.signed("hooked", "{\"inputs\":\n  {\"who\": x}}").await;
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("line 2 column"), "{v}");

    let big = format!(r#"{{"inputs":{{"who":"{}"}}}}"#, "x".repeat(1024 * 1024));
    let (s, v) = h.signed("hooked", &big).await;
    assert_eq!(s, 413, "{v}");

    // Nothing above started a run.
    let runs = h
        .admin
        .clone()
        .list_runs(v1::ListRunsRequest { limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert!(runs.runs.is_empty(), "{runs:?}");
    drop(h.local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_webhooks_are_off() {
    let nats = NatsServer::start();
    let local = baton::local::LocalBaton::start_with(
        &nats.url(),
        baton_coordinator::Options {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        vec![],
    )
    .await
    .expect("Baton starts");
    let url = format!("http://{}/hooks/any", local.http_addr.unwrap());
    let body = "{}";
    let res = reqwest::Client::new()
        .post(url)
        .header("x-baton-signature", sign("guess", body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let v: serde_json::Value = res.json().await.unwrap();
    assert!(error_of(&v).contains("--hook-secret-file"), "{v}");
}
