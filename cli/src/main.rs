//! `baton`: the one binary. Services (`dev`, `coordinator`, `worker`, `gates`),
//! client commands, and the bench harness.
//!
//! # Layout
//! - this file: the command line, and the one place an [`exit::Exit`] is printed.
//! - `services`: `baton coordinator|worker|gates` under one supervisor; `dev`
//!   (with `dev_roles`, `dev_token`): all of them in one process.
//! - `client`: the admin API's commands (`plan`, `run`, `status`, `runs`, `workers`,
//!   approve/reject, `cancel`, `logs`), printed by `render`; `role_cmd`, `token_cmd`, `audit_cmd`,
//!   `evidence_cmd`: the other client commands.
//! - `exit`: [`exit::Exit`], every command's error: an exit code and its message,
//!   mapped once from `tonic::Status`.
//! - `*_args`: flags shared by several commands (NATS auth, admin auth, hooks,
//!   sandbox and secrets).
//! - `telemetry`: logs (colour only on a TTY) and OTLP traces.
//! - `bench`: `baton bench`; `chaos_cmd`: `baton chaos` over `baton-chaos`.
#![forbid(unsafe_code)]

mod audit_cmd;
mod auth_args;
mod bench;
mod chaos_cmd;
mod client;
mod dev;
mod dev_roles;
mod dev_token;
mod evidence_cmd;
mod exit;
mod hook_args;
mod nats_args;
mod render;
mod role_cmd;
mod sandbox_args;
mod services;
mod telemetry;
mod token_cmd;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7233";
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:7233";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8088";
pub const DEFAULT_NATS_URL: &str = baton_proto::bus::DEFAULT_NATS_URL;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Phased, gated, multi-agent workflows over NATS JetStream"
)]
struct Cli {
    /// Where the admin API is: global, so that `baton --server URL runs`
    /// and `baton runs --server URL` mean the same.
    #[command(flatten)]
    _server: ServerArg,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything in the foreground: nats-server (unless --nats-url), coordinator, gates and a worker for all roles.
    Dev(dev::DevArgs),
    /// Run a coordinator: folds run events, serves the admin API and triggers.
    Coordinator(services::CoordinatorArgs),
    /// Run a worker for some roles.
    Worker(services::WorkerArgs),
    /// Run the gate evaluators.
    Gates(services::GatesArgs),
    /// Validate or register plans.
    #[command(subcommand)]
    Plan(PlanCmd),
    /// Register roles that plans may use without declaring them.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Start a run of a plan file.
    Run(RunArgs),
    /// Show a run.
    Status(StatusArgs),
    /// List recent runs.
    Runs(RunsArgs),
    /// Approve what a run waits for.
    Approve(DecideArgs),
    /// Reject what a run waits for.
    Reject(DecideArgs),
    /// Cancel a run; its running tasks are killed.
    Cancel(CancelArgs),
    /// Show a run's task output.
    Logs(LogsArgs),
    /// List the live workers: roles, slots, what they run.
    Workers(WorkersArgs),
    /// Issue admin API tokens.
    #[command(subcommand)]
    Token(token_cmd::TokenCmd),
    /// Measure orchestration overhead, throughput and container cost; writes target/bench-results.json (or --out).
    Bench(bench::BenchArgs),
    /// Run many runs on separate local processes while killing, freezing and
    /// cutting off parts; check nothing was lost or done twice.
    Chaos(chaos_cmd::ChaosArgs),
    /// Signed evidence of ended runs: keygen, export, verify (offline).
    #[command(subcommand)]
    Evidence(evidence_cmd::EvidenceCmd),
    /// Check or read the runs' hash-chained audit trail, straight from NATS.
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk every run's chain (or one run's); name the first record that was
    /// changed, removed or inserted. Exit 1 on any, 2 when NATS cannot be read.
    Verify {
        /// Only this run.
        #[arg(long)]
        run: Option<String>,
        /// Check the chain alone, not each record against its event on the EVENTS stream.
        #[arg(long)]
        chain_only: bool,
        #[arg(long, env = "BATON_NATS_URL", default_value = DEFAULT_NATS_URL)]
        nats_url: String,
    },
    /// A run's audit records, one per line: n, time, kind, who, what, why.
    Show {
        #[arg(long)]
        run: String,
        #[arg(long, env = "BATON_NATS_URL", default_value = DEFAULT_NATS_URL)]
        nats_url: String,
    },
}

#[derive(Subcommand)]
enum PlanCmd {
    /// Check a plan and print a summary; exit 2 with `file:line:col: …` errors.
    Validate {
        file: PathBuf,
        /// A role file (`roles: { id: spec }`) standing in for the registry; repeat for more.
        #[arg(long = "roles")]
        roles: Vec<PathBuf>,
    },
    /// Register a plan by its name (for triggers and `baton run --plan`).
    Apply {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Subcommand)]
enum RoleCmd {
    /// Register the roles of a file `roles: { <id>: <spec> }`; prints created/updated/unchanged per role.
    Apply {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the registered roles with their specs.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
}

/// Where the admin API is and how to prove who we are. There is no flag
/// that takes a token: set BATON_TOKEN, or point at a file.
#[derive(Args, Clone)]
pub struct ServerArg {
    /// Coordinator admin address; `https://…` for TLS.
    #[arg(long, global = true, env = "BATON_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// File holding the admin token (first line). Else BATON_TOKEN, else the
    /// token `baton dev` wrote for this server.
    #[arg(long, global = true, env = "BATON_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify an https:// server with (default: the system's roots).
    #[arg(long, global = true, env = "BATON_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require mTLS.
    #[arg(
        long,
        global = true,
        env = "BATON_TLS_CLIENT_CERT",
        value_name = "PATH",
        requires = "tls_client_key"
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "BATON_TLS_CLIENT_KEY",
        value_name = "PATH",
        requires = "tls_client_cert"
    )]
    pub tls_client_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct RunArgs {
    /// The plan file.
    pub file: PathBuf,
    /// An input, `key=value`; repeat for more.
    #[arg(long = "input", short = 'i', value_parser = parse_kv)]
    pub inputs: Vec<(String, String)>,
    /// Follow the run to its end and exit 0 only if it succeeded.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON: the final run with --wait, else `{"run_id": …}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Args)]
pub struct StatusArgs {
    pub run: String,
    #[arg(long)]
    pub json: bool,
    /// Follow the run to its end; exit 0 only if it succeeded.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Args)]
pub struct RunsArgs {
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Args)]
pub struct WorkersArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Args)]
pub struct DecideArgs {
    pub run: String,
    /// Why; required, and recorded with the decision.
    #[arg(long, value_parser = non_empty_reason)]
    pub reason: String,
    /// Only this task (default: whatever the run waits for).
    #[arg(long)]
    pub task: Option<String>,
    /// Ignored: the decision is recorded under the name of the caller's token.
    #[arg(long, hide = true, default_value = "")]
    pub by: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Args)]
pub struct CancelArgs {
    pub run: String,
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Ignored: the cancel is recorded under the name of the caller's token.
    #[arg(long, hide = true, default_value = "")]
    pub by: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Args)]
pub struct LogsArgs {
    pub run: String,
    pub task: Option<String>,
    /// Keep printing until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Sandboxed containers through Docker (the default).
    Docker,
    /// Plain subprocesses, UNSANDBOXED: only for machines without Docker.
    Process,
    /// Runs nothing; for benchmarks only.
    Noop,
}

/// Every decision is recorded with its reason, so an empty one is refused here
/// already (the coordinator refuses it too).
fn non_empty_reason(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "a decision needs a reason, e.g. --reason \"diff reviewed, canary green\"".into(),
        );
    }
    Ok(s.to_string())
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not key=value — write e.g. --input version=v3.1.0"))
}

pub fn inputs_map(v: &[(String, String)]) -> BTreeMap<String, String> {
    v.iter().cloned().collect()
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Multi-thread: the OTLP batch exporter's flush hangs on a current-thread runtime.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = exit::Exit::failure(format_args!("cannot start the async runtime: {e}"));
            return std::process::ExitCode::from(exit::finish(Err(e)));
        }
    };
    let r = rt.block_on(async move {
        match cli.cmd {
            Cmd::Dev(a) => dev::dev(a).await,
            Cmd::Coordinator(a) => services::coordinator(a).await,
            Cmd::Worker(a) => services::worker(a).await,
            Cmd::Gates(a) => services::gates(a).await,
            Cmd::Plan(PlanCmd::Validate { file, roles }) => client::plan_validate(&file, &roles),
            Cmd::Plan(PlanCmd::Apply { file, server }) => client::plan_apply(&file, &server).await,
            Cmd::Role(RoleCmd::Apply { file, server }) => role_cmd::apply(&file, &server).await,
            Cmd::Role(RoleCmd::List { server }) => role_cmd::list(&server).await,
            Cmd::Token(t) => token_cmd::run(t),
            Cmd::Run(a) => client::run(a).await,
            Cmd::Status(a) => client::status(a).await,
            Cmd::Runs(a) => client::runs(a).await,
            Cmd::Approve(a) => client::decide(a, true).await,
            Cmd::Reject(a) => client::decide(a, false).await,
            Cmd::Cancel(a) => client::cancel(a).await,
            Cmd::Logs(a) => client::logs(a).await,
            Cmd::Workers(a) => client::workers(a).await,
            // The bench reports its outcome itself; only its code is left.
            Cmd::Bench(a) => exit::Exit::from_code(bench::run(a).await),
            Cmd::Chaos(a) => chaos_cmd::run(a).await,
            Cmd::Audit(AuditCmd::Verify {
                run,
                chain_only,
                nats_url,
            }) => audit_cmd::verify(&nats_url, run.as_deref(), chain_only).await,
            Cmd::Audit(AuditCmd::Show { run, nats_url }) => audit_cmd::show(&nats_url, &run).await,
            Cmd::Evidence(c) => evidence_cmd::run(c).await,
        }
    });
    // The one place a command's outcome is said and becomes the exit code;
    // the runtime is still up, as it was when commands printed their own errors.
    let code = exit::finish(r);
    drop(rt);
    std::process::ExitCode::from(code)
}
