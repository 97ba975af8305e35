//! Canary secrets: a whole Baton in this process (real nats-server,
//! coordinator, gates, a Docker worker) runs tasks that print two random
//! secrets raw, base64, URL-encoded, split over two writes, and put them in
//! outputs, an error and an artifact. Then every byte Baton stored — the
//! nats-server store (streams, KV, object store), the services' log output,
//! and the run's events and logs read back over the API — is searched for
//! each secret in each form: there must be none.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use baton_proto::v1;
use baton_test_support::NatsServer;
use baton_worker::runtime::{DockerRuntime, SandboxPolicy};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_are_stored_nowhere() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info,baton_worker=debug,baton_coordinator=debug,baton_gates=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let env_secret = canary("env");
    let file_secret = canary("file");
    let env_var = format!("BATON_CANARY_{:08x}", rand::random::<u32>());
    std::env::set_var(&env_var, &env_secret);
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("deploy.key");
    std::fs::write(&key_path, format!("{file_secret}\n")).unwrap();
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let plan = PLAN
        .replace("MISSING_VAR", &format!("{env_var}_MISSING"))
        .replace("ENV_VAR", &env_var)
        .replace("KEY_PATH", key_path.to_str().unwrap())
        .replace("SHA_S", &sha(env_secret.as_bytes()))
        .replace("SHA_K", &sha(format!("{file_secret}\n").as_bytes()));

    let mut nats = NatsServer::start();
    let runtime = DockerRuntime::connect(SandboxPolicy::default())
        .await
        .expect("Docker must be reachable for this test (it is never skipped)");
    let worker = baton::local::WorkerSpec {
        options: baton_worker::Options {
            roles: vec!["dev".into()],
            concurrency: 4,
            grace: Duration::from_secs(2),
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
            plan_file: "canary.yaml".into(),
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
    let mut api_bytes: Vec<u8> = Vec::new();
    for l in &logs {
        api_bytes.extend_from_slice(format!("{l:?}\n").as_bytes());
    }
    for e in common::events(&admin, &run_id).await {
        api_bytes.extend(e.encode_to_vec());
        api_bytes.extend_from_slice(format!("{e:?}\n").as_bytes());
    }
    api_bytes.extend_from_slice(format!("{run:?}").as_bytes());

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

    // Stop everything, so that the store is complete and quiet.
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

    let mut found = Vec::new();
    for (label, secret) in [("env", &env_secret), ("file", &file_secret)] {
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
