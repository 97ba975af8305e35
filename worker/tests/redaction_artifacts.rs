//! Secret values in artifact *names*: a task that writes
//! `/baton/out/<secret>.txt` must not get the secret into the artifact's
//! path, its object name, or anything the nats-server stores. Names that
//! redact to the same text are told apart deterministically, and the next
//! task can still read every file under `/baton/in/`. Both runtimes, real
//! nats-server (and real Docker for the Docker runtime).

#[allow(dead_code)]
mod artifacts_common;
#[allow(dead_code)]
mod docker_common;

use std::collections::BTreeMap;
use std::time::Duration;

use artifacts_common::*;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use baton_proto::v1;
use baton_worker::runtime::{ProcessRuntime, Runtime, Stream, TaskSpec};
use baton_worker::secrets;
use docker_common::*;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// Leaves five files: the secret as a name, its hex as a name (both redact
/// to `[REDACTED:S].txt`), a file literally named that, a directory named
/// after the secret, and a plain one.
const WRITE_NAMED: &str = r#"hex=$(printf '%s' "$S" | od -An -tx1 -v | tr -d ' \n')
printf a > "$BATON_OUT/$S.txt"
printf b > "$BATON_OUT/$hex.txt"
printf c > "$BATON_OUT/[REDACTED:S].txt"
mkdir -p "$BATON_OUT/dir-$S" && printf d > "$BATON_OUT/dir-$S/inner.txt"
printf e > "$BATON_OUT/plain.txt"
echo '{"result":"ok"}'"#;

/// Lists what it was handed, one `path=content` per line.
const READ_NAMED: &str = r#"cd "$BATON_IN/t1" && find . -type f | sort | while read -r f; do echo "in $f=$(cat "$f")"; done; echo '{"result":"ok"}'"#;

fn secret() -> String {
    // Fine as a file name; `+` and `=` change under base64 and URL encoding.
    format!("cnry-{:016x}+x=y", rand::random::<u64>())
}

/// The forms in which the secret could hide in a stored name: raw, hex, and
/// base64 at every alignment (object names are base64url-encoded into
/// subjects), computed here independently of the worker.
fn needles(secret: &str) -> Vec<(String, Vec<u8>)> {
    let b = secret.as_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let mut out = vec![
        ("raw".to_string(), b.to_vec()),
        ("hex".to_string(), hex.clone().into_bytes()),
        ("HEX".to_string(), hex.to_uppercase().into_bytes()),
    ];
    for (label, engine) in [
        ("base64", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE_NO_PAD),
    ] {
        for shift in 0..3usize {
            let mut padded = vec![b'/'; shift];
            padded.extend_from_slice(b);
            let text = engine.encode(&padded).into_bytes();
            let start = (shift * 8).div_ceil(6);
            let end = (padded.len() * 8) / 6;
            out.push((format!("{label} at +{shift}"), text[start..end].to_vec()));
        }
    }
    out
}

fn leaks(secret: &str, place: &str, bytes: &[u8], found: &mut Vec<String>) {
    for (form, needle) in needles(secret) {
        let n = bytes
            .windows(needle.len())
            .filter(|w| *w == needle.as_slice())
            .count();
        if n > 0 {
            found.push(format!("{form}: {n}x in {place}"));
        }
    }
}

fn with_secret(mut spec: TaskSpec, value: &str) -> TaskSpec {
    let refs = [v1::SecretRef {
        name: "S".into(),
        from_env: "HOST_S".into(),
        ..Default::default()
    }];
    let policy = secrets::SecretPolicy::new(["HOST_S"], Vec::<std::path::PathBuf>::new());
    spec.secrets = secrets::resolve(&refs, "w", &policy, |_| Some(value.to_string())).unwrap();
    spec
}

async fn named_artifacts_are_redacted(rt: Runtime, image: &str) {
    let (mut nats, store) = artifact_store().await;
    let rt = rt.with_artifact_store(store.clone());
    let value = secret();
    let run_id = unique("rt-names");
    let mut producer = with_secret(spec(&run_id, WRITE_NAMED), &value);
    producer.image = image.to_string();
    let (outcome, logs) = run_with(&rt, &producer, CancellationToken::new()).await;
    let outcome = outcome.expect("runtime");
    assert!(outcome.ok, "{outcome:?} {logs:?}");

    // Paths and object names, as TaskFinished will carry them.
    let by_path: BTreeMap<&str, &v1::Artifact> = outcome
        .artifacts
        .iter()
        .map(|a| (a.path.as_str(), a))
        .collect();
    assert_eq!(
        by_path.len(),
        5,
        "paths are unique: {:#?}",
        outcome.artifacts
    );
    let mut contents = BTreeMap::new();
    for a in &outcome.artifacts {
        assert_eq!(a.object, format!("{run_id}/t1/1/{}", a.path));
        let bytes = read_object(&store, &a.object).await;
        assert_eq!(a.sha256, sha256_hex(&bytes));
        contents.insert(a.path.clone(), String::from_utf8(bytes).unwrap());
    }
    let want: BTreeMap<String, String> = [
        ("[REDACTED:S].txt", "c"),
        // The hex name sorts first (`63…` < `cn…`), so it is ~2.
        ("[REDACTED:S]~2.txt", "b"),
        ("[REDACTED:S]~3.txt", "a"),
        ("dir-[REDACTED:S]/inner.txt", "d"),
        ("plain.txt", "e"),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    assert_eq!(contents, want);

    // Every object name and record in the bucket.
    let mut found = Vec::new();
    let mut names = Vec::new();
    let mut list = store.list().await.expect("list");
    while let Some(info) = list.next().await {
        let info = info.expect("object info");
        names.push(info.name.clone());
        leaks(
            &value,
            "object info",
            format!("{info:?}").as_bytes(),
            &mut found,
        );
    }
    assert_eq!(names.len(), 5, "{names:?}");
    leaks(
        &value,
        "artifacts",
        format!("{:?}", outcome.artifacts).as_bytes(),
        &mut found,
    );

    // The next task gets every file, under the redacted names.
    let mut consumer = spec(&run_id, READ_NAMED);
    consumer.image = image.to_string();
    consumer.task_id = "t2".into();
    consumer.inputs = inputs_of(outcome.artifacts.clone());
    let (outcome, logs) = run_with(&rt, &consumer, CancellationToken::new()).await;
    let outcome = outcome.expect("runtime");
    assert!(outcome.ok, "{outcome:?} {logs:?}");
    assert_eq!(
        lines(&logs, Stream::Stdout),
        vec![
            "in ./[REDACTED:S].txt=c",
            "in ./[REDACTED:S]~2.txt=b",
            "in ./[REDACTED:S]~3.txt=a",
            "in ./dir-[REDACTED:S]/inner.txt=d",
            "in ./plain.txt=e",
            "{\"result\":\"ok\"}",
        ]
    );

    // Every byte the nats-server stored.
    nats.kill();
    let mut files = Vec::new();
    files_under(nats.store_dir(), &mut files);
    assert!(!files.is_empty());
    for f in &files {
        leaks(
            &value,
            &f.display().to_string(),
            &std::fs::read(f).unwrap(),
            &mut found,
        );
    }
    assert!(found.is_empty(), "secret stored:\n{}", found.join("\n"));
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            files_under(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

#[tokio::test]
async fn redaction_docker_artifact_names_are_redacted_and_unique() {
    let rt = Runtime::Docker(docker().await);
    tokio::time::timeout(
        Duration::from_secs(120),
        named_artifacts_are_redacted(rt, IMAGE),
    )
    .await
    .expect("in time");
}

#[tokio::test]
async fn redaction_process_artifact_names_are_redacted_and_unique() {
    let rt = Runtime::Process(ProcessRuntime::new());
    tokio::time::timeout(
        Duration::from_secs(60),
        named_artifacts_are_redacted(rt, ""),
    )
    .await
    .expect("in time");
}
