//! Shared by the runtime tests: a real nats-server with the artifacts bucket,
//! and digests of known content.

use async_nats::jetstream::object_store::ObjectStore;
use baton_proto::topology::{self, TopologyOptions};
use baton_proto::v1;
use baton_test_support::NatsServer;
use baton_worker::runtime::{Outcome, RuntimeError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The server must outlive the store handle: keep both.
pub async fn artifact_store() -> (NatsServer, ObjectStore) {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let topo = topology::ensure(&js, &TopologyOptions::default())
        .await
        .expect("topology");
    (server, topo.artifacts)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn read_object(store: &ObjectStore, name: &str) -> Vec<u8> {
    let mut object = store.get(name).await.expect("object");
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.expect("read object");
    bytes
}

/// The script writing [`A_TXT`] and [`B_TXT`] (in a subdirectory), a
/// symlink (skipped), and a result file (not an artifact).
pub const WRITE_TWO: &str = r#"mkdir -p "$BATON_OUT/sub" && printf 'hello\n' > "$BATON_OUT/a.txt" && printf 'second file' > "$BATON_OUT/sub/b.txt" && ln -s /etc/passwd "$BATON_OUT/link" && echo '{"result":"ok"}' > "$BATON_OUT/result.json""#;
pub const A_TXT: &[u8] = b"hello\n";
pub const B_TXT: &[u8] = b"second file";

/// Checks the two artifacts of [`WRITE_TWO`] against the known content and
/// the store, and returns them.
pub async fn check_two(
    store: &ObjectStore,
    run: &str,
    artifacts: &[v1::Artifact],
) -> Vec<v1::Artifact> {
    let paths: Vec<_> = artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, vec!["a.txt", "sub/b.txt"], "{artifacts:?}");
    for (a, content) in artifacts.iter().zip([A_TXT, B_TXT]) {
        assert_eq!(a.size, content.len() as u64);
        assert_eq!(a.sha256, sha256_hex(content));
        assert_eq!(a.object, format!("{run}/t1/1/{}", a.path));
        assert_eq!(read_object(store, &a.object).await, content);
    }
    artifacts.to_vec()
}

/// The script of a consumer of [`WRITE_TWO`]'s artifacts from task `t1`:
/// reads both, and reports their mode and whether it could change one.
pub const READ_TWO: &str = r#"a=$(cat "$BATON_IN/t1/a.txt"); b=$(cat "$BATON_IN/t1/sub/b.txt"); m=$(stat -c %a "$BATON_IN/t1/a.txt"); if echo x >> "$BATON_IN/t1/a.txt" 2>/dev/null; then w=writable; else w=read-only; fi; echo "{\"result\":\"ok\",\"outputs\":{\"a\":\"$a\",\"b\":\"$b\",\"mode\":\"$m\",\"in\":\"$w\"}}""#;

pub fn inputs_of(artifacts: Vec<v1::Artifact>) -> Vec<v1::InputArtifacts> {
    vec![v1::InputArtifacts {
        task_id: "t1".into(),
        artifacts,
    }]
}

/// The error of a consumer given a tampered copy of `input` (`t1/<path>`);
/// returns its message.
pub fn tampered_input_error(result: Result<Outcome, RuntimeError>, input: &str) -> String {
    match result {
        Err(e @ RuntimeError::Input(_)) => {
            assert!(e.is_permanent());
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("input {input} (object ")), "{msg}");
            assert!(msg.contains("does not match its record"), "{msg}");
            msg
        }
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// The outcome of a task that left 3000 bytes with `max_artifact_bytes` 1000.
pub fn assert_over_the_artifact_limit(outcome: &Outcome) {
    assert!(!outcome.ok);
    assert_eq!(
        outcome.error.as_deref(),
        Some("task left 2.9 KiB in /baton/out/, over the 1000 bytes limit (raise max_artifact_bytes or write less)")
    );
    assert!(outcome.artifacts.is_empty());
}
