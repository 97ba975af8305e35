//! The admin API and the NATS trigger against a real bus, and bad input.

use std::time::Duration;

use baton_proto::kinds::EventKind;
use baton_proto::v1;

use crate::support::*;

const T: Duration = Duration::from_secs(120);

const ONE_TASK: &str = include_str!("fixtures/one-task.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_over_nats_starts_a_registered_plan() {
    let c = Cluster::start(Rt::Docker).await;
    let applied = c
        .admin
        .clone()
        .apply_plan(v1::ApplyPlanRequest {
            plan_yaml: ONE_TASK.into(),
            plan_file: "one.yaml".into(),
        })
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(applied.name, "one-task");
    let nc = async_nats::connect(c.nats.url()).await.unwrap();
    let reply = nc
        .request("baton.trigger.one-task", r#"{"who":"nats"}"#.into())
        .await
        .expect("a coordinator answers the trigger");
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let run = v["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {v}"))
        .to_string();
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    let out: serde_json::Value = serde_json::from_str(&task(&r, "hello").result_json).unwrap();
    assert_eq!(out["outputs"]["who"], "nats");

    // An unknown plan and a bad body get an error reply, not silence.
    let reply = nc.request("baton.trigger.nope", "{}".into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no plan named `nope`"),
        "{v}"
    );
    let reply = nc
        .request("baton.trigger.one-task", "[1,2]".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(v["error"].as_str().unwrap().contains("JSON object"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_runs_at_once_all_succeed() {
    let c = Cluster::start_with(Rt::Docker, Default::default(), 8).await;
    let mut runs = Vec::new();
    for i in 0..50 {
        let who = format!("r{i}");
        runs.push((who.clone(), c.submit(ONE_TASK, &[("who", &who)]).await));
    }
    for (who, run) in runs {
        let r = c.wait_end(&run, Duration::from_secs(300)).await;
        assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
        let out: serde_json::Value = serde_json::from_str(&task(&r, "hello").result_json).unwrap();
        assert_eq!(
            out["outputs"]["who"],
            who.as_str(),
            "each run got its own inputs"
        );
    }
    let list = c
        .admin
        .clone()
        .list_runs(v1::ListRunsRequest { limit: 100 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.runs.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_precise_errors() {
    let c = Cluster::start(Rt::Noop).await;
    // An invalid plan: the same messages as `plan validate`.
    let bad = "name: bad\nroles:\n  dev: { image: x }\nphases:\n  - id: p\n    tasks:\n      - id: a\n        role: dve\n        run: [\"true\"]\n";
    let e = c.try_submit(bad, &[]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let local = baton_plan::load("test.yaml", bad).unwrap_err().to_string();
    assert_eq!(e.message(), local);
    assert!(e.message().contains("test.yaml:8:"), "{}", e.message());
    // Unknown input.
    let e = c.try_submit(ONE_TASK, &[("whom", "x")]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("whom"), "{}", e.message());
    // Unknown run ids, including ones that could never be a subject token.
    for id in ["0000000000000000000", "no.such>run", ""] {
        let e = c
            .admin
            .clone()
            .get_run(v1::GetRunRequest { run_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{id}");
        let e = c
            .admin
            .clone()
            .watch_run(v1::WatchRunRequest { run_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{id}");
    }
    let e = c
        .decide("0000000000000000000", true, "x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // The services survived all of it.
    let run = c.submit(ONE_TASK, &[]).await;
    assert_eq!(
        c.wait_end(&run, T).await.run_status(),
        v1::RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_bus_does_not_stop_the_services() {
    let c = Cluster::start(Rt::Noop).await;
    let nc = async_nats::connect(c.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(nc);
    let submitted = EventKind::RunSubmitted.subject("x");
    for subject in [submitted.as_str(), "baton.task.dev", "baton.gate.expr"] {
        js.publish(subject.to_string(), "\u{1}not protobuf".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let run = c.submit(ONE_TASK, &[]).await;
    assert_eq!(
        c.wait_end(&run, T).await.run_status(),
        v1::RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_service_is_discoverable_through_reflection() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let c = Cluster::start(Rt::Noop).await;
    let channel = tonic::transport::Endpoint::from_shared(c.server())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Reflection needs a token too (any role).
    let viewer = c.issue_token("reflector", Role::Viewer);
    let bearer = baton_proto::client::Bearer::new(Some(&viewer)).unwrap();
    let mut client = ServerReflectionClient::with_interceptor(channel, bearer);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = client
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let first = resp.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected reflection answer: {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "baton.v1.Admin"), "{names:?}");
}
