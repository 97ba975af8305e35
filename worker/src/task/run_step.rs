//! Run: grant the sandbox the dispatch asks for, resolve its secrets, and
//! run the attempt with heartbeats, logs and cancellation wired up.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use baton_proto::{subjects, v1};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Attempt, Ctx};
use crate::redact::Redactor;
use crate::runtime::grant::{self, Grant};
use crate::runtime::{Limits, LogLine, Outcome, RuntimeError, Stream, TaskSpec};

/// How the run step ended; [`super::report_step`] turns it into an answer.
pub(super) enum Ran {
    /// The dispatch asks for more than this worker grants: nothing ran.
    Refused(grant::Refused),
    /// The runtime's answer, and the redactor every text of it goes through.
    Done {
        result: Result<Outcome, RuntimeError>,
        redactor: Arc<Redactor>,
    },
}

pub(super) async fn run(ctx: &Ctx, a: &Attempt) -> Ran {
    let d = &a.d;
    // A sandbox or host path this worker will not grant fails the task for
    // good: another attempt would meet the same request.
    let granted = grant::grant(
        d.sandbox.as_ref(),
        d.workspace.as_ref(),
        &ctx.limits,
        &ctx.ceiling,
    );
    let granted = match granted {
        Ok(g) => g,
        Err(reason) => {
            tracing::warn!(run = %d.run_id, task = %d.task_id, role = %d.role, %reason, "sandbox request refused");
            return Ran::Refused(reason);
        }
    };
    let heartbeat = heartbeat(&a.msg, ctx.heartbeat);

    // Resolved on this host, now: a missing secret fails the attempt
    // permanently below, with a message naming the reference only.
    let secrets = crate::secrets::resolve(&d.secrets, &ctx.worker_id, &ctx.secret_policy, |var| {
        std::env::var(var).ok()
    });
    let redactor = secrets
        .as_ref()
        .map(|s| s.redactor.clone())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel::<LogLine>(1024);
    let logs = tokio::spawn(forward_logs(
        ctx.client.clone(),
        d.run_id.clone(),
        d.task_id.clone(),
        d.attempt,
        rx,
        redactor.clone(),
    ));

    let running_key = format!("{}/{}#{}", d.run_id, d.task_id, d.attempt);
    ctx.running.add(&running_key);
    let registration = ctx.cancels.register(&d.run_id);
    let (kill, kill_guard) = kill_switch(registration.token.clone(), ctx.shutdown.clone());
    let spec = task_spec(ctx, a, granted);
    let result = match secrets {
        Ok(secrets) => {
            let spec = TaskSpec { secrets, ..spec };
            ctx.runtime.run(&spec, tx, kill).await
        }
        Err(e) => {
            // Nothing will log: let the forwarder end.
            drop(tx);
            Err(e.into())
        }
    };
    heartbeat.abort();
    kill_guard.abort();
    ctx.cancels.release(&registration);
    ctx.running.remove(&running_key);
    let _ = logs.await;
    Ran::Done { result, redactor }
}

/// Progress acks, so that the ack deadline does not hand the message to
/// another worker while the task runs. Abort it when the task ends.
fn heartbeat(msg: &jetstream::Message, every: Duration) -> JoinHandle<()> {
    let every = every.max(Duration::from_millis(100));
    let ack = msg.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if ack.ack_with(AckKind::Progress).await.is_err() {
                tracing::warn!("heartbeat not sent");
            }
        }
    })
}

/// A token that kills the task when its run is cancelled or the shutdown's
/// grace period runs out, and its watcher, to abort when the task ends.
fn kill_switch(
    run_cancel: CancellationToken,
    shutdown: CancellationToken,
) -> (CancellationToken, JoinHandle<()>) {
    let kill = CancellationToken::new();
    let fire = kill.clone();
    let watcher = tokio::spawn(async move {
        tokio::select! {
            _ = run_cancel.cancelled() => {},
            _ = shutdown.cancelled() => {},
        }
        fire.cancel();
    });
    (kill, watcher)
}

/// The spec of the attempt as granted, without its secrets (they are
/// added once resolved).
fn task_spec(
    ctx: &Ctx,
    a: &Attempt,
    (limits, grant, workspace): (Limits, Grant, Option<v1::Workspace>),
) -> TaskSpec {
    let d = &a.d;
    let mut env: Vec<(String, String)> =
        d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.sort();
    env.push(("BATON_RUN_ID".into(), d.run_id.clone()));
    env.push(("BATON_TASK_ID".into(), d.task_id.clone()));
    env.push(("BATON_ATTEMPT".into(), d.attempt.to_string()));
    env.push(("TRACEPARENT".into(), a.traceparent.clone()));
    TaskSpec {
        run_id: d.run_id.clone(),
        task_id: d.task_id.clone(),
        attempt: d.attempt,
        image: d.image.clone(),
        argv: d.argv.clone(),
        env,
        timeout: Duration::from_millis(d.timeout_ms.max(1)),
        limits,
        grant,
        workspace,
        inputs: d.inputs.clone(),
        max_artifact_bytes: match d.max_artifact_bytes {
            0 => ctx.max_artifact_bytes,
            n => n,
        },
        secrets: Default::default(),
    }
}

/// Publish each line on `baton.log.<run>.<task>`; the LOGS stream keeps them.
async fn forward_logs(
    client: async_nats::Client,
    run: String,
    task: String,
    attempt: u32,
    mut rx: tokio::sync::mpsc::Receiver<LogLine>,
    redactor: Arc<Redactor>,
) {
    let subject = subjects::log(&run, &task);
    let attempt = attempt.to_string();
    while let Some(l) = rx.recv().await {
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Baton-Stream",
            if l.stream == Stream::Stdout {
                "stdout"
            } else {
                "stderr"
            },
        );
        h.insert("Baton-Attempt", attempt.as_str());
        if client
            // The runtimes redact the raw streams (catching values split
            // across chunks); this second pass guards lines from anywhere else.
            .publish_with_headers(subject.clone(), h, redactor.str(&l.line).into())
            .await
            .is_err()
        {
            break;
        }
    }
}
