//! Encoding helpers shared by every publisher and consumer.

use prost::Message;

use crate::kinds::EventKind;
use crate::v1::{event::Body, Event};

/// The last subject token of an event: `baton.evt.<run>.<kind>`; the name
/// of [`EventKind::of`]`(body)`, for callers that build subjects from text.
pub fn event_kind(body: &Body) -> &'static str {
    EventKind::of(body).as_str()
}

/// `baton.evt.<run>.<kind>` of an event body (a claim, `TaskStarted`, goes
/// on [`crate::subjects::task_claim`] instead).
pub fn event_subject(run: &str, body: &Body) -> String {
    EventKind::of(body).subject(run)
}

/// An event stamped with the current wall-clock time.
pub fn event_now(run_id: &str, body: Body) -> Event {
    Event {
        run_id: run_id.to_string(),
        time_ms: now_ms(),
        body: Some(body),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn encode<M: Message>(m: &M) -> bytes::Bytes {
    m.encode_to_vec().into()
}

pub fn decode<M: Message + Default>(b: &[u8]) -> Result<M, prost::DecodeError> {
    M::decode(b)
}

/// Why an event read from the stream is not acted on. NATS permissions bind
/// a credential to subjects, never to bodies: an event counts only when its
/// body says what its subject says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an event subject")]
    NotAnEvent,
    #[error("undecodable: {0}")]
    Undecodable(String),
    #[error("no body")]
    Empty,
    #[error("a `{body}` event under a `{subject}` subject")]
    KindMismatch { subject: String, body: EventKind },
    #[error("an event of run `{body}` under run `{subject}`'s subject")]
    RunMismatch { subject: String, body: String },
    #[error("a claim of {body} on the claim subject of {subject}")]
    ClaimMismatch { subject: String, body: String },
    #[error("a result for {task}#{attempt} from {worker}, which did not claim that attempt")]
    Unclaimed {
        task: String,
        attempt: u32,
        worker: String,
    },
}

impl Refused {
    /// A short stable name, for counters and log fields.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NotAnEvent => "not_an_event",
            Refused::Undecodable(_) => "undecodable",
            Refused::Empty => "empty",
            Refused::KindMismatch { .. } => "kind_mismatch",
            Refused::RunMismatch { .. } => "run_mismatch",
            Refused::ClaimMismatch { .. } => "claim_mismatch",
            Refused::Unclaimed { .. } => "unclaimed",
        }
    }
}

/// Decode an event and bind it to the subject it came on: the body's kind
/// must be the subject's kind, its run the subject's run, and a claim
/// (`baton.evt.<run>.task_started.<role>.<task>.<attempt>`) must be for
/// that very role and attempt. Every reader that acts on events goes through here.
pub fn decode_event(subject: &str, payload: &[u8]) -> Result<Event, Refused> {
    let rest = subject
        .strip_prefix("baton.evt.")
        .ok_or(Refused::NotAnEvent)?;
    let mut tokens = rest.split('.');
    let (Some(run), Some(kind)) = (tokens.next(), tokens.next()) else {
        return Err(Refused::NotAnEvent);
    };
    let claim: Vec<&str> = tokens.collect();
    let ev: Event = decode(payload).map_err(|e| Refused::Undecodable(e.to_string()))?;
    let body = ev.body.as_ref().ok_or(Refused::Empty)?;
    let body_kind = EventKind::of(body);
    if body_kind.as_str() != kind {
        return Err(Refused::KindMismatch {
            subject: kind.to_string(),
            body: body_kind,
        });
    }
    if ev.run_id != run {
        return Err(Refused::RunMismatch {
            subject: run.to_string(),
            body: ev.run_id.clone(),
        });
    }
    match (body, claim.as_slice()) {
        (Body::TaskStarted(s), [role, task, attempt]) => {
            if *role != s.role || *task != s.task_id || *attempt != s.attempt.to_string() {
                return Err(Refused::ClaimMismatch {
                    subject: format!("{task}#{attempt} of role {role}"),
                    body: format!("{}#{} of role {}", s.task_id, s.attempt, s.role),
                });
            }
        }
        (Body::TaskStarted(s), _) => {
            return Err(Refused::ClaimMismatch {
                subject: claim.join("."),
                body: format!("{}#{} of role {}", s.task_id, s.attempt, s.role),
            })
        }
        (_, []) => {}
        (_, _) => return Err(Refused::NotAnEvent),
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    fn bytes(run: &str, body: Body) -> Vec<u8> {
        encode(&event_now(run, body)).to_vec()
    }

    fn decision() -> Body {
        Body::Decision(v1::Decision {
            approve: true,
            by: "alice".into(),
            ..Default::default()
        })
    }

    fn claim(task: &str, attempt: u32) -> Body {
        Body::TaskStarted(v1::TaskStarted {
            task_id: task.into(),
            attempt,
            role: "dev".into(),
            ..Default::default()
        })
    }

    #[test]
    fn an_event_under_its_own_subject_is_taken() {
        let ev = decode_event("baton.evt.r1.decision", &bytes("r1", decision())).unwrap();
        assert_eq!(ev.run_id, "r1");
        decode_event(
            "baton.evt.r1.task_started.dev.build.2",
            &bytes("r1", claim("build", 2)),
        )
        .unwrap();
    }

    #[test]
    fn a_body_of_another_kind_is_refused() {
        let e = decode_event("baton.evt.r1.task_finished", &bytes("r1", decision())).unwrap_err();
        assert_eq!(
            e,
            Refused::KindMismatch {
                subject: "task_finished".into(),
                body: EventKind::Decision
            }
        );
        assert_eq!(
            e.to_string(),
            "a `decision` event under a `task_finished` subject"
        );
    }

    #[test]
    fn a_body_of_another_run_is_refused() {
        let e = decode_event("baton.evt.r1.decision", &bytes("r2", decision())).unwrap_err();
        assert_eq!(e.reason(), "run_mismatch");
    }

    #[test]
    fn a_claim_must_be_for_the_attempt_its_subject_names() {
        for subject in [
            "baton.evt.r1.task_started.dev.build.1",
            "baton.evt.r1.task_started.dev.test.2",
            "baton.evt.r1.task_started.ops.build.2",
            "baton.evt.r1.task_started.build.2",
            "baton.evt.r1.task_started",
            "baton.evt.r1.task_started.dev.build.2.x",
        ] {
            let e = decode_event(subject, &bytes("r1", claim("build", 2))).unwrap_err();
            assert_eq!(e.reason(), "claim_mismatch", "{subject}");
        }
    }

    #[test]
    fn extra_tokens_bad_bytes_and_other_subjects_are_refused() {
        let e = decode_event("baton.evt.r1.decision.x", &bytes("r1", decision())).unwrap_err();
        assert_eq!(e, Refused::NotAnEvent);
        let e = decode_event("baton.task.r1.decision", &bytes("r1", decision())).unwrap_err();
        assert_eq!(e, Refused::NotAnEvent);
        let e = decode_event("baton.evt.r1.decision", b"\xff\xff").unwrap_err();
        assert_eq!(e.reason(), "undecodable");
        let empty = encode(&Event {
            run_id: "r1".into(),
            ..Default::default()
        });
        let e = decode_event("baton.evt.r1.decision", &empty).unwrap_err();
        assert_eq!(e, Refused::Empty);
    }
}
