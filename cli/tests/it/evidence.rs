//! Signed evidence end to end: a real nats-server, an in-process coordinator,
//! gates and a Docker worker; a plan with an approval runs to its end, its
//! evidence is exported and verified through the `baton` binary, offline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_coordinator::evidence;
use baton_proto::v1;
use baton_test_support::NatsServer;
use sha2::{Digest, Sha256};

use crate::support::{dev_worker, eventually, log_entries, submit_to};

const T: Duration = Duration::from_secs(90);

/// Two tasks that log, then a phase that waits for a person.
const PLAN: &str = include_str!("fixtures/evidence-demo.yaml");

fn baton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .output()
        .expect("the baton binary runs")
}

/// `baton` as a client of the admin API, with its token in the environment.
fn baton_as(token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .env("BATON_TOKEN", token)
        .output()
        .expect("the baton binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn temp_dir() -> Dir {
    let d = std::env::temp_dir().join(format!("baton-evidence-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

async fn start(
    nats: &NatsServer,
    key: &Path,
) -> (baton::local::LocalBaton, baton_proto::client::Admin) {
    let worker = dev_worker(baton_worker::Options {
        concurrency: 4,
        grace: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let coordinator = baton_coordinator::Options {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        evidence_key: Some(key.to_path_buf()),
        ..Default::default()
    };
    let local = baton::local::LocalBaton::start_with(&nats.url(), coordinator, vec![worker])
        .await
        .expect("Baton starts");
    let admin = local.admin().await.expect("admin connects");
    (local, admin)
}

async fn wait_for_approval(admin: &baton_proto::client::Admin, run: &str) {
    eventually("never waited for approval", T, async || {
        let r = admin
            .clone()
            .get_run(v1::GetRunRequest { run_id: run.into() })
            .await
            .expect("run exists")
            .into_inner();
        if r.waiting.contains("approval") {
            return Some(());
        }
        assert_eq!(
            r.run_status(),
            v1::RunStatus::Running,
            "ended instead of waiting: {r:#?}"
        );
        None
    })
    .await;
}

/// `baton evidence export`, polled: evidence is stored just after the end.
async fn export_when_stored(server: &str, token: &str, run: &str, file: &Path) {
    eventually(
        "evidence never stored",
        Duration::from_secs(20),
        async || {
            let o = baton_as(
                token,
                &[
                    "evidence",
                    "export",
                    run,
                    "-o",
                    file.to_str().unwrap(),
                    "--server",
                    server,
                ],
            );
            if o.status.success() {
                return Ok(());
            }
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("has no evidence"),
                "{}",
                text(&o)
            );
            Err(text(&o))
        },
    )
    .await;
}

/// Each attempt's log lines as `baton logs` gives them.
fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_an_approval_exports_evidence_that_verifies_offline_and_any_changed_byte_fails()
{
    let dir = temp_dir();
    let key = dir.0.join("signing");
    let o = baton(&["evidence", "keygen", "-o", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let public = dir.0.join("signing.pub");

    let nats = NatsServer::start();
    let (local, admin) = start(&nats, &key).await;
    let token = local.token.as_ref().expect("an admin token").expose();
    let server = format!("http://{}", local.grpc_addr);
    let run = submit_to(&admin, PLAN, "evidence-demo.yaml").await;
    wait_for_approval(&admin, &run).await;
    admin
        .clone()
        .approve(v1::DecisionRequest {
            run_id: run.clone(),
            reason: "diff reviewed".into(),
            by: "ignored-body-name".into(),
            task_id: String::new(),
        })
        .await
        .expect("approve");
    let end = baton::local::wait_end(&admin, &run, T).await.expect("ends");
    assert_eq!(end.run_status(), v1::RunStatus::Succeeded, "{end:#?}");

    let file = dir.0.join("run.intoto.json");
    export_when_stored(&server, token, &run, &file).await;
    let o = baton(&[
        "evidence",
        "verify",
        file.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("run:        {run} (succeeded)")),
        "{out}"
    );
    assert!(
        out.contains("approved by local-admin: diff reviewed"),
        "{out}"
    );
    // The head anchors the run's whole audit chain: its last record, `finished`.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let last = js
        .get_stream("BATON_AUDIT")
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&format!("baton.audit.{run}"))
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(record["kind"], "finished", "{record}");
    let head_hash = record["hash"].as_str().unwrap().to_string();
    assert!(
        out.contains(&format!("audit head: #{} {head_hash}", record["n"])),
        "{out}"
    );

    // The content, against what the run really did.
    let bytes = std::fs::read(&file).unwrap();
    let vk = evidence::keys::load_verifying_key(&public).unwrap();
    let st = evidence::verify(&bytes, &vk).expect("verifies");
    let p = &st.predicate;
    assert_eq!(p.run_id, run);
    assert_eq!(p.plan.sha256, sha256_hex(PLAN.as_bytes()));
    assert_eq!(st.subject[0].digest["sha256"], sha256_hex(PLAN.as_bytes()));
    let ids: Vec<&str> = p.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["compile", "test", "ship"]);
    for t in &p.tasks {
        assert_eq!(t.status, "succeeded", "{t:?}");
        let lines = log_entries(&admin, &run, &t.task_id).await;
        assert!(!lines.is_empty(), "{} logged", t.task_id);
        for a in &t.attempts {
            let mine: Vec<&str> = lines
                .iter()
                .filter(|l| l.attempt == a.attempt)
                .map(|l| l.line.as_str())
                .collect();
            let mut hashed = String::new();
            for l in &mine {
                hashed.push_str(l);
                hashed.push('\n');
            }
            assert_eq!(
                a.log.lines,
                mine.len() as u64,
                "{}#{}",
                t.task_id,
                a.attempt
            );
            assert_eq!(
                a.log.sha256,
                sha256_hex(hashed.as_bytes()),
                "{}#{}",
                t.task_id,
                a.attempt
            );
        }
        assert!(t.attempts.last().unwrap().ok);
    }
    let compile = &p.tasks[0].attempts[0];
    assert_eq!(compile.log.lines, 3, "stdout and stderr lines both count");
    assert_eq!(p.approvals.len(), 1);
    assert!(p.approvals[0].approve);
    assert_eq!(
        p.approvals[0].by, "local-admin",
        "the caller, never the body's `by`"
    );
    assert_eq!(p.approvals[0].reason, "diff reviewed");
    assert!(p.approvals[0].time_ms >= p.created_ms);
    assert!(p
        .gates
        .iter()
        .any(|g| g.kind == "approval" && g.verdict == "pass"));
    assert!(matches!(
        p.decisions.last(),
        Some(evidence::statement::DecisionEvidence::End { status, .. }) if status == "succeeded"
    ));
    let head = p.audit_head.as_ref().expect("an audit head");
    assert_eq!(
        (head.n, head.hash.as_str()),
        (record["n"].as_u64().unwrap(), head_hash.as_str())
    );

    // Any changed byte fails: every byte, changed two ways.
    let started = Instant::now();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x20] {
            let mut copy = bytes.clone();
            copy[i] ^= mask;
            assert!(
                evidence::verify(&copy, &vk).is_err(),
                "byte {i} ^ {mask:#x} still verifies"
            );
        }
    }
    eprintln!(
        "{} bytes x 2 changes refused in {:?}",
        bytes.len(),
        started.elapsed()
    );
    // And through the binary: one changed payload byte, and a wrong key.
    let mut copy = bytes.clone();
    let mid = bytes.len() / 2;
    copy[mid] ^= 0x01;
    let bad = dir.0.join("changed.json");
    std::fs::write(&bad, &copy).unwrap();
    let o = baton(&[
        "evidence",
        "verify",
        bad.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let other = dir.0.join("other");
    assert!(
        baton(&["evidence", "keygen", "-o", other.to_str().unwrap()])
            .status
            .success()
    );
    let other_pub = dir.0.join("other.pub");
    let o = baton(&[
        "evidence",
        "verify",
        file.to_str().unwrap(),
        "--key",
        other_pub.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not by the given key"),
        "{}",
        text(&o)
    );

    // A second sealing (a takeover finishing the run again) changes nothing.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let topo = baton_proto::topology::ensure(&js, &Default::default())
        .await
        .unwrap();
    let stored = evidence::collect::store_once(&topo.evidence, &run, b"a different bundle")
        .await
        .unwrap();
    assert!(!stored, "the first evidence stays");
    let again = dir.0.join("again.json");
    export_when_stored(&server, token, &run, &again).await;
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
    interop_with_openssl(&bytes, &public, &key);
}

/// A second, independent check: OpenSSL reads the key files and verifies the
/// signature over a PAE built here from the DSSE spec, not by Baton.
fn interop_with_openssl(bytes: &[u8], public: &Path, private: &Path) {
    let env: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
    let sig = b64
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let ty = env["payloadType"].as_str().unwrap();
    assert_eq!(ty, "application/vnd.in-toto+json");
    let mut pae = format!("DSSEv1 {} {} {} ", ty.len(), ty, payload.len()).into_bytes();
    pae.extend_from_slice(&payload);
    let dir = private.parent().unwrap();
    let (pae_f, sig_f) = (dir.join("pae.bin"), dir.join("sig.bin"));
    std::fs::write(&pae_f, &pae).unwrap();
    std::fs::write(&sig_f, &sig).unwrap();
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed (it is on every supported build host)")
    };
    let verify = |pae: &Path| {
        openssl(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            public.to_str().unwrap(),
            "-rawin",
            "-in",
            pae.to_str().unwrap(),
            "-sigfile",
            sig_f.to_str().unwrap(),
        ])
    };
    let o = verify(&pae_f);
    assert!(o.status.success(), "openssl refuses: {}", text(&o));
    // OpenSSL is not a rubber stamp: one changed byte of the PAE fails there too.
    let mut changed = pae.clone();
    *changed.last_mut().unwrap() ^= 0x01;
    let changed_f = dir.join("pae-changed.bin");
    std::fs::write(&changed_f, &changed).unwrap();
    assert!(!verify(&changed_f).status.success());
    // The private key is standard PKCS#8 too: OpenSSL derives the same public key.
    let o = openssl(&["pkey", "-in", private.to_str().unwrap(), "-pubout"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(o.stdout, std::fs::read(public).unwrap());
}
