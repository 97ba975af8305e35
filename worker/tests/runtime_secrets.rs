//! Secrets in the process runtime, with real child processes: injected as
//! env and files, and redacted from logs and results.

use std::time::Duration;

use baton_proto::v1;
use baton_worker::runtime::{LogLine, ProcessRuntime, Runtime, TaskSpec};
use baton_worker::secrets;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn process_gets_secrets_and_its_output_is_redacted() {
    let env_value = format!("env-canary-{:016x}", rand::random::<u64>());
    let file_value = format!("file-canary-{:016x}", rand::random::<u64>());
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, format!("{file_value}\n")).unwrap();
    let refs = [
        v1::SecretRef {
            name: "TOKEN".into(),
            from_env: "HOST_TOKEN".into(),
            ..Default::default()
        },
        v1::SecretRef {
            name: "key".into(),
            from_file: key.to_str().unwrap().into(),
            as_file: true,
            ..Default::default()
        },
    ];
    let lookup = |v: &str| (v == "HOST_TOKEN").then(|| env_value.clone());
    let policy = secrets::SecretPolicy::new(["HOST_TOKEN"], [dir.path()]);
    let resolved = secrets::resolve(&refs, "w", &policy, lookup).unwrap();
    // Half the value, a pause long enough for separate reads, the other half.
    let half = env_value.len() / 2;
    let script = format!(
        r#"printf '%s' "$TOKEN" | head -c {half}; sleep 0.3; printf '%s\n' "$TOKEN" | tail -c +{}
[ "$(cat "$BATON_SECRETS/key")" = "{file_value}" ] && echo file-ok
printf '%s' "$TOKEN" | base64
echo "{{\"result\":\"ok\",\"outputs\":{{\"k\":\"$(cat $BATON_SECRETS/key)\"}}}}""#,
        half + 1
    );
    let spec = TaskSpec {
        secrets: resolved,
        ..TaskSpec::new(
            "rt-secrets",
            "t1",
            1,
            "",
            vec!["sh".into(), "-c".into(), script],
            Duration::from_secs(30),
        )
    };
    let (tx, mut rx) = mpsc::channel::<LogLine>(64);
    let drain = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(l) = rx.recv().await {
            lines.push(l.line);
        }
        lines
    });
    let rt = Runtime::Process(ProcessRuntime::new());
    let outcome = rt.run(&spec, tx, CancellationToken::new()).await.unwrap();
    let lines = drain.await.unwrap();
    assert!(outcome.ok, "{outcome:?} {lines:?}");
    assert_eq!(lines[0], "[REDACTED:TOKEN]", "{lines:?}");
    assert_eq!(lines[1], "file-ok", "the file holds the value: {lines:?}");
    assert_eq!(lines[2], "[REDACTED:TOKEN]", "{lines:?}");
    let report = serde_json::to_string(&outcome.report).unwrap();
    assert!(report.contains("[REDACTED:key]"), "{report}");
    let everything = format!("{lines:?} {report}");
    for form in spec.secrets.redactor.forms() {
        let form = String::from_utf8_lossy(form);
        assert!(!everything.contains(&*form), "{form} leaked: {everything}");
    }
}
