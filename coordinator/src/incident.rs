//! Incidents leave the run: a JSON copy on `baton.incident.<run>` (core NATS)
//! and, when the plan names one, a POST to its webhook.
//!
//! Delivery is best effort and happens in the background: the fold never waits
//! on a slow receiver, and an incident is recorded in the run's events whatever
//! happens here.

use std::time::Duration;

use baton_proto::v1;

/// How long one webhook attempt may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits before the second and third attempts.
pub const WEBHOOK_BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// Deliver one incident in the background; never blocks the fold.
pub fn deliver(client: async_nats::Client, incident: v1::Incident) {
    tokio::spawn(async move {
        let body = to_json(&incident);
        let subject = baton_proto::subjects::incident(&incident.run_id);
        if let Err(e) = client.publish(subject, body.clone().into()).await {
            tracing::warn!(run = %incident.run_id, error = %e, "incident not published");
        }
        if !incident.webhook.is_empty() {
            post(&incident.webhook, body, &incident.run_id, &WEBHOOK_BACKOFF).await;
        }
    });
}

/// The incident as receivers see it. The webhook URL is left out: it may
/// carry a token.
pub fn to_json(i: &v1::Incident) -> Vec<u8> {
    serde_json::json!({
        "kind": i.kind,
        "run_id": i.run_id,
        "plan": i.plan,
        "phase_id": i.phase_id,
        "reasons": i.reasons,
        "time_ms": i.time_ms,
        "stop": i.stop,
    })
    .to_string()
    .into_bytes()
}

/// POST `body` to `url`, once plus once per `backoff` entry, until a 2xx.
/// Returns whether it was delivered.
pub async fn post(url: &str, body: Vec<u8>, run: &str, backoff: &[Duration]) -> bool {
    let shown = redact(url);
    let client = match reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(run, error = %e, "no HTTP client for the incident webhook");
            return false;
        }
    };
    let attempts = backoff.len() + 1;
    for attempt in 1..=attempts {
        let res = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let problem = match res {
            Ok(r) if r.status().is_success() => {
                tracing::info!(run, webhook = %shown, attempt, "incident delivered");
                return true;
            }
            Ok(r) => format!("answered {}", r.status()),
            // reqwest's errors name the URL; keep only what went wrong.
            Err(e) => describe(&e),
        };
        tracing::warn!(run, webhook = %shown, attempt, attempts, problem, "incident webhook failed");
        if let Some(wait) = backoff.get(attempt - 1) {
            tokio::time::sleep(*wait).await;
        }
    }
    false
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_builder() {
        "is not a valid URL"
    } else {
        "request failed"
    };
    let mut s = what.to_string();
    // The source chain holds the cause (refused, DNS, TLS) without the URL.
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// The URL as logs may show it: scheme, host and port only. Userinfo and
/// query often hold tokens, and so does the path of some services (Slack's
/// `/services/T…/B…/<secret>`), so the path is elided too.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = if u.path().len() > 1 { "/…" } else { "/" };
            format!("{}://{host}{port}{path}", u.scheme())
        }
        Err(_) => "<unparsable webhook URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_secrets() {
        assert_eq!(
            redact("https://user:pw@hooks.example/x/y?token=abc#frag"),
            "https://hooks.example/…"
        );
        assert_eq!(redact("http://127.0.0.1:9000"), "http://127.0.0.1:9000/");
        assert_eq!(redact("not a url"), "<unparsable webhook URL>");
    }

    #[test]
    fn json_leaves_out_the_webhook() {
        let i = v1::Incident {
            kind: "halt".into(),
            run_id: "r1".into(),
            webhook: "https://h.example/?token=secret".into(),
            reasons: vec!["boom".into()],
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&to_json(&i)).unwrap();
        assert_eq!(v["kind"], "halt");
        assert_eq!(v["reasons"][0], "boom");
        assert!(v.get("webhook").is_none());
        assert!(!String::from_utf8(to_json(&i)).unwrap().contains("secret"));
    }
}
