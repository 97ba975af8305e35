//! Client commands: talk to any coordinator's admin API.
//! Exit codes ([`crate::exit`]): 0 success, 1 a run ended otherwise or the server failed, 2 bad input.

use std::path::Path;

use baton_proto::client::{self as admin_client, Admin, ClientTls};
use baton_proto::v1::{self, event::Body};
use futures::StreamExt;

use crate::exit::{Exit, FAILED};
use crate::render;
use crate::{
    inputs_map, CancelArgs, DecideArgs, LogsArgs, RunArgs, RunsArgs, ServerArg, StatusArgs,
    WorkersArgs,
};

/// A client for `a.server` with the token and TLS settings `a` points at.
pub(crate) async fn connect(a: &ServerArg) -> Result<Admin, Exit> {
    let token =
        admin_client::resolve_token(a.token_file.as_deref(), &a.server).map_err(Exit::usage)?;
    let tls = ClientTls::load(
        a.tls_ca.as_deref(),
        a.tls_client_cert.as_deref(),
        a.tls_client_key.as_deref(),
    )
    .map_err(Exit::usage)?;
    admin_client::connect(&a.server, token.as_ref(), &tls)
        .await
        .map_err(Exit::failure)
}

pub(crate) fn read_plan(file: &Path) -> Result<String, Exit> {
    std::fs::read_to_string(file)
        .map_err(|e| Exit::usage(format_args!("cannot read {}: {e}", file.display())))
}

/// Exit 1, with nothing more to say, unless the run succeeded.
fn succeeded(r: &v1::Run) -> Result<(), Exit> {
    if r.run_status() == v1::RunStatus::Succeeded {
        Ok(())
    } else {
        Err(Exit::silent(FAILED))
    }
}

/// Check a plan offline; `roles` are role files standing in for the registry.
pub fn plan_validate(file: &Path, roles: &[std::path::PathBuf]) -> Result<(), Exit> {
    let yaml = read_plan(file)?;
    let registry = crate::role_cmd::from_files(roles)?;
    let plan = baton_plan::load_with_roles(&file.display().to_string(), &yaml, &registry)
        .map_err(|e| Exit::diagnostics(&e.diagnostics))?;
    // Warnings do not fail validation: a widened sandbox is allowed, but said out loud.
    for w in baton_plan::sandbox_warnings(&plan, &file.display().to_string()) {
        eprintln!("{w}");
    }
    println!("{}", baton_plan::summary(&plan));
    Ok(())
}

pub async fn plan_apply(file: &Path, server: &ServerArg) -> Result<(), Exit> {
    let yaml = read_plan(file)?;
    let mut c = connect(server).await?;
    let req = v1::ApplyPlanRequest {
        plan_yaml: yaml,
        plan_file: file.display().to_string(),
    };
    let r = c.apply_plan(req).await?.into_inner();
    println!("registered plan {}\n{}", r.name, r.summary);
    println!("trigger it: nats request baton.trigger.{} '{{}}'", r.name);
    Ok(())
}

pub async fn run(a: RunArgs) -> Result<(), Exit> {
    let yaml = read_plan(&a.file)?;
    // Validate locally first: the same messages, without a round trip.
    baton_plan::load(&a.file.display().to_string(), &yaml)
        .map_err(|e| Exit::diagnostics(&e.diagnostics))?;
    let mut c = connect(&a.server).await?;
    let req = v1::SubmitRunRequest {
        plan_yaml: yaml,
        plan_file: a.file.display().to_string(),
        plan_name: String::new(),
        inputs: inputs_map(&a.inputs).into_iter().collect(),
        submitted_by: std::env::var("USER").unwrap_or_default(),
    };
    let run_id = c.submit_run(req).await?.into_inner().run_id;
    if !a.wait {
        if a.json {
            println!("{}", serde_json::json!({ "run_id": run_id }));
        } else {
            println!("{run_id}");
            eprintln!("follow it: baton status {run_id} · baton logs {run_id} --follow");
        }
        return Ok(());
    }
    if !a.json {
        eprintln!("run {run_id} started");
    }
    follow(&mut c, &run_id, !a.json).await;
    let r = c
        .get_run(v1::GetRunRequest {
            run_id: run_id.clone(),
        })
        .await?
        .into_inner();
    print_run(&r, a.json);
    succeeded(&r)
}

/// The run as JSON or as text, on stdout.
fn print_run(r: &v1::Run, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::run_json(r)).unwrap_or_default()
        );
    } else {
        println!("{}", render::run_text(r));
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
            if r.into_inner().run_status() != v1::RunStatus::Running {
                return;
            }
        }
    }
}

pub async fn status(a: StatusArgs) -> Result<(), Exit> {
    let mut c = connect(&a.server).await?;
    if a.wait {
        c.get_run(v1::GetRunRequest {
            run_id: a.run.clone(),
        })
        .await?;
        follow(&mut c, &a.run, !a.json).await;
    }
    let r = c
        .get_run(v1::GetRunRequest { run_id: a.run })
        .await?
        .into_inner();
    print_run(&r, a.json);
    if a.wait {
        succeeded(&r)
    } else {
        Ok(())
    }
}

pub async fn runs(a: RunsArgs) -> Result<(), Exit> {
    let mut c = connect(&a.server).await?;
    let runs = c
        .list_runs(v1::ListRunsRequest { limit: a.limit })
        .await?
        .into_inner()
        .runs;
    if a.json {
        let v: Vec<_> = runs
            .iter()
            .map(|r| serde_json::json!({"run_id": r.run_id, "plan": r.plan, "status": r.run_status().as_str(), "created_ms": r.created_ms, "waiting": r.waiting}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        println!("{:<20} {:<22} {:<12} WAITING", "RUN", "PLAN", "STATUS");
        for r in runs {
            println!(
                "{:<20} {:<22} {:<12} {}",
                r.run_id,
                r.plan,
                r.run_status().as_str(),
                r.waiting
            );
        }
    }
    Ok(())
}

pub async fn workers(a: WorkersArgs) -> Result<(), Exit> {
    let mut c = connect(&a.server).await?;
    let workers = c
        .list_workers(v1::ListWorkersRequest {})
        .await?
        .into_inner()
        .workers;
    if a.json {
        println!("{}", render::workers_json(&workers));
    } else {
        print!("{}", render::workers_text(&workers));
    }
    Ok(())
}

pub async fn decide(a: DecideArgs, approve: bool) -> Result<(), Exit> {
    let mut c = connect(&a.server).await?;
    let req = v1::DecisionRequest {
        run_id: a.run.clone(),
        reason: a.reason,
        by: a.by,
        task_id: a.task.unwrap_or_default(),
    };
    if approve {
        c.approve(req).await?;
    } else {
        c.reject(req).await?;
    }
    println!(
        "{} run {}",
        if approve { "approved" } else { "rejected" },
        a.run
    );
    Ok(())
}

pub async fn cancel(a: CancelArgs) -> Result<(), Exit> {
    let mut c = connect(&a.server).await?;
    let req = v1::CancelRunRequest {
        run_id: a.run.clone(),
        reason: a.reason,
        by: a.by,
    };
    c.cancel_run(req).await?;
    println!("cancelling run {}", a.run);
    Ok(())
}

pub async fn logs(a: LogsArgs) -> Result<(), Exit> {
    let mut c = connect(&a.server).await?;
    let req = v1::LogsRequest {
        run_id: a.run,
        task_id: a.task.clone().unwrap_or_default(),
        follow: a.follow,
    };
    let mut s = c.logs(req).await?.into_inner();
    let prefix = a.task.is_none();
    while let Some(Ok(l)) = s.next().await {
        if prefix {
            println!("[{} #{}] {}", l.task_id, l.attempt, l.line);
        } else {
            println!("{}", l.line);
        }
    }
    Ok(())
}
