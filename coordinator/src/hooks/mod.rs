//! HTTP webhook triggers: `POST /hooks/<plan>` starts a run of a registered
//! plan, like `baton.trigger.<plan>` does over NATS, for senders that speak
//! only HTTP (CI systems, Alertmanager).
//!
//! - `202 {"run_id":..}`: the run was accepted.
//! - `200 {"ignored":"resolved"}`: an Alertmanager "resolved" notification.
//! - `400`: bad JSON (with line and column) or inputs the plan refuses.
//! - `401`: missing, malformed or mismatched signature or token; a missing,
//!   malformed or out-of-window timestamp.
//! - `403`: a bearer token used for another plan, or for anything but an
//!   Alertmanager notification.
//! - `404`: no such registered plan. `409`: a signed request seen before
//!   (by any coordinator). `413`: body over 1 MiB.
//! - `503`: no hook secret configured, or the bus is unreachable.
//!
//! `GET /healthz` answers `ok`.

pub mod body;
pub mod nonces;
pub mod signature;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use baton_proto::secret::Secret;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use signature::BearerToken;

use crate::submit::{Submission, Submitter};
use crate::Error;

/// Largest body accepted; an alert notification is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the hook server needs to start runs and to check who asks.
#[derive(Clone)]
pub struct Hooks {
    pub submitter: Submitter,
    pub secret: Option<Secret>,
    pub token: Option<BearerToken>,
    /// Signatures already accepted, shared by every coordinator.
    pub nonces: async_nats::jetstream::kv::Store,
}

impl Hooks {
    /// `token_file` is the text of `--hook-token-file`: `<token>` or
    /// `<token> <plan>,<plan>…`.
    pub fn new(
        submitter: Submitter,
        secret: Option<Secret>,
        token_file: Option<&Secret>,
        nonces: async_nats::jetstream::kv::Store,
    ) -> Result<Self, Error> {
        let token = token_file
            .map(BearerToken::parse)
            .transpose()
            .map_err(Error::Config)?;
        if let Some(t) = &token {
            tracing::info!(plans = %t.scope(), "webhook bearer token accepted for Alertmanager notifications");
        }
        Ok(Self {
            submitter,
            secret,
            token,
            nonces,
        })
    }
}

pub fn router(hooks: Hooks) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/hooks/{plan}", post(hook))
        // Over the limit the body extractor fails; `hook` turns that into a JSON 413.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(hooks))
}

/// Serve until `cancel`, then let requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hooks: Hooks,
    cancel: CancellationToken,
) -> Result<(), Error> {
    axum::serve(listener, router(hooks))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
        .map_err(Error::Hooks)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    answer(status, json!({ "error": msg.into() }))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn hook(
    State(h): State<Arc<Hooks>>,
    Path(plan): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                r.status(),
                format!("body is larger than {MAX_BODY} bytes (1 MiB) — send only the inputs"),
            )
        }
        Err(r) => return refuse(r.status(), r.body_text()),
    };
    // No registered plan has another shape, and a name without `.` keeps the
    // signed string unambiguous.
    if !signature::valid_plan_name(&plan) {
        return refuse(
            StatusCode::NOT_FOUND,
            Error::UnknownPlan(plan.chars().take(64).collect()).to_string(),
        );
    }
    let caller = match signature::verify(
        &headers,
        &plan,
        &body,
        h.secret.as_ref(),
        h.token.as_ref(),
        unix_now(),
    ) {
        Ok(c) => c,
        Err(r) => {
            tracing::info!(plan, status = %r.status, reason = %r.message, "webhook refused");
            return refuse(r.status, r.message);
        }
    };
    // Recorded before anything else happens, so that of two deliveries racing
    // at two coordinators only one gets further. Never forgotten, not even
    // when the start fails below: a request that might have started a run
    // must not be good twice.
    if let signature::Caller::Signed { nonce } = &caller {
        let ts = headers
            .get(signature::TIMESTAMP_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Err(r) = nonces::record(&h.nonces, nonce, ts).await {
            tracing::warn!(plan, status = %r.status, reason = %r.message, "webhook refused");
            return refuse(r.status, r.message);
        }
    }
    start(&h, &plan, &body, &caller).await
}

/// What an authenticated request asks for, done.
async fn start(h: &Hooks, plan: &str, body: &[u8], caller: &signature::Caller) -> Response {
    let (mut inputs, from_alert) = match body::parse(body) {
        Ok(body::Request::Start { inputs, from_alert }) => (inputs, from_alert),
        Ok(body::Request::Resolved) => {
            tracing::info!(plan, "resolved alert notification ignored");
            return answer(StatusCode::OK, json!({ "ignored": "resolved" }));
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    // The bearer token sits in an alerting system's config, and is not bound
    // to a body or a time: it may only relay alerts.
    if *caller == signature::Caller::Bearer && !from_alert {
        let msg = format!(
            "a bearer token delivers only Alertmanager notifications (a body with `alerts`) — sign other bodies with the hook secret instead: {}",
            signature::how_to_sign(plan)
        );
        tracing::info!(plan, reason = %msg, "webhook refused");
        return refuse(StatusCode::FORBIDDEN, msg);
    }
    if from_alert {
        let declared = match h.submitter.declared_inputs(plan).await {
            Ok(d) => d,
            Err(e) => return error_response(e),
        };
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut inputs)
            .into_iter()
            .partition(|(k, _)| declared.contains(k));
        if !drop.is_empty() {
            let names: Vec<&str> = drop.iter().map(|(k, _)| k.as_str()).collect();
            tracing::debug!(plan, ignored = ?names, "alert labels the plan does not declare");
        }
        inputs = keep.into_iter().collect();
    }
    let s = Submission {
        plan_yaml: String::new(),
        plan_file: String::new(),
        plan_name: plan.to_string(),
        inputs,
        submitted_by: if from_alert {
            "alertmanager"
        } else {
            "http-hook"
        }
        .into(),
        trigger: "http".into(),
    };
    match h.submitter.submit(s).await {
        Ok(run_id) => {
            tracing::info!(plan, run = %run_id, "run started by webhook");
            answer(StatusCode::ACCEPTED, json!({ "run_id": run_id }))
        }
        Err(e) => error_response(e),
    }
}

fn error_response(e: Error) -> Response {
    let status = match &e {
        Error::UnknownPlan(_) => StatusCode::NOT_FOUND,
        Error::InvalidInputs(_) | Error::PlanSource(_) => StatusCode::BAD_REQUEST,
        // A registered plan that no longer loads is the registry's problem, not the caller's.
        Error::InvalidPlan(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    refuse(status, e.to_string())
}
