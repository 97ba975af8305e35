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

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use baton_proto::nats_auth::{NatsAuth, Secret};
use baton_proto::v1;
use baton_test_support::NatsServer;
use baton_worker::runtime::{DockerRuntime, SandboxPolicy};
use baton_worker::secrets::SecretPolicy;
use prost::Message;
use sha2::{Digest, Sha256};

const PLAN: &str = r#"
name: canary
roles:
  dev: { image: "baton/agent:local" }
phases:
  - id: leak
    tasks:
      - id: print
        role: dev
        env:
          S: { secret: { from_env: ENV_VAR } }
        secrets:
          - { name: key, secret: { from_file: KEY_PATH } }
        outputs: [s, k, b]
        run: |
          K="$(cat /run/secrets/key)"
          printf 'raw %s\n' "$S"; echo "file $K"; echo "stderr $S" >&2
          printf '%s' "$S" | base64; printf '%s' "$K" | base64
          printf '%s' "$S" | base64 | tr '+/' '-_' | tr -d '='
          printf '%s' "$S" | sed 's|/|%2F|g; s|+|%2B|g; s|=|%3D|g; s|?|%3F|g'; echo
          printf '%s' "$K" | sed 's|/|%2F|g; s|+|%2B|g; s|=|%3D|g; s|?|%3F|g'; echo
          printf 'split %s' "$S" | head -c 14; sleep 1; printf '%s\n' "$S" | tail -c +9
          printf 'split %s' "$K" | head -c 17; sleep 1; printf '%s\n' "$K" | tail -c +12
          printf '%s' "$S" > /baton/out/env.txt; cp /run/secrets/key /baton/out/key.txt
          printf '%s %s' "$S" "$K" | base64 > /baton/out/both.b64
          printf '{"result":"ok","outputs":{"s":"%s","k":"%s","b":"%s"}}\n' "$S" "$K" "$(printf '%s' "$S" | base64)"
      - id: fails
        role: dev
        env:
          S: { secret: { from_env: ENV_VAR } }
        run: |
          printf '{"result":"fail","action":"deploy failed with token %s"}\n' "$S"
      - id: check
        role: dev
        env:
          S: { secret: { from_env: ENV_VAR } }
          WANT_S: "SHA_S"
          WANT_K: "SHA_K"
        secrets:
          - { name: key, secret: { from_file: KEY_PATH } }
        run: |
          [ "$(printf '%s' "$S" | sha256sum | head -c 64)" = "$WANT_S" ] || { echo env secret differs; exit 1; }
          [ "$(sha256sum < /run/secrets/key | head -c 64)" = "$WANT_K" ] || { echo file secret differs; exit 1; }
          echo '{"result":"ok"}'
      - id: missing
        role: dev
        env:
          M: { secret: { from_env: MISSING_VAR } }
        run: echo never
      - id: unlisted
        role: dev
        env:
          U: { secret: { from_env: UNLISTED_VAR } }
        run: echo "$U"
      - id: outside
        role: dev
        secrets:
          - { name: o, secret: { from_file: OUTSIDE_PATH } }
        run: cat /run/secrets/o
      - id: environ
        role: dev
        secrets:
          - { name: e, secret: { from_file: ENVIRON_LINK } }
        run: cat /run/secrets/e
      - id: linked_out
        role: dev
        secrets:
          - { name: l, secret: { from_file: OUTSIDE_LINK } }
        run: cat /run/secrets/l
"#;

/// What the services log, for searching afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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

/// The services' log output of this whole test binary (the subscriber is
/// global, so every test of the binary shares it).
fn captured_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_env_filter(
                    "info,baton_worker=debug,baton_coordinator=debug,baton_gates=debug",
                )
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .init();
            captured
        })
        .clone()
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
    baton::admin_client::Admin,
    String,
    v1::Run,
) {
    let runtime = DockerRuntime::connect(SandboxPolicy::default())
        .await
        .expect("Docker must be reachable for this test (it is never skipped)");
    let worker = baton::local::WorkerSpec {
        options: baton_worker::Options {
            roles: vec!["dev".into()],
            concurrency: 4,
            grace: Duration::from_secs(2),
            secret_policy: SecretPolicy::new(["CANARY_*"], [dir]),
            ..Default::default()
        },
        runtime: runtime.into(),
    };
    let local =
        baton::local::LocalBaton::start(&nats.url(), "127.0.0.1:0".parse().unwrap(), vec![worker])
            .await
            .expect("Baton starts");
    let admin = local.admin().await.expect("admin connects");
    let run_id = admin
        .clone()
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: plan,
            plan_file: file.into(),
            ..Default::default()
        })
        .await
        .expect("plan is accepted")
        .into_inner()
        .run_id;
    let run = baton::local::wait_end(&admin, &run_id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| {
            let logs = captured.0.lock().unwrap().clone();
            panic!("{e}\nservice logs:\n{}", String::from_utf8_lossy(&logs))
        });
    (local, admin, run_id, run)
}

/// Every byte the run left anywhere: the API's answers (logs, events, the
/// run), then, with everything stopped so that the store is complete and
/// quiet, every file of the NATS store and the services' log output.
async fn everything_stored(
    mut nats: NatsServer,
    mut local: baton::local::LocalBaton,
    admin: &baton::admin_client::Admin,
    run: &v1::Run,
    logs: &[v1::LogEntry],
    captured: &Captured,
) -> Vec<(String, Vec<u8>)> {
    let mut api_bytes: Vec<u8> = Vec::new();
    for l in logs {
        api_bytes.extend_from_slice(format!("{l:?}\n").as_bytes());
    }
    for e in common::events(admin, &run.run_id).await {
        api_bytes.extend(e.encode_to_vec());
        api_bytes.extend_from_slice(format!("{e:?}\n").as_bytes());
    }
    api_bytes.extend_from_slice(format!("{run:?}").as_bytes());
    local.cancel.cancel();
    for part in std::mem::take(&mut local.parts) {
        let _ = tokio::time::timeout(Duration::from_secs(10), part).await;
    }
    nats.kill();

    let mut files = Vec::new();
    files_under(nats.store_dir(), &mut files);
    let mut stored: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    stored.push(("service logs".into(), captured.0.lock().unwrap().clone()));
    stored.push(("events, logs and run via the API".into(), api_bytes));
    let total: usize = stored.iter().map(|(_, b)| b.len()).sum();
    let redacted: usize = stored.iter().map(|(_, b)| count(b, b"[REDACTED:")).sum();
    println!(
        "searched {total} bytes in {} store files, the service logs and the API answers; {redacted} redaction markers",
        files.len()
    );
    assert!(
        redacted > 0,
        "nothing redacted was stored: the search proves nothing"
    );
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_are_stored_nowhere() {
    let captured = captured_logs();

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
    assert_eq!(common::task(&run, "print").status, "succeeded", "{run:#?}");
    assert_eq!(common::task(&run, "check").status, "succeeded", "{run:#?}");
    assert_eq!(common::task(&run, "print").artifacts.len(), 3, "{run:#?}");
    let fails = common::task(&run, "fails");
    assert_eq!(fails.status, "failed");
    assert_eq!(fails.error, "deploy failed with token [REDACTED:S]");
    let missing = common::task(&run, "missing");
    assert_eq!(missing.status, "failed");
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
        let t = common::task(&run, id);
        assert_eq!((t.status.as_str(), t.attempts), ("failed", 1), "{t:#?}");
        assert!(t.error.starts_with(&want), "{id}: {}", t.error);
    }
    let unlisted = common::task(&run, "unlisted");
    assert!(
        unlisted
            .error
            .ends_with(&format!("— start the worker with --allow-secret-env {unlisted_var} (or a prefix such as DEPLOY_*)")),
        "{}",
        unlisted.error
    );
    assert!(common::task(&run, "outside").error.ends_with(&format!(
        "— start the worker with --allow-secret-dir {}",
        elsewhere.path().display()
    )),);

    let logs = common::log_entries(&admin, &run_id, "").await;
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=org.baton.run={run_id}"))
            .output()
            .expect("docker volume ls");
        if out.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "volumes left: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
const STEAL_PLAN: &str = r#"
name: steal
roles:
  dev: { image: "baton/agent:local" }
phases:
  - id: steal
    tasks:
      - id: take
        role: dev
        retries: 2
        env:
          P: { secret: { from_env: BATON_NATS_PASSWORD } }
        outputs: [r]
        run: |
          printf '%s\n' "$P" | rev
          printf '{"result":"ok","outputs":{"r":"%s"}}\n' "$(printf '%s' "$P" | rev)"
"#;

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

    /// SIGTERM, as a supervisor stops it; then all it printed.
    fn stop(mut self) -> Vec<u8> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
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
) -> Leftovers {
    common::ensure_agent_image();
    let captured = captured_logs();
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
    let run_id = admin
        .clone()
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: plan.into(),
            plan_file: "hostile.yaml".into(),
            ..Default::default()
        })
        .await
        .expect("plan is accepted")
        .into_inner()
        .run_id;
    let run = baton::local::wait_end(&admin, &run_id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nworker output:\n{}",
                String::from_utf8_lossy(&worker.output())
            )
        });
    let events = common::events(&admin, &run_id).await;
    let logs = common::log_entries(&admin, &run_id, "").await;
    let mut api_bytes: Vec<u8> = Vec::new();
    for l in &logs {
        api_bytes.extend_from_slice(format!("{l:?}\n").as_bytes());
    }
    for e in &events {
        api_bytes.extend(e.encode_to_vec());
        api_bytes.extend_from_slice(format!("{e:?}\n").as_bytes());
    }
    api_bytes.extend_from_slice(format!("{run:?}").as_bytes());

    let worker_output = worker.stop();
    local.cancel.cancel();
    let mut local = local;
    for part in std::mem::take(&mut local.parts) {
        let _ = tokio::time::timeout(Duration::from_secs(10), part).await;
    }
    nats.kill();
    let mut files = Vec::new();
    files_under(nats.store_dir(), &mut files);
    let mut stored: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    stored.push(("service logs".into(), captured.0.lock().unwrap().clone()));
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_cannot_take_the_workers_nats_password() {
    let password = format!(
        "natspw-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let (nats, auth) = server_with_worker_password(&password);
    let left = run_on_worker_process(nats, auth, STEAL_PLAN, |url| {
        WorkerProcess::start(
            url,
            "hostile-w1",
            &["--nats-user", "worker"],
            &[("BATON_NATS_PASSWORD", &password)],
        )
    })
    .await;

    let take = common::task(&left.run, "take");
    let lines: Vec<&str> = left.logs.iter().map(|l| l.line.as_str()).collect();
    println!(
        "run {}; task take: {} after {} attempt(s), error {:?}, result {:?}; its log: {lines:?}",
        left.run.status, take.status, take.attempts, take.error, take.result_json
    );
    let found = leaks(&left.stored, &[("the worker's NATS password", &password)]);
    assert!(
        found.is_empty(),
        "the worker's NATS password got out:\n{}",
        found.join("\n")
    );
    assert_eq!(take.status, "failed", "{:#?}", left.run);
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
const OWN_PLAN: &str = r#"
name: own
roles:
  dev: { image: "baton/agent:local" }
phases:
  - id: take
    tasks:
      - id: allowed
        role: dev
        env:
          T: { secret: { from_env: DEPLOY_TOKEN } }
          WANT: "WANT_SHA"
        run: |
          [ "$(printf '%s' "$T" | sha256sum | head -c 64)" = "$WANT" ] || { echo differs; exit 1; }
          echo '{"result":"ok"}'
      - id: by_name
        role: dev
        env: { P: { secret: { from_env: BATON_NATS_PASSWORD } } }
        run: printf '%s\n' "$P" | rev
      - id: nats_named
        role: dev
        env: { P: { secret: { from_env: NATS_TOKEN } } }
        run: printf '%s\n' "$P" | rev
      - id: env_copy
        role: dev
        env: { P: { secret: { from_env: DEPLOY_COPY } } }
        run: printf '%s\n' "$P" | rev
      - id: own_file
        role: dev
        secrets: [{ name: p, secret: { from_file: DIR/nats.pw } }]
        run: rev /run/secrets/p
      - id: link
        role: dev
        secrets: [{ name: p, secret: { from_file: DIR/link } }]
        run: rev /run/secrets/p
      - id: hard_link
        role: dev
        secrets: [{ name: p, secret: { from_file: DIR/hard } }]
        run: rev /run/secrets/p
      - id: file_copy
        role: dev
        secrets: [{ name: p, secret: { from_file: DIR/copy } }]
        run: rev /run/secrets/p
      - id: environ
        role: dev
        secrets: [{ name: p, secret: { from_file: /proc/self/environ } }]
        run: rev /run/secrets/p
"#;

/// `--allow-secret-env '*'` and an allowed folder that holds the worker's
/// password file: Baton's own stay refused by name, by path, through a
/// symbolic or hard link, and as a copy under another name; an allowed
/// variable still works. Flags and `BATON_ALLOW_SECRET_DIR` both count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowing_everything_still_keeps_batons_own_credentials() {
    let password = format!(
        "natspw-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
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
    let left = run_on_worker_process(nats, auth, &plan, |url| {
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
    })
    .await;

    let found = leaks(&left.stored, &[("the worker's NATS password", &password)]);
    assert!(
        found.is_empty(),
        "the worker's NATS password got out:\n{}",
        found.join("\n")
    );
    assert_eq!(
        common::task(&left.run, "allowed").status,
        "succeeded",
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
        let t = common::task(&left.run, id);
        assert_eq!((t.status.as_str(), t.attempts), ("failed", 1), "{t:#?}");
        assert!(t.error.contains(&want), "{id}: {}", t.error);
        assert_eq!(finished_permanently(&left.events, id), [true], "{id}");
    }
}

// ---------------------------------------------------------------------------
// Redaction of artifact names, of each line of a multi-line secret, and of
// hex and JSON `\u` forms.

const REDACTION_PLAN: &str = r#"
name: canary-names-lines
roles:
  dev: { image: "baton/agent:local" }
phases:
  - id: leak
    tasks:
      - id: named
        role: dev
        env:
          S: { secret: { from_env: ENV_VAR } }
        run: |
          printf x > "/baton/out/$S.txt"
          mkdir -p "/baton/out/dir-$S" && printf y > "/baton/out/dir-$S/in.txt"
          echo '{"result":"ok"}'
      - id: reader
        role: dev
        needs: [named]
        run: |
          cd /baton/in/named && find . -type f | sort | while read -r f; do echo "got $f=$(cat "$f")"; done
          echo '{"result":"ok"}'
      - id: encoded
        role: dev
        env:
          S: { secret: { from_env: ENV_VAR } }
        run: |
          printf 'hex %s\n' "$(printf '%s' "$S" | od -An -tx1 -v | tr -d ' \n')"
          printf 'HEX %s\n' "$(printf '%s' "$S" | od -An -tx1 -v | tr -d ' \n' | tr a-f A-F)"
          printf 'esc %s\n' "$(printf '%s' "$S" | od -An -tx1 -v | tr -d '\n' | sed 's/ \([0-9a-f][0-9a-f]\)/\\u00\1/g')"
          echo '{"result":"ok"}'
      - id: lines
        role: dev
        secrets:
          - { name: ml, secret: { from_file: ML_PATH } }
        outputs: [second]
        run: |
          cat /run/secrets/ml
          cat -n /run/secrets/ml
          tac /run/secrets/ml >&2
          cat -n /run/secrets/ml > /baton/out/numbered.txt
          printf '{"result":"ok","outputs":{"second":"%s"}}\n' "$(sed -n 2p /run/secrets/ml)"
      - id: line-fails
        role: dev
        secrets:
          - { name: ml, secret: { from_file: ML_PATH } }
        run: |
          printf '{"result":"fail","action":"rejected key line %s"}\n' "$(sed -n 3p /run/secrets/ml)"
"#;

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
    // This binary's other tests own the global subscriber: every thread of
    // this test's runtime logs to this capture instead.
    let captured = Captured::default();
    let writer = captured.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter("info,baton_worker=debug,baton_coordinator=debug,baton_gates=debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let on_start = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // Kept for the thread's life.
            std::mem::forget(tracing::dispatcher::set_default(&on_start));
        })
        .build()
        .unwrap();
    let _main = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(redaction_run(captured));
}

async fn redaction_run(captured: Captured) {
    common::ensure_agent_image();
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
        assert_eq!(common::task(&run, t).status, "succeeded", "{t}: {run:#?}");
    }
    // What each task shows; checked after the search, so that a failure
    // lists every leak first.
    let mut wrong = Vec::new();
    let named = common::task(&run, "named");
    let mut paths: Vec<&str> = named.artifacts.iter().map(|a| a.path.as_str()).collect();
    paths.sort();
    if paths != ["[REDACTED:S].txt", "dir-[REDACTED:S]/in.txt"] {
        wrong.push(format!("artifact paths of named: {paths:?}"));
    }
    let failed = common::task(&run, "line-fails");
    if failed.error != "rejected key line [REDACTED:ml]" {
        wrong.push(format!("error of line-fails: {:?}", failed.error));
    }

    let logs = common::log_entries(&admin, &run_id, "").await;
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
