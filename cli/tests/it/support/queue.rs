//! JetStream from a test's side: streams' sizes, and readers of a work
//! queue that take messages and die before answering them.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer};
use async_nats::jetstream::stream::State;
use async_nats::jetstream::Context;
use futures::StreamExt;

/// The state of `stream` now (its messages, its consumers).
pub async fn stream_state(js: &Context, stream: &str) -> State {
    js.get_stream(stream)
        .await
        .unwrap()
        .cached_info()
        .state
        .clone()
}

/// How many messages `stream` holds now.
pub async fn messages(js: &Context, stream: &str) -> u64 {
    stream_state(js, stream).await.messages
}

/// The durable consumer `name` on `stream` of a reader that takes messages
/// and dies: 500 ms to answer, 2 deliveries.
pub async fn dying_consumer(
    js: &Context,
    stream: &str,
    name: &str,
    filter: &str,
) -> Consumer<pull::Config> {
    js.get_stream(stream)
        .await
        .unwrap()
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.into()),
                filter_subject: filter.into(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_millis(500),
                max_deliver: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// Take one message, if any comes within 700 ms, and never answer it: a
/// worker that dies right after taking its task.
pub async fn pull_without_ack(consumer: &Consumer<pull::Config>) -> bool {
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_millis(700))
        .messages()
        .await
        .unwrap();
    matches!(batch.next().await, Some(Ok(_)))
}

/// Take each of the `n` messages twice without answering, then pull on
/// until JetStream notices they are spent (it does when it would deliver
/// them again, that is while a pull waits) and sends its max-deliveries
/// advisories.
pub async fn exhaust(consumer: &Consumer<pull::Config>, n: usize) {
    let mut taken = 0;
    for _ in 0..60 {
        if pull_without_ack(consumer).await {
            taken += 1;
        }
        if taken == 2 * n {
            break;
        }
    }
    assert_eq!(taken, 2 * n, "the messages were not delivered twice each");
    for _ in 0..3 {
        assert!(!pull_without_ack(consumer).await, "delivered a third time");
    }
}

/// Wait for `run` to end rolled back because its task `lonely` was
/// dead-lettered; `why` names what the test waited for.
pub async fn assert_rolled_back_on_a_dead_letter(
    admin: &baton_proto::client::Admin,
    run: &str,
    why: &str,
) -> baton_proto::v1::Run {
    let r = baton::local::wait_end(admin, run, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{why}: {e}"));
    // The phase fails on it and, as `on_fail` defaults to rollback, rolls back.
    assert_eq!(
        r.run_status(),
        baton_proto::v1::RunStatus::RolledBack,
        "{r:#?}"
    );
    let t = super::task(&r, "lonely");
    assert!(
        t.error.contains("dead-lettered") && t.error.contains("BATON_DEADLETTER"),
        "{}",
        t.error
    );
    r
}
