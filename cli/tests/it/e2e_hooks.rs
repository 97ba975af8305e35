//! HTTP webhook triggers against a real bus, coordinator and worker (process
//! runtime): signed bodies and Alertmanager notifications start runs; bad
//! requests get the status and message the caller needs.

use std::time::Duration;

use baton_coordinator::hooks::signature::sign;
use baton_proto::secret::Secret;
use baton_proto::v1;
use baton_test_support::NatsServer;

use crate::support::*;

const T: Duration = Duration::from_secs(60);
const SECRET: &str = "s3cret-hook-key";
const TOKEN: &str = "am-token";

const HOOKED: &str = include_str!("fixtures/hooked.yaml");

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
    nats: NatsServer,
    local: baton::local::LocalBaton,
    admin: baton_proto::client::Admin,
    base: String,
    http: reqwest::Client,
}

async fn start() -> Hooked {
    start_with_token(TOKEN).await
}

/// `token_file` is what `--hook-token-file` holds.
async fn start_with_token(token_file: &str) -> Hooked {
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
            hook_bearer_token: Some(Secret::new(token_file)),
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
        nats,
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
        self.post_to(&self.base, plan, body, headers).await
    }

    async fn signed(&self, plan: &str, body: &str) -> (u16, serde_json::Value) {
        let ts = unix_now();
        let sig = sign(SECRET, ts, plan, body.as_bytes());
        self.post(
            plan,
            body,
            &[
                ("x-baton-timestamp", ts.to_string()),
                ("x-baton-signature", sig),
            ],
        )
        .await
    }

    /// The run started by a 202 answer succeeds; its task's outputs.
    async fn outputs(&self, answer: (u16, serde_json::Value)) -> serde_json::Value {
        assert_eq!(answer.0, 202, "{}", answer.1);
        let run = answer.1["run_id"].as_str().expect("run id").to_string();
        let r = baton::local::wait_end(&self.admin, &run, T)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
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

    let now = unix_now().to_string();
    let wrong = sign("not-the-secret", unix_now(), "hooked", body.as_bytes());
    let (s, v) = h
        .post(
            "hooked",
            body,
            &[
                ("x-baton-timestamp", now.clone()),
                ("x-baton-signature", wrong),
            ],
        )
        .await;
    assert_eq!(s, 401);
    assert!(error_of(&v).starts_with("signature mismatch"), "{v}");
    assert!(!v.to_string().contains(SECRET));

    let (s, v) = h
        .post(
            "hooked",
            body,
            &[
                ("x-baton-timestamp", now),
                ("x-baton-signature", "sha1=abc".into()),
            ],
        )
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
        .header("x-baton-timestamp", unix_now().to_string())
        .header(
            "x-baton-signature",
            sign("guess", unix_now(), "any", body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let v: serde_json::Value = res.json().await.unwrap();
    assert!(error_of(&v).contains("--hook-secret-file"), "{v}");
}

// ---------------------------------------------------------------------------
// Hostile callers. The signing below is written from the documented scheme
// (docs/architecture.md, "Triggers"), not with the coordinator's own code, so
// that it checks the documentation as much as the server.

const OTHER: &str = include_str!("fixtures/other-plan.yaml");

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// The headers of a request to `/hooks/<plan>` signed at `ts`:
/// `sha256=HMAC(secret, "<ts>.<path>.<body>")`.
fn signed_at(ts: i64, plan: &str, body: &str) -> Vec<(&'static str, String)> {
    let canonical = format!("{ts}./hooks/{plan}.{body}");
    vec![
        ("x-baton-timestamp", ts.to_string()),
        (
            "x-baton-signature",
            format!(
                "sha256={}",
                hmac_sha256(SECRET.as_bytes(), canonical.as_bytes())
            ),
        ),
    ]
}

impl Hooked {
    async fn post_to(
        &self,
        base: &str,
        plan: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(format!("{base}/hooks/{plan}"))
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

    async fn apply(&self, yaml: &str) {
        self.admin
            .clone()
            .apply_plan(v1::ApplyPlanRequest {
                plan_yaml: yaml.into(),
                plan_file: "plan.yaml".into(),
            })
            .await
            .expect("apply");
    }

    /// A second coordinator on the same NATS, serving webhooks with the
    /// same secret and token; its base URL.
    async fn second_coordinator(&self) -> (baton::local::LocalBaton, String) {
        let local = baton::local::LocalBaton::start_with(
            &self.nats.url(),
            baton_coordinator::Options {
                grpc_addr: "127.0.0.1:0".parse().unwrap(),
                http_addr: Some("127.0.0.1:0".parse().unwrap()),
                hook_secret: Some(Secret::new(SECRET)),
                hook_bearer_token: Some(Secret::new(TOKEN)),
                ..Default::default()
            },
            vec![],
        )
        .await
        .expect("a second coordinator starts");
        let base = format!("http://{}", local.http_addr.unwrap());
        (local, base)
    }

    async fn run_count(&self) -> usize {
        self.admin
            .clone()
            .list_runs(v1::ListRunsRequest { limit: 50 })
            .await
            .unwrap()
            .into_inner()
            .runs
            .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_only_signature_is_no_longer_enough() {
    // The old scheme signed the body alone: whoever saw one request could
    // send it again, any time, at any coordinator, to any plan.
    let h = start().await;
    h.apply(OTHER).await;
    let (second, base2) = h.second_coordinator().await;
    let body = r#"{"inputs":{"who":"old"}}"#;
    let old = [(
        "x-baton-signature",
        format!("sha256={}", hmac_sha256(SECRET.as_bytes(), body.as_bytes())),
    )];
    let mut got_in = Vec::new();
    for (what, base, plan) in [
        ("sent", &h.base, "hooked"),
        ("replayed", &h.base, "hooked"),
        ("replayed at another coordinator", &base2, "hooked"),
        ("redirected to another plan", &h.base, "other"),
    ] {
        let (s, v) = h.post_to(base, plan, body, &old).await;
        if s != 401 || !v.to_string().contains("X-Baton-Timestamp") {
            got_in.push(format!("{what}: {s} {v}"));
        }
    }
    assert!(got_in.is_empty(), "body-only requests: {got_in:#?}");
    assert_eq!(h.run_count().await, 0);
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_webhook_is_refused_by_every_coordinator() {
    let h = start().await;
    let (second, base2) = h.second_coordinator().await;
    let body = r#"{"inputs":{"who":"once"}}"#;
    let req = signed_at(unix_now(), "hooked", body);

    let (s, v) = h.post_to(&h.base, "hooked", body, &req).await;
    assert_eq!(s, 202, "the first delivery starts a run: {v}");
    let (s, v) = h.post_to(&h.base, "hooked", body, &req).await;
    assert_eq!(s, 409, "the same request again, same coordinator: {v}");
    assert!(error_of(&v).contains("replayed"), "{v}");
    let (s, v) = h.post_to(&base2, "hooked", body, &req).await;
    assert_eq!(s, 409, "the same request at another coordinator: {v}");
    assert!(error_of(&v).contains("replayed"), "{v}");
    // Hex is hex in either case: the same signature upper-cased is no new request.
    let mut upper = req.clone();
    upper[1].1 = format!("sha256={}", upper[1].1[7..].to_uppercase());
    let (s, v) = h.post_to(&base2, "hooked", body, &upper).await;
    assert_eq!(s, 409, "the same signature in upper case: {v}");

    // The second coordinator does accept a request it has not seen.
    let fresh = signed_at(unix_now(), "hooked", r#"{"inputs":{"who":"two"}}"#);
    let (s, v) = h
        .post_to(&base2, "hooked", r#"{"inputs":{"who":"two"}}"#, &fresh)
        .await;
    assert_eq!(s, 202, "{v}");

    // The same request at both coordinators at once: exactly one wins.
    let body3 = r#"{"inputs":{"who":"race"}}"#;
    let race = signed_at(unix_now(), "hooked", body3);
    let (a, b) = tokio::join!(
        h.post_to(&h.base, "hooked", body3, &race),
        h.post_to(&base2, "hooked", body3, &race)
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [202, 409], "{a:?} {b:?}");

    assert_eq!(h.run_count().await, 3, "one run per distinct request");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_cannot_be_redirected_or_altered() {
    let h = start().await;
    h.apply(OTHER).await;
    let body = r#"{"inputs":{"who":"x"}}"#;
    let ts = unix_now();
    let req = signed_at(ts, "hooked", body);

    // Signed for `hooked`, sent to `other`.
    let (s, v) = h.post_to(&h.base, "other", body, &req).await;
    assert_eq!(s, 401, "{v}");
    assert!(error_of(&v).starts_with("signature mismatch"), "{v}");
    assert!(error_of(&v).contains("path"), "says what is signed: {v}");
    // Another timestamp with the same signature.
    let mut moved = req.clone();
    moved[0].1 = (ts - 1).to_string();
    let (s, v) = h.post_to(&h.base, "hooked", body, &moved).await;
    assert_eq!(s, 401, "{v}");
    // Another body.
    let (s, v) = h
        .post_to(&h.base, "hooked", r#"{"inputs":{"who":"y"}}"#, &req)
        .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(h.run_count().await, 0);

    // The request itself, where it was meant to go, is good: refused
    // attempts did not use it up.
    let (s, v) = h.post_to(&h.base, "hooked", body, &req).await;
    assert_eq!(s, 202, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_future_or_missing_timestamps_are_refused() {
    let h = start().await;
    let body = r#"{"inputs":{"who":"t"}}"#;
    let now = unix_now();

    for (ts, when) in [
        (now - 600, "ten minutes old"),
        (now + 600, "ten minutes ahead"),
    ] {
        let (s, v) = h
            .post_to(&h.base, "hooked", body, &signed_at(ts, "hooked", body))
            .await;
        assert_eq!(s, 401, "{when}: {v}");
        let e = error_of(&v);
        assert!(e.contains("300"), "names the allowed skew: {e}");
        assert!(e.contains("clock"), "says clocks must agree: {e}");
    }

    let mut no_ts = signed_at(now, "hooked", body);
    no_ts.remove(0);
    let (s, v) = h.post_to(&h.base, "hooked", body, &no_ts).await;
    assert_eq!(s, 401, "{v}");
    let e = error_of(&v);
    assert!(e.starts_with("missing `X-Baton-Timestamp`"), "{e}");
    assert!(
        e.contains("openssl dgst -sha256 -hmac"),
        "says how to sign: {e}"
    );

    let mut bad_ts = signed_at(now, "hooked", body);
    bad_ts[0].1 = "yesterday".into();
    let (s, v) = h.post_to(&h.base, "hooked", body, &bad_ts).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(h.run_count().await, 0);

    // Four minutes of skew is inside the window.
    let (s, v) = h
        .post_to(
            &h.base,
            "hooked",
            body,
            &signed_at(now - 240, "hooked", body),
        )
        .await;
    assert_eq!(s, 202, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_delivers_only_alerts_and_only_to_its_plans() {
    // Unscoped (the default): any plan, but only Alertmanager payloads.
    let h = start().await;
    let bearer = [("authorization", format!("Bearer {TOKEN}"))];
    let (s, v) = h
        .post_to(&h.base, "hooked", r#"{"inputs":{"who":"x"}}"#, &bearer)
        .await;
    assert_eq!(s, 403, "inputs with a bearer token: {v}");
    assert!(error_of(&v).contains("sign"), "says to sign it: {v}");
    let (s, v) = h.post_to(&h.base, "hooked", "", &bearer).await;
    assert_eq!(s, 403, "an empty body with a bearer token: {v}");
    assert_eq!(h.run_count().await, 0);
    drop(h);

    // Scoped to `hooked`: `--hook-token-file` holds `<token> <plan>[,<plan>…]`.
    let scoped = "am-scoped";
    let h = start_with_token(&format!("{scoped} hooked\n")).await;
    h.apply(OTHER).await;
    let bearer = [("authorization", format!("Bearer {scoped}"))];
    let (s, v) = h.post_to(&h.base, "other", ALERT, &bearer).await;
    assert_eq!(s, 403, "a token for `hooked` used on `other`: {v}");
    assert!(error_of(&v).contains("hooked"), "names its plans: {v}");
    assert_eq!(h.run_count().await, 0);
    let out = h
        .outputs(h.post_to(&h.base, "hooked", ALERT, &bearer).await)
        .await;
    assert_eq!(out["service"], "db");
}
