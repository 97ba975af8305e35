//! Canary secrets: a whole Baton in this process (real nats-server,
//! coordinator, gates, a Docker worker) runs tasks that print two random
//! secrets raw, base64, URL-encoded, split over two writes, and put them in
//! outputs, an error and an artifact. Then every byte Baton stored — the
//! nats-server store (streams, KV, object store), the services' log output,
//! and the run's events and logs read back over the API — is searched for
//! each secret in each form: there must be none. The worker gives only what
//! it allows (`CANARY_*` and one folder): another variable, a file outside
//! the folder and links out of it are refused, and never read.
//!
//! The other tests attack the worker's own credentials with `baton worker`
//! started as an operator starts it: its NATS password in
//! `BATON_NATS_PASSWORD`, or in a file inside the folder it allows.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use baton_proto::nats_auth::{NatsAuth, Secret};
use baton_proto::v1;
use baton_test_support::NatsServer;
use baton_worker::secrets::SecretPolicy;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::support::logs::{with_captured_logs, Captured};
use crate::support::{self, eventually};

const PLAN: &str = include_str!("fixtures/canary.yaml");

fn canary(label: &str) -> String {
    // Characters that URL- and base64-encoding both change.
    format!("cnry-{label}-{:016x}/a+b=c?d", rand::random::<u64>())
}

/// The secret in every form a task above prints it, computed here
/// independently of the worker's redactor.
fn forms(secret: &str) -> Vec<(String, Vec<u8>)> {
    let b = secret.as_bytes();
    let url = secret
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D")
        .replace('?', "%3F");
    vec![
        ("raw".into(), b.to_vec()),
        ("base64".into(), STANDARD.encode(b).into_bytes()),
        (
            "base64 unpadded".into(),
            STANDARD_NO_PAD.encode(b).into_bytes(),
        ),
        ("url-safe base64".into(), URL_SAFE.encode(b).into_bytes()),
        (
            "url-safe base64 unpadded".into(),
            URL_SAFE_NO_PAD.encode(b).into_bytes(),
        ),
        ("url-encoded".into(), url.into_bytes()),
    ]
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Every regular file under `dir`.
fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// A NATS password no test output holds by chance.
fn random_password() -> String {
    format!(
        "natspw-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Stop `local`, then `nats`; every file NATS stored.
async fn stop_and_read_store(
    mut local: baton::local::LocalBaton,
    nats: &mut NatsServer,
) -> Vec<(String, Vec<u8>)> {
    local.cancel.cancel();
    for part in std::mem::take(&mut local.parts) {
        let _ = tokio::time::timeout(Duration::from_secs(10), part).await;
    }
    nats.kill();
    stored_files(nats.store_dir())
}

/// Every file NATS stored under `dir`: its path and its bytes.
fn stored_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect()
}

/// A Baton in this process, with one Docker worker that allows `CANARY_*`
/// and files under `dir`, runs `plan` to its end.
async fn run_canary_plan(
    nats: &NatsServer,
    dir: &std::path::Path,
    plan: String,
    file: &str,
    captured: &Captured,
) -> (
    baton::local::LocalBaton,
    baton_proto::client::Admin,
    String,
    v1::Run,
) {
    let (local, admin) = support::dev_baton(
        nats,
        baton_worker::Options {
            concurrency: 4,
            grace: Duration::from_secs(2),
            secret_policy: SecretPolicy::new(["CANARY_*"], [dir]),
            ..Default::default()
        },
    )
    .await;
    let run_id = support::submit_to(&admin, &plan, file).await;
    let run = baton::local::wait_end(&admin, &run_id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| {
            let logs = captured.bytes();
            panic!("{e}\nservice logs:\n{}", String::from_utf8_lossy(&logs))
        });
    (local, admin, run_id, run)
}

/// Every byte the run left anywhere: the API's answers (logs, events, the
/// run), then, with everything stopped so that the store is complete and
/// quiet, every file of the NATS store and the services' log output.
async fn everything_stored(
    mut nats: NatsServer,
    local: baton::local::LocalBaton,
    admin: &baton_proto::client::Admin,
    run: &v1::Run,
    logs: &[v1::LogEntry],
    captured: &Captured,
) -> Vec<(String, Vec<u8>)> {
    let mut api_bytes: Vec<u8> = Vec::new();
    for l in logs {
        api_bytes.extend_from_slice(format!("{l:?}\n").as_bytes());
    }
    for e in support::events(admin, &run.run_id).await {
        api_bytes.extend(e.encode_to_vec());
        api_bytes.extend_from_slice(format!("{e:?}\n").as_bytes());
    }
    api_bytes.extend_from_slice(format!("{run:?}").as_bytes());
    let mut stored = stop_and_read_store(local, &mut nats).await;
    let store_files = stored.len();
    stored.push(("service logs".into(), captured.bytes()));
    stored.push(("events, logs and run via the API".into(), api_bytes));
    let total: usize = stored.iter().map(|(_, b)| b.len()).sum();
    let redacted: usize = stored.iter().map(|(_, b)| count(b, b"[REDACTED:")).sum();
    println!(
        "searched {total} bytes in {} store files, the service logs and the API answers; {redacted} redaction markers",
        store_files
    );
    assert!(
        redacted > 0,
        "nothing redacted was stored: the search proves nothing"
    );
    stored
}

#[test]
fn canary_secrets_are_stored_nowhere() {
    with_captured_logs(2, canary_run);
}

async fn canary_run(captured: Captured) {
    let env_secret = canary("env");
    let file_secret = canary("file");
    let unlisted_secret = canary("unlisted");
    let outside_secret = canary("outside");
    let tag = rand::random::<u32>();
    let env_var = format!("CANARY_{tag:08x}");
    let unlisted_var = format!("UNLISTED_{tag:08x}");
    std::env::set_var(&env_var, &env_secret);
    std::env::set_var(&unlisted_var, &unlisted_secret);
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("deploy.key");
    std::fs::write(&key_path, format!("{file_secret}\n")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside_path = elsewhere.path().join("outside.key");
    std::fs::write(&outside_path, &outside_secret).unwrap();
    let environ_link = dir.path().join("environ");
    std::os::unix::fs::symlink("/proc/self/environ", &environ_link).unwrap();
    let outside_link = dir.path().join("outside");
    std::os::unix::fs::symlink(&outside_path, &outside_link).unwrap();
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let plan = PLAN
        .replace("MISSING_VAR", &format!("{env_var}_MISSING"))
        .replace("UNLISTED_VAR", &unlisted_var)
        .replace("ENV_VAR", &env_var)
        .replace("KEY_PATH", key_path.to_str().unwrap())
        .replace("OUTSIDE_PATH", outside_path.to_str().unwrap())
        .replace("ENVIRON_LINK", environ_link.to_str().unwrap())
        .replace("OUTSIDE_LINK", outside_link.to_str().unwrap())
        .replace("SHA_S", &sha(env_secret.as_bytes()))
        .replace("SHA_K", &sha(format!("{file_secret}\n").as_bytes()));

    let nats = NatsServer::start();
    let (local, admin, run_id, run) =
        run_canary_plan(&nats, dir.path(), plan, "canary.yaml", &captured).await;

    // The secrets reached the tasks (else nothing was at risk of leaking).
    assert_eq!(
        support::task(&run, "print").task_status(),
        v1::TaskStatus::Succeeded,
        "{run:#?}"
    );
    assert_eq!(
        support::task(&run, "check").task_status(),
        v1::TaskStatus::Succeeded,
        "{run:#?}"
    );
    assert_eq!(support::task(&run, "print").artifacts.len(), 3, "{run:#?}");
    let fails = support::task(&run, "fails");
    assert_eq!(fails.task_status(), v1::TaskStatus::Failed);
    assert_eq!(fails.error, "deploy failed with token [REDACTED:S]");
    let missing = support::task(&run, "missing");
    assert_eq!(missing.task_status(), v1::TaskStatus::Failed);
    assert!(
        missing.error.starts_with(&format!(
            "secret `M`: the worker has no environment variable {env_var}_MISSING"
        )),
        "{}",
        missing.error
    );
    // Refused before anything is read, for good, naming what to allow.
    for (id, want) in [
        (
            "unlisted",
            format!("secret `U`: from_env {unlisted_var} is not allowed on worker "),
        ),
        (
            "outside",
            format!("secret `o`: from_file {} is not allowed on worker ", outside_path.display()),
        ),
        (
            "environ",
            format!(
                "secret `e`: from_file {} leads through a symbolic link into /proc, a system folder",
                environ_link.display()
            ),
        ),
        (
            "linked_out",
            format!(
                "secret `l`: from_file {} leads through a symbolic link outside every --allow-secret-dir",
                outside_link.display()
            ),
        ),
    ] {
        let t = support::task(&run, id);
        assert_eq!((t.task_status(), t.attempts), (v1::TaskStatus::Failed, 1), "{t:#?}");
        assert!(t.error.starts_with(&want), "{id}: {}", t.error);
    }
    let unlisted = support::task(&run, "unlisted");
    assert!(
        unlisted
            .error
            .ends_with(&format!("— start the worker with --allow-secret-env {unlisted_var} (or a prefix such as DEPLOY_*)")),
        "{}",
        unlisted.error
    );
    assert!(support::task(&run, "outside").error.ends_with(&format!(
        "— start the worker with --allow-secret-dir {}",
        elsewhere.path().display()
    )),);

    let logs = support::log_entries(&admin, &run_id, "").await;
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.task_id == "print")
        .map(|l| l.line.as_str())
        .collect();
    // stdout and stderr are two streams: their lines interleave in any order.
    assert!(lines.contains(&"raw [REDACTED:S]"), "{lines:#?}");
    assert!(lines.contains(&"stderr [REDACTED:S]"), "{lines:#?}");
    assert!(lines.contains(&"file [REDACTED:key]"), "{lines:#?}");
    assert!(lines.contains(&"split [REDACTED:S]"), "{lines:#?}");
    assert!(lines.contains(&"split [REDACTED:key]"), "{lines:#?}");

    // The secret volume went with the attempt.
    eventually(
        "the secret volume is removed",
        Duration::from_secs(20),
        async || {
            let out = std::process::Command::new("docker")
                .args(["volume", "ls", "-q", "--filter"])
                .arg(format!("label=org.baton.run={run_id}"))
                .output()
                .expect("docker volume ls");
            if out.stdout.is_empty() {
                return Ok(());
            }
            Err(format!(
                "volumes left: {}",
                String::from_utf8_lossy(&out.stdout)
            ))
        },
    )
    .await;

    let stored = everything_stored(nats, local, &admin, &run, &logs, &captured).await;

    let mut found = Vec::new();
    for (label, secret) in [
        ("env", &env_secret),
        ("file", &file_secret),
        ("unlisted", &unlisted_secret),
        ("outside", &outside_secret),
    ] {
        for (form, needle) in forms(secret) {
            for (place, bytes) in &stored {
                let n = count(bytes, &needle);
                if n > 0 {
                    found.push(format!("{label} secret, {form}: {n}× in {place}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "secrets stored:\n{}", found.join("\n"));
}

// ---------------------------------------------------------------------------
// Plans that ask the worker for Baton's own credentials.

/// The attack: the plan names the worker's own NATS password as its secret
/// and prints it reversed, a form redaction does not recognise.
const STEAL_PLAN: &str = include_str!("fixtures/canary-steal.yaml");

/// What the worker answers the attack with.
const STEAL_REFUSED: &str = "secret `P`: from_env BATON_NATS_PASSWORD is Baton's own credential and is never given to tasks, whatever --allow-secret-env says — give the task a variable of its own";

/// `baton worker` in its own process, started the way an operator starts
/// one; its stdout and stderr go to a file.
struct WorkerProcess {
    child: std::process::Child,
    output: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    fn start(nats_url: &str, id: &str, args: &[&str], env: &[(&str, &str)]) -> WorkerProcess {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("worker.log");
        let log = std::fs::File::create(&output).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(["worker", "--nats-url", nats_url, "--id", id])
            .args(["--roles", "dev", "--concurrency", "4", "--grace-secs", "2"])
            .args(args);
        // Only the settings the test gives, none of this process's.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("BATON_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "info,baton_worker=debug")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        WorkerProcess {
            child: cmd.spawn().expect("start baton worker"),
            output,
            _dir: dir,
        }
    }

    fn output(&self) -> Vec<u8> {
        std::fs::read(&self.output).unwrap_or_default()
    }

    /// SIGTERM, as a supervisor stops it; then, once it exited (or after
    /// 20 s: dropping it kills it), all it printed.
    async fn stop(mut self) -> Vec<u8> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        // Not a failure if it does not exit: the timeout gives up before
        // `eventually` would, and what it printed is read either way.
        let grace = Duration::from_secs(20);
        let exited = eventually("the worker exits", grace * 2, async || {
            self.child.try_wait().unwrap().map(drop)
        });
        let _ = tokio::time::timeout(grace, exited).await;
        self.output()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A nats-server on which the coordinator and gates are `baton` and the
/// worker is `worker`, with `worker_password`.
fn server_with_worker_password(worker_password: &str) -> (NatsServer, NatsAuth) {
    let services = format!(
        "svc-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let nats = NatsServer::start_with_config(&format!(
        "authorization {{\n  users = [\n    {{ user: \"baton\", password: \"{services}\" }}\n    {{ user: \"worker\", password: \"{worker_password}\" }}\n  ]\n}}\n"
    ));
    let auth = NatsAuth {
        user: Some("baton".into()),
        password: Some(Secret::new(services)),
        ..Default::default()
    };
    (nats, auth)
}

/// Everything a run left behind, for searching.
struct Leftovers {
    run: v1::Run,
    events: Vec<v1::Event>,
    logs: Vec<v1::LogEntry>,
    /// (where, bytes): the store's files, the services' logs, the worker's
    /// output and the API's answers.
    stored: Vec<(String, Vec<u8>)>,
}

/// Run `plan` on a Baton whose only worker is `worker` (its own process),
/// then stop everything and collect every byte that was stored.
async fn run_on_worker_process(
    mut nats: NatsServer,
    auth: NatsAuth,
    plan: &str,
    start_worker: impl FnOnce(&str) -> WorkerProcess,
    captured: &Captured,
) -> Leftovers {
    support::ensure_agent_image();
    let coordinator = baton_coordinator::Options {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        nats_auth: auth,
        ..Default::default()
    };
    let local = Box::pin(baton::local::LocalBaton::start_with(
        &nats.url(),
        coordinator,
        vec![],
    ))
    .await
    .expect("Baton starts");
    let worker = start_worker(&nats.url());
    let admin = local.admin().await.expect("admin connects");
    let run_id = support::submit_to(&admin, plan, "hostile.yaml").await;
    let run = baton::local::wait_end(&admin, &run_id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nworker output:\n{}",
                String::from_utf8_lossy(&worker.output())
            )
        });
    let events = support::events(&admin, &run_id).await;
    let logs = support::log_entries(&admin, &run_id, "").await;
    let mut api_bytes: Vec<u8> = Vec::new();
    for l in &logs {
        api_bytes.extend_from_slice(format!("{l:?}\n").as_bytes());
    }
    for e in &events {
        api_bytes.extend(e.encode_to_vec());
        api_bytes.extend_from_slice(format!("{e:?}\n").as_bytes());
    }
    api_bytes.extend_from_slice(format!("{run:?}").as_bytes());

    let worker_output = worker.stop().await;
    let mut stored = stop_and_read_store(local, &mut nats).await;
    stored.push(("service logs".into(), captured.bytes()));
    stored.push(("the worker's output".into(), worker_output));
    stored.push(("events, logs and run via the API".into(), api_bytes));
    Leftovers {
        run,
        events,
        logs,
        stored,
    }
}

/// Where each secret appears, in its raw, reversed and base64 forms.
fn leaks(stored: &[(String, Vec<u8>)], secrets: &[(&str, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for (label, secret) in secrets {
        let reversed: String = secret.chars().rev().collect();
        for (how, value) in [("raw", secret.to_string()), ("reversed", reversed)] {
            let b = value.as_bytes();
            let needles = [
                (how.to_string(), b.to_vec()),
                (format!("{how}, base64"), STANDARD.encode(b).into_bytes()),
                (
                    format!("{how}, base64 unpadded"),
                    STANDARD_NO_PAD.encode(b).into_bytes(),
                ),
            ];
            for (form, needle) in needles {
                for (place, bytes) in stored {
                    let n = count(bytes, &needle);
                    if n > 0 {
                        found.push(format!("{label}, {form}: {n}× in {place}"));
                    }
                }
            }
        }
    }
    found
}

/// The worker's NATS password appears nowhere in `stored`, in any form.
fn assert_password_kept(stored: &[(String, Vec<u8>)], password: &str) {
    let found = leaks(stored, &[("the worker's NATS password", password)]);
    assert!(
        found.is_empty(),
        "the worker's NATS password got out:\n{}",
        found.join("\n")
    );
}

/// Whether the attempts of `task` that finished were refused for good.
fn finished_permanently(events: &[v1::Event], task: &str) -> Vec<bool> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(v1::event::Body::TaskFinished(f)) if f.task_id == task => Some(f.permanent),
            _ => None,
        })
        .collect()
}

/// The attack, exactly: a worker started as in production, its NATS
/// password in `BATON_NATS_PASSWORD`; a plan takes that variable as its
/// secret and prints it reversed. The task must fail for good with the
/// refusal, and the password must appear nowhere in any form.
#[test]
fn a_plan_cannot_take_the_workers_nats_password() {
    with_captured_logs(2, nats_password_run);
}

async fn nats_password_run(captured: Captured) {
    let password = random_password();
    let (nats, auth) = server_with_worker_password(&password);
    let left = run_on_worker_process(
        nats,
        auth,
        STEAL_PLAN,
        |url| {
            WorkerProcess::start(
                url,
                "hostile-w1",
                &["--nats-user", "worker"],
                &[("BATON_NATS_PASSWORD", &password)],
            )
        },
        &captured,
    )
    .await;

    let take = support::task(&left.run, "take");
    let lines: Vec<&str> = left.logs.iter().map(|l| l.line.as_str()).collect();
    println!(
        "run {}; task take: {} after {} attempt(s), error {:?}, result {:?}; its log: {lines:?}",
        left.run.run_status(),
        take.task_status(),
        take.attempts,
        take.error,
        take.result_json
    );
    assert_password_kept(&left.stored, &password);
    assert_eq!(
        take.task_status(),
        v1::TaskStatus::Failed,
        "{:#?}",
        left.run
    );
    assert_eq!(take.error, STEAL_REFUSED);
    assert_eq!(take.attempts, 1, "a refusal is not retried: {take:#?}");
    assert_eq!(finished_permanently(&left.events, "take"), [true]);
    assert!(
        lines.is_empty(),
        "the task never ran, yet it logged {lines:?}"
    );
}

/// Each task asks for the worker's own NATS password another way, on a
/// worker that allows every variable and the very folder its password file
/// is in; one asks for an allowed variable, which it gets.
const OWN_PLAN: &str = include_str!("fixtures/canary-own.yaml");

/// `--allow-secret-env '*'` and an allowed folder that holds the worker's
/// password file: Baton's own stay refused by name, by path, through a
/// symbolic or hard link, and as a copy under another name; an allowed
/// variable still works. Flags and `BATON_ALLOW_SECRET_DIR` both count.
#[test]
fn allowing_everything_still_keeps_batons_own_credentials() {
    with_captured_logs(2, allowing_everything_run);
}

async fn allowing_everything_run(captured: Captured) {
    let password = random_password();
    let deploy_token = canary("deploy");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::fs::write(d.join("nats.pw"), format!("{password}\n")).unwrap();
    std::os::unix::fs::symlink(d.join("nats.pw"), d.join("link")).unwrap();
    std::fs::hard_link(d.join("nats.pw"), d.join("hard")).unwrap();
    std::fs::write(d.join("copy"), &password).unwrap();
    let plan = OWN_PLAN.replace("DIR", d.to_str().unwrap()).replace(
        "WANT_SHA",
        &hex::encode(Sha256::digest(deploy_token.as_bytes())),
    );
    let (nats, auth) = server_with_worker_password(&password);
    let pw_file = d.join("nats.pw").display().to_string();
    let left = run_on_worker_process(
        nats,
        auth,
        &plan,
        |url| {
            WorkerProcess::start(
                url,
                "hostile-w2",
                &[
                    "--nats-user",
                    "worker",
                    "--nats-password-file",
                    &pw_file,
                    "--allow-secret-env",
                    "*",
                ],
                &[
                    ("BATON_ALLOW_SECRET_DIR", d.to_str().unwrap()),
                    ("DEPLOY_TOKEN", &deploy_token),
                    ("DEPLOY_COPY", &password),
                    ("NATS_TOKEN", &password),
                ],
            )
        },
        &captured,
    )
    .await;

    assert_password_kept(&left.stored, &password);
    assert_eq!(
        support::task(&left.run, "allowed").task_status(),
        v1::TaskStatus::Succeeded,
        "{:#?}",
        left.run
    );
    let p = |f: &str| format!("{}/{f}", d.display());
    for (id, want) in [
        (
            "by_name",
            "from_env BATON_NATS_PASSWORD is Baton's own credential and is never given to tasks"
                .to_string(),
        ),
        (
            "nats_named",
            "from_env NATS_TOKEN is named like a NATS credential".to_string(),
        ),
        (
            "env_copy",
            "from_env DEPLOY_COPY holds the same value as one of Baton's own credentials"
                .to_string(),
        ),
        (
            "own_file",
            format!("from_file {} is one of Baton's own files", p("nats.pw")),
        ),
        (
            "link",
            format!(
                "from_file {} leads through a symbolic link to one of Baton's own files",
                p("link")
            ),
        ),
        (
            "hard_link",
            format!(
                "from_file {} is a hard link to one of Baton's own files",
                p("hard")
            ),
        ),
        (
            "file_copy",
            format!(
                "from_file {} holds the same value as one of Baton's own credentials",
                p("copy")
            ),
        ),
        (
            "environ",
            "from_file /proc/self/environ is under /proc, a system folder".to_string(),
        ),
    ] {
        let t = support::task(&left.run, id);
        assert_eq!(
            (t.task_status(), t.attempts),
            (v1::TaskStatus::Failed, 1),
            "{t:#?}"
        );
        assert!(t.error.contains(&want), "{id}: {}", t.error);
        assert_eq!(finished_permanently(&left.events, id), [true], "{id}");
    }
}

// ---------------------------------------------------------------------------
// Redaction of artifact names, of each line of a multi-line secret, and of
// hex and JSON `\u` forms.

const REDACTION_PLAN: &str = include_str!("fixtures/canary-names-lines.yaml");

/// A secret in every form the worker promises to redact, computed here
/// independently of the worker: raw, base64 (standard and URL-safe, at each
/// byte alignment, as inside a longer base64 text such as a base64url
/// object name), hex, JSON `\u` escapes, JSON string escape and
/// percent-encoding.
fn redaction_needles(secret: &str) -> Vec<(String, Vec<u8>)> {
    let b = secret.as_bytes();
    let hex = hex::encode(b);
    let escaped: String = b.iter().map(|x| format!("\\u{x:04x}")).collect();
    let json = serde_json::to_string(secret).unwrap();
    let url: String = b
        .iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    let mut out = vec![
        ("raw".to_string(), b.to_vec()),
        ("hex".to_string(), hex.clone().into_bytes()),
        ("HEX".to_string(), hex.to_uppercase().into_bytes()),
        ("\\u escapes".to_string(), escaped.clone().into_bytes()),
        (
            "\\u escapes, upper".to_string(),
            escaped.to_uppercase().replace("\\U", "\\u").into_bytes(),
        ),
        (
            "JSON-escaped".to_string(),
            json.as_bytes()[1..json.len() - 1].to_vec(),
        ),
        ("url-encoded".to_string(), url.into_bytes()),
    ];
    for (label, engine) in [
        ("base64", &STANDARD_NO_PAD),
        ("url-safe base64", &URL_SAFE_NO_PAD),
    ] {
        for shift in 0..3usize {
            let mut shifted = vec![b'_'; shift];
            shifted.extend_from_slice(b);
            let text = engine.encode(&shifted).into_bytes();
            let (start, end) = ((shift * 8).div_ceil(6), (shifted.len() * 8) / 6);
            out.push((format!("{label} at +{shift}"), text[start..end].to_vec()));
        }
    }
    out
}

/// (a) a canary as a file name (and a directory name) in `/baton/out/`; (b)
/// a 4-line canary file, each line over 8 bytes, printed whole, numbered
/// line by line, reversed, into an artifact, an output and an error; and
/// the env canary in hex and `\u` escapes. After stopping everything, no
/// form of the canary, nor of any line of the multi-line one, is in the
/// nats-server store (streams, KV, the artifacts bucket's names and
/// metadata), the services' logs, or the events, logs and run read back.
#[test]
fn redaction_of_file_names_and_secret_lines_leaves_nothing_stored() {
    with_captured_logs(2, redaction_run);
}

async fn redaction_run(captured: Captured) {
    support::ensure_agent_image();
    // Fine as a file name; `+` and `=` change under base64 and URL encoding.
    let name_secret = format!("cnry-name-{:016x}+x=y", rand::random::<u64>());
    let lines: Vec<String> = (1..=4)
        .map(|i| {
            format!(
                "cnry-line{i}-{:016x}{:08x}+/=",
                rand::random::<u64>(),
                rand::random::<u32>()
            )
        })
        .collect();
    // CANARY_*: the worker allows those; BATON_* it never gives.
    let env_var = format!("CANARY_{:08x}", rand::random::<u32>());
    std::env::set_var(&env_var, &name_secret);
    let dir = tempfile::tempdir().unwrap();
    let ml_path = dir.path().join("multi.key");
    std::fs::write(&ml_path, format!("{}\n", lines.join("\n"))).unwrap();
    let plan = REDACTION_PLAN
        .replace("ENV_VAR", &env_var)
        .replace("ML_PATH", ml_path.to_str().unwrap());

    let nats = NatsServer::start();
    let (local, admin, run_id, run) = run_canary_plan(
        &nats,
        dir.path(),
        plan,
        "canary-names-lines.yaml",
        &captured,
    )
    .await;

    for t in ["named", "reader", "encoded", "lines"] {
        assert_eq!(
            support::task(&run, t).task_status(),
            v1::TaskStatus::Succeeded,
            "{t}: {run:#?}"
        );
    }
    // What each task shows; checked after the search, so that a failure
    // lists every leak first.
    let mut wrong = Vec::new();
    let named = support::task(&run, "named");
    let mut paths: Vec<&str> = named.artifacts.iter().map(|a| a.path.as_str()).collect();
    paths.sort();
    if paths != ["[REDACTED:S].txt", "dir-[REDACTED:S]/in.txt"] {
        wrong.push(format!("artifact paths of named: {paths:?}"));
    }
    let failed = support::task(&run, "line-fails");
    if failed.error != "rejected key line [REDACTED:ml]" {
        wrong.push(format!("error of line-fails: {:?}", failed.error));
    }

    let logs = support::log_entries(&admin, &run_id, "").await;
    let of = |task: &str| -> Vec<String> {
        logs.iter()
            .filter(|l| l.task_id == task)
            .map(|l| l.line.clone())
            .collect()
    };
    let reader = of("reader");
    for want in [
        "got ./[REDACTED:S].txt=x",
        "got ./dir-[REDACTED:S]/in.txt=y",
    ] {
        if !reader.contains(&want.to_string()) {
            wrong.push(format!("reader did not log {want:?}: {reader:?}"));
        }
    }
    let encoded = of("encoded");
    for want in ["hex [REDACTED:S]", "HEX [REDACTED:S]", "esc [REDACTED:S]"] {
        if !encoded.contains(&want.to_string()) {
            wrong.push(format!("encoded did not log {want:?}: {encoded:?}"));
        }
    }
    let ml = of("lines");
    let markers = ml.iter().filter(|l| l.contains("[REDACTED:ml]")).count();
    // Whole (one marker), numbered (4) and reversed (4).
    if markers < 9 {
        wrong.push(format!("lines logged {markers} markers, not 9: {ml:?}"));
    }

    let stored = everything_stored(nats, local, &admin, &run, &logs, &captured).await;

    let mut secrets: Vec<(String, String)> = vec![("file-name secret".into(), name_secret)];
    for (i, l) in lines.iter().enumerate() {
        secrets.push((
            format!("line {} of the multi-line secret", i + 1),
            l.clone(),
        ));
    }
    let mut found = Vec::new();
    for (label, secret) in &secrets {
        for (form, needle) in redaction_needles(secret) {
            for (place, bytes) in &stored {
                let n = count(bytes, &needle);
                if n > 0 {
                    found.push(format!("{label}, {form}: {n}× in {place}"));
                }
            }
        }
    }
    assert!(
        found.is_empty() && wrong.is_empty(),
        "secrets stored:\n{}\nwhat the tasks show:\n{}",
        found.join("\n"),
        wrong.join("\n")
    );
}
