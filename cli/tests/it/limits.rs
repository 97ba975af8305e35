//! Oversized and pathological input, sent to the real service: each is
//! refused with a message that names the limit, and the coordinator keeps
//! serving (a deep expression used to overflow its stack).

use baton_proto::v1;

use crate::support::*;

const SMALL: &str = "\
name: small
inputs:
  note: hi
roles:
  dev: { image: baton/agent:local }
phases:
  - id: one
    tasks:
      - { id: a, role: dev, run: echo ok }
";

fn invalid(r: Result<String, tonic::Status>) -> String {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    s.message().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_deep_input_is_refused_and_the_coordinator_keeps_serving() {
    let c = Cluster::start(Rt::Noop).await;

    let huge = format!("{SMALL}# {}\n", "x".repeat(600 * 1024));
    let m = invalid(c.try_submit(&huge, &[]).await);
    assert!(m.contains("more than the limit of 524288 (512 KiB)"), "{m}");

    let big_input = "y".repeat(20 * 1024);
    let m = invalid(c.try_submit(SMALL, &[("note", &big_input)]).await);
    assert!(
        m.contains("input `note` is 20480 bytes, more than the limit of 16384"),
        "{m}"
    );

    let deep = format!(
        "{SMALL}    gates:\n      - expr: \"{}true{}\"\n",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let m = invalid(c.try_submit(&deep, &[]).await);
    assert!(m.contains("expression is 10004 bytes"), "{m}");
    let nested = format!(
        "{SMALL}    gates:\n      - expr: \"{}true{}\"\n",
        "(".repeat(40),
        ")".repeat(40)
    );
    let m = invalid(c.try_submit(&nested, &[]).await);
    assert!(m.contains("deeper than 32 levels"), "{m}");

    // Still serving: a normal plan runs to the end.
    let run = c.submit(SMALL, &[]).await;
    let r = c.wait_end(&run, std::time::Duration::from_secs(60)).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
}
