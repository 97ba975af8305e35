//! Client commands: talk to any coordinator's admin API.
//! Exit codes: 0 success, 1 a run ended otherwise or the server failed, 2 bad input.

use std::path::Path;

use baton::admin_client::{self, Admin, ClientTls};
use baton_proto::v1::{self, event::Body};
use futures::StreamExt;

use crate::render;
use crate::{
    inputs_map, CancelArgs, DecideArgs, LogsArgs, RunArgs, RunsArgs, ServerArg, StatusArgs,
    WorkersArgs,
};

pub const BAD_INPUT: u8 = 2;

/// A client for `a.server` with the token and TLS settings `a` points at.
pub(crate) async fn connect(a: &ServerArg) -> Result<Admin, u8> {
    let setup = admin_client::resolve_token(a.token_file.as_deref(), &a.server).and_then(|t| {
        let tls = ClientTls::load(
            a.tls_ca.as_deref(),
            a.tls_client_cert.as_deref(),
            a.tls_client_key.as_deref(),
        )?;
        Ok((t, tls))
    });
    let (token, tls) = match setup {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(BAD_INPUT);
        }
    };
    admin_client::connect(&a.server, token.as_ref(), &tls)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            1
        })
}

/// gRPC status → message and exit code: what the caller got wrong is 2.
pub(crate) fn status_code(s: &tonic::Status) -> u8 {
    eprintln!("error: {}", s.message());
    match s.code() {
        tonic::Code::Unauthenticated => eprintln!(
            "hint: set {} or {} (or pass --token-file) to a token from `baton token create`, or from `baton dev`'s output",
            admin_client::TOKEN_ENV,
            admin_client::TOKEN_FILE_ENV
        ),
        tonic::Code::PermissionDenied => {
            eprintln!("hint: ask an admin for a token with the role named above")
        }
        _ => {}
    }
    match s.code() {
        tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::FailedPrecondition => {
            BAD_INPUT
        }
        _ => 1,
    }
}

pub(crate) fn read_plan(file: &Path) -> Result<String, u8> {
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", file.display());
        BAD_INPUT
    })
}

/// Check a plan offline; `roles` are role files standing in for the registry.
pub fn plan_validate(file: &Path, roles: &[std::path::PathBuf]) -> u8 {
    let yaml = match read_plan(file) {
        Ok(y) => y,
        Err(c) => return c,
    };
    let registry = match crate::role_cmd::from_files(roles) {
        Ok(r) => r,
        Err(c) => return c,
    };
    match baton_plan::load_with_roles(&file.display().to_string(), &yaml, &registry) {
        Ok(plan) => {
            // Warnings do not fail validation: a widened sandbox is allowed, but said out loud.
            for w in baton_plan::sandbox_warnings(&plan, &file.display().to_string()) {
                eprintln!("{w}");
            }
            println!("{}", baton_plan::summary(&plan));
            0
        }
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("{d}");
            }
            BAD_INPUT
        }
    }
}

pub async fn plan_apply(file: &Path, server: &ServerArg) -> u8 {
    let yaml = match read_plan(file) {
        Ok(y) => y,
        Err(c) => return c,
    };
    let mut c = match connect(server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = v1::ApplyPlanRequest {
        plan_yaml: yaml,
        plan_file: file.display().to_string(),
    };
    match c.apply_plan(req).await {
        Ok(r) => {
            let r = r.into_inner();
            println!("registered plan {}\n{}", r.name, r.summary);
            println!("trigger it: nats request baton.trigger.{} '{{}}'", r.name);
            0
        }
        Err(s) => status_code(&s),
    }
}

pub async fn run(a: RunArgs) -> u8 {
    let yaml = match read_plan(&a.file) {
        Ok(y) => y,
        Err(c) => return c,
    };
    // Validate locally first: the same messages, without a round trip.
    if let Err(e) = baton_plan::load(&a.file.display().to_string(), &yaml) {
        for d in &e.diagnostics {
            eprintln!("{d}");
        }
        return BAD_INPUT;
    }
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = v1::SubmitRunRequest {
        plan_yaml: yaml,
        plan_file: a.file.display().to_string(),
        plan_name: String::new(),
        inputs: inputs_map(&a.inputs).into_iter().collect(),
        submitted_by: std::env::var("USER").unwrap_or_default(),
    };
    let run_id = match c.submit_run(req).await {
        Ok(r) => r.into_inner().run_id,
        Err(s) => return status_code(&s),
    };
    if !a.wait {
        if a.json {
            println!("{}", serde_json::json!({ "run_id": run_id }));
        } else {
            println!("{run_id}");
            eprintln!("follow it: baton status {run_id} · baton logs {run_id} --follow");
        }
        return 0;
    }
    if !a.json {
        eprintln!("run {run_id} started");
    }
    follow(&mut c, &run_id, !a.json).await;
    match c
        .get_run(v1::GetRunRequest {
            run_id: run_id.clone(),
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&render::run_json(&r)).unwrap_or_default()
                );
            } else {
                println!("{}", render::run_text(&r));
            }
            u8::from(r.status != "succeeded")
        }
        Err(s) => status_code(&s),
    }
}

/// Print progress from the run's events until it ends.
async fn follow(c: &mut Admin, run_id: &str, print: bool) {
    let mut backoff = 0u64;
    loop {
        let stream = c
            .watch_run(v1::WatchRunRequest {
                run_id: run_id.to_string(),
            })
            .await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(e) => {
                eprintln!(
                    "warning: watching the run failed: {}; retrying",
                    e.message()
                );
                backoff = (backoff + 1).min(5);
                tokio::time::sleep(std::time::Duration::from_secs(backoff)).await;
                continue;
            }
        };
        let mut seen_end = false;
        while let Some(Ok(ev)) = stream.next().await {
            if let Some(e) = ev.event {
                if print {
                    if let Some(line) = render::event_line(&e) {
                        eprintln!("{line}");
                    }
                }
                if matches!(e.body, Some(Body::RunFinished(_))) {
                    seen_end = true;
                    break;
                }
            }
        }
        if seen_end {
            return;
        }
        // The stream broke (coordinator restart): check, then watch again.
        if let Ok(r) = c
            .get_run(v1::GetRunRequest {
                run_id: run_id.to_string(),
            })
            .await
        {
            if r.into_inner().status != "running" {
                return;
            }
        }
    }
}

pub async fn status(a: StatusArgs) -> u8 {
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if a.wait {
        if let Err(s) = c
            .get_run(v1::GetRunRequest {
                run_id: a.run.clone(),
            })
            .await
        {
            return status_code(&s);
        }
        follow(&mut c, &a.run, !a.json).await;
    }
    match c.get_run(v1::GetRunRequest { run_id: a.run }).await {
        Ok(r) => {
            let r = r.into_inner();
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&render::run_json(&r)).unwrap_or_default()
                );
            } else {
                println!("{}", render::run_text(&r));
            }
            if a.wait {
                u8::from(r.status != "succeeded")
            } else {
                0
            }
        }
        Err(s) => status_code(&s),
    }
}

pub async fn runs(a: RunsArgs) -> u8 {
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.list_runs(v1::ListRunsRequest { limit: a.limit }).await {
        Ok(r) => {
            let runs = r.into_inner().runs;
            if a.json {
                let v: Vec<_> = runs
                    .iter()
                    .map(|r| serde_json::json!({"run_id": r.run_id, "plan": r.plan, "status": r.status, "created_ms": r.created_ms, "waiting": r.waiting}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!("{:<20} {:<22} {:<12} WAITING", "RUN", "PLAN", "STATUS");
                for r in runs {
                    println!(
                        "{:<20} {:<22} {:<12} {}",
                        r.run_id, r.plan, r.status, r.waiting
                    );
                }
            }
            0
        }
        Err(s) => status_code(&s),
    }
}

pub async fn workers(a: WorkersArgs) -> u8 {
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.list_workers(v1::ListWorkersRequest {}).await {
        Ok(r) => {
            let workers = r.into_inner().workers;
            if a.json {
                println!("{}", render::workers_json(&workers));
            } else {
                print!("{}", render::workers_text(&workers));
            }
            0
        }
        Err(s) => status_code(&s),
    }
}

pub async fn decide(a: DecideArgs, approve: bool) -> u8 {
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = v1::DecisionRequest {
        run_id: a.run.clone(),
        reason: a.reason,
        by: a.by,
        task_id: a.task.unwrap_or_default(),
    };
    let r = if approve {
        c.approve(req).await
    } else {
        c.reject(req).await
    };
    match r {
        Ok(_) => {
            println!(
                "{} run {}",
                if approve { "approved" } else { "rejected" },
                a.run
            );
            0
        }
        Err(s) => status_code(&s),
    }
}

pub async fn cancel(a: CancelArgs) -> u8 {
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = v1::CancelRunRequest {
        run_id: a.run.clone(),
        reason: a.reason,
        by: a.by,
    };
    match c.cancel_run(req).await {
        Ok(_) => {
            println!("cancelling run {}", a.run);
            0
        }
        Err(s) => status_code(&s),
    }
}

pub async fn logs(a: LogsArgs) -> u8 {
    let mut c = match connect(&a.server).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = v1::LogsRequest {
        run_id: a.run,
        task_id: a.task.clone().unwrap_or_default(),
        follow: a.follow,
    };
    match c.logs(req).await {
        Ok(s) => {
            let mut s = s.into_inner();
            let prefix = a.task.is_none();
            while let Some(Ok(l)) = s.next().await {
                if prefix {
                    println!("[{} #{}] {}", l.task_id, l.attempt, l.line);
                } else {
                    println!("{}", l.line);
                }
            }
            0
        }
        Err(s) => status_code(&s),
    }
}
