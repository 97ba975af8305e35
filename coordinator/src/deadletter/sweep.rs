//! The sweep: messages a consumer gave up on whose advisory nobody heard.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};

use super::*;

/// Sweep the queues at once, then every `every` (zero: never), for
/// messages a consumer gave up on whose advisory nobody heard.
pub async fn sweep(
    dl: DeadLetters,
    every: Duration,
    cancel: CancellationToken,
) -> Result<(), Error> {
    if every.is_zero() {
        cancel.cancelled().await;
        return Ok(());
    }
    loop {
        let pass = sweep_once(&dl, SETTLE);
        let r = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = pass => r,
        };
        match r {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                moved = n,
                "the dead-letter sweep moved messages whose max-deliveries advisory no coordinator heard"
            ),
            Err(e) => {
                tracing::warn!(error = %e, every = ?every, "dead-letter sweep failed; the next one tries again")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One sweep of both queues: the messages found spent twice, `settle`
/// apart, are moved. How many were.
pub(super) async fn sweep_once(
    dl: &DeadLetters,
    settle: Duration,
) -> Result<usize, async_nats::Error> {
    let mut moved = 0;
    for queue in [Queue::Tasks, Queue::Gates] {
        let first = spent(dl.queue(queue)).await?;
        if first.is_empty() {
            continue;
        }
        tokio::time::sleep(settle).await;
        let again = spent(dl.queue(queue)).await?;
        for s in first.iter().filter(|s| again.contains(s)) {
            match move_one(dl, queue, s.seq, s.deliveries, FoundBy::Sweep).await {
                Ok(Moved::Moved) => moved += 1,
                Ok(Moved::Gone) => {}
                Err(e) => {
                    tracing::error!(?queue, seq = s.seq, error = %e, "message not dead-lettered; the next sweep tries again")
                }
            }
        }
    }
    Ok(moved)
}

/// A message a consumer gave up on: its sequence in the queue, and the
/// deliveries the consumer allowed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spent {
    seq: u64,
    deliveries: u32,
}

/// The messages of `queue` that a consumer gave up on.
///
/// JetStream keeps no delivery count with a stored message, and tells which
/// messages a consumer still waits on only as a number. But a work queue
/// removes a message once it is acknowledged, and a consumer's ack floor
/// only passes messages it no longer waits on: acknowledged ones, and the
/// ones it gave up on (it stops waiting when it notices, which it does while
/// a pull waits, the same moment it sends the advisory). So a message still
/// in the queue, of the consumer's subjects, at or below its ack floor, was
/// given up on; and when the consumer waits on nothing at all, so was every
/// message still in the queue up to the last one it delivered.
///
/// A spent message above the floor, while an older one is still out with a
/// worker, is found once that one is answered or given up on too.
async fn spent(queue: &Stream) -> Result<Vec<Spent>, async_nats::Error> {
    let all_subjects = queue.cached_info().config.subjects.clone();
    let mut out = Vec::new();
    let mut consumers = queue.consumers();
    while let Some(info) = consumers.try_next().await? {
        let c = &info.config;
        // Only consumers that give up, and that began at the first message
        // (one that began later never delivered what lies below its start).
        if c.max_deliver <= 0
            || c.ack_policy == AckPolicy::None
            || c.deliver_policy != DeliverPolicy::All
        {
            continue;
        }
        let upto = if info.num_ack_pending == 0 {
            info.delivered.stream_sequence
        } else {
            info.ack_floor.stream_sequence
        };
        if upto == 0 {
            continue;
        }
        let filters = if !c.filter_subjects.is_empty() {
            c.filter_subjects.clone()
        } else if !c.filter_subject.is_empty() {
            vec![c.filter_subject.clone()]
        } else {
            all_subjects.clone()
        };
        for f in &filters {
            let mut from = 1;
            while out.len() < MAX_PER_SWEEP {
                let m = match queue.get_first_raw_message_by_subject(f, from).await {
                    Ok(m) => m,
                    Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
                    Err(e) => return Err(e.into()),
                };
                if m.sequence > upto {
                    break;
                }
                out.push(Spent {
                    seq: m.sequence,
                    deliveries: c.max_deliver as u32,
                });
                from = m.sequence + 1;
            }
        }
    }
    Ok(out)
}
