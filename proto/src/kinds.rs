//! The bus's vocabulary as typed values: what kind an event is (the last
//! token of its subject) and the statuses its bodies carry.
//!
//! Every name here is on the wire or in stored text (subjects, audit
//! records, evidence, snapshots): [`EventKind::as_str`] and the statuses'
//! `as_str` give exactly the names Baton has always used.
//!
//! # Statuses of events written before the enums
//!
//! `PhaseChanged`, `RunFinished` and `TaskSummary` once carried their
//! status as text only (`string status`). The enum is a new field beside
//! it, so an old message still decodes; read a status through
//! [`phase_status`], [`run_status`] and [`task_status`], which take the enum
//! and fall back to the old text when the enum is unspecified. The text is
//! deprecated and no longer written: build the messages with
//! [`phase_changed`], [`run_finished`] and [`task_summary`], which write the
//! enum only.

use std::fmt;
use std::str::FromStr;

use crate::v1::{self, event::Body};

/// A name that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct Unknown {
    pub what: &'static str,
    pub name: String,
}

/// Implements `as_str`, `parse`, `FromStr` and `Display` over one table.
macro_rules! vocabulary {
    ($ty:ty, $what:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// Its name on the wire and in stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
        impl FromStr for $ty {
            type Err = Unknown;
            fn from_str(s: &str) -> Result<Self, Unknown> {
                Self::parse(s).ok_or_else(|| Unknown {
                    what: $what,
                    name: s.to_string(),
                })
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, so widths and alignment (`{:<12}`) apply as to a `str`.
                f.pad(self.as_str())
            }
        }
    };
}

/// What an event is: one kind per `event::Body` variant, named by the last
/// token of its subject, `baton.evt.<run>.<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    RunSubmitted,
    TaskStarted,
    TaskFinished,
    GateEvaluated,
    Decision,
    CancelRequested,
    TimerFired,
    TaskLost,
    TaskDeadLettered,
    PhaseChanged,
    RunFinished,
    Incident,
}

vocabulary!(EventKind, "event kind", [
    RunSubmitted => "submitted",
    TaskStarted => "task_started",
    TaskFinished => "task_finished",
    GateEvaluated => "gate",
    Decision => "decision",
    CancelRequested => "cancel",
    TimerFired => "timer",
    TaskLost => "task_lost",
    TaskDeadLettered => "task_dead_lettered",
    PhaseChanged => "phase",
    RunFinished => "finished",
    Incident => "incident",
]);

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::RunSubmitted,
        EventKind::TaskStarted,
        EventKind::TaskFinished,
        EventKind::GateEvaluated,
        EventKind::Decision,
        EventKind::CancelRequested,
        EventKind::TimerFired,
        EventKind::TaskLost,
        EventKind::TaskDeadLettered,
        EventKind::PhaseChanged,
        EventKind::RunFinished,
        EventKind::Incident,
    ];

    pub fn of(body: &Body) -> EventKind {
        match body {
            Body::RunSubmitted(_) => EventKind::RunSubmitted,
            Body::TaskStarted(_) => EventKind::TaskStarted,
            Body::TaskFinished(_) => EventKind::TaskFinished,
            Body::GateEvaluated(_) => EventKind::GateEvaluated,
            Body::Decision(_) => EventKind::Decision,
            Body::CancelRequested(_) => EventKind::CancelRequested,
            Body::TimerFired(_) => EventKind::TimerFired,
            Body::TaskLost(_) => EventKind::TaskLost,
            Body::TaskDeadLettered(_) => EventKind::TaskDeadLettered,
            Body::PhaseChanged(_) => EventKind::PhaseChanged,
            Body::RunFinished(_) => EventKind::RunFinished,
            Body::Incident(_) => EventKind::Incident,
        }
    }

    /// `baton.evt.<run>.<kind>`: where a run's event of this kind is published
    /// (a claim, `TaskStarted`, goes on [`crate::subjects::task_claim`]).
    pub fn subject(self, run: &str) -> String {
        crate::subjects::event(run, self.as_str())
    }

    /// `baton.evt.*.<kind>`: every run's events of this kind.
    pub fn of_every_run(self) -> String {
        crate::subjects::events_of_kind(self.as_str())
    }
}

vocabulary!(v1::RunStatus, "run status", [
    Unspecified => "unspecified",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    RolledBack => "rolled_back",
    Halted => "halted",
    Cancelled => "cancelled",
]);

vocabulary!(v1::PhaseStatus, "phase status", [
    Unspecified => "unspecified",
    Pending => "pending",
    Running => "running",
    Gating => "gating",
    Passed => "passed",
    Failed => "failed",
    RolledBack => "rolled_back",
    Holding => "holding",
    Skipped => "skipped",
    AwaitingApproval => "awaiting_approval",
    Retrying => "retrying",
    Waiting => "waiting",
]);

vocabulary!(v1::TaskStatus, "task status", [
    Unspecified => "unspecified",
    Pending => "pending",
    AwaitingApproval => "awaiting_approval",
    Queued => "queued",
    Running => "running",
    RetryWait => "retry_wait",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Cancelled => "cancelled",
]);

/// The enum when it is set, else the old text (`Unspecified` if that is
/// empty or unknown too).
fn enum_or_legacy<S: TryFrom<i32> + FromStr + Default + PartialEq>(value: i32, legacy: &str) -> S {
    match S::try_from(value) {
        Ok(s) if s != S::default() => s,
        _ => legacy.parse().unwrap_or_default(),
    }
}

/// A `PhaseChanged`'s status, from an event of either shape.
#[allow(deprecated)] // the fallback is what the old field is kept for
pub fn phase_status(p: &v1::PhaseChanged) -> v1::PhaseStatus {
    enum_or_legacy(p.phase_status, &p.status)
}

/// A `RunFinished`'s status, from an event of either shape.
#[allow(deprecated)] // the fallback is what the old field is kept for
pub fn run_status(f: &v1::RunFinished) -> v1::RunStatus {
    enum_or_legacy(f.run_status, &f.status)
}

/// A `TaskSummary`'s status, from a gate request of either shape.
#[allow(deprecated)] // the fallback is what the old field is kept for
pub fn task_status(t: &v1::TaskSummary) -> v1::TaskStatus {
    enum_or_legacy(t.task_status, &t.status)
}

/// A `PhaseChanged` as coordinators write it now: the enum only.
pub fn phase_changed(
    phase_id: String,
    status: v1::PhaseStatus,
    reason: String,
) -> v1::PhaseChanged {
    v1::PhaseChanged {
        phase_id,
        phase_status: status.into(),
        reason,
        ..Default::default()
    }
}

/// A `RunFinished` as coordinators write it now: the enum only.
pub fn run_finished(status: v1::RunStatus, reason: String) -> v1::RunFinished {
    v1::RunFinished {
        run_status: status.into(),
        reason,
        ..Default::default()
    }
}

/// A `TaskSummary` as coordinators write it now: the enum only.
pub fn task_summary(task_id: String, status: v1::TaskStatus, error: String) -> v1::TaskSummary {
    v1::TaskSummary {
        task_id,
        task_status: status.into(),
        error,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::codec;

    /// Subject tokens are on the wire: these are the ones publishers,
    /// NATS permissions and stored events already use.
    #[test]
    fn event_kinds_keep_their_subject_names() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "submitted",
                "task_started",
                "task_finished",
                "gate",
                "decision",
                "cancel",
                "timer",
                "task_lost",
                "task_dead_lettered",
                "phase",
                "finished",
                "incident",
            ]
        );
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(
            "phase_changed"
                .parse::<EventKind>()
                .unwrap_err()
                .to_string(),
            "unknown event kind `phase_changed`"
        );
        assert_eq!(
            EventKind::RunFinished.subject("r1"),
            "baton.evt.r1.finished"
        );
        assert_eq!(
            EventKind::CancelRequested.of_every_run(),
            "baton.evt.*.cancel"
        );
    }

    #[test]
    fn every_body_has_its_own_kind() {
        let bodies = [
            Body::RunSubmitted(Default::default()),
            Body::TaskStarted(Default::default()),
            Body::TaskFinished(Default::default()),
            Body::GateEvaluated(Default::default()),
            Body::Decision(Default::default()),
            Body::CancelRequested(Default::default()),
            Body::TimerFired(Default::default()),
            Body::TaskLost(Default::default()),
            Body::TaskDeadLettered(Default::default()),
            Body::PhaseChanged(Default::default()),
            Body::RunFinished(Default::default()),
            Body::Incident(Default::default()),
        ];
        let kinds: Vec<EventKind> = bodies.iter().map(EventKind::of).collect();
        assert_eq!(kinds, EventKind::ALL);
        for b in &bodies {
            assert_eq!(codec::event_kind(b), EventKind::of(b).as_str());
        }
    }

    #[test]
    fn status_names_are_lowercase_snake_case_and_parse_back() {
        for v in 0..20 {
            if let Ok(s) = v1::RunStatus::try_from(v) {
                assert_eq!(v1::RunStatus::parse(s.as_str()), Some(s));
            }
            if let Ok(s) = v1::PhaseStatus::try_from(v) {
                assert_eq!(v1::PhaseStatus::parse(s.as_str()), Some(s));
            }
            if let Ok(s) = v1::TaskStatus::try_from(v) {
                assert_eq!(v1::TaskStatus::parse(s.as_str()), Some(s));
            }
        }
        assert_eq!(v1::PhaseStatus::Holding.as_str(), "holding");
        assert_eq!(
            v1::PhaseStatus::AwaitingApproval.as_str(),
            "awaiting_approval"
        );
        assert_eq!(v1::RunStatus::RolledBack.as_str(), "rolled_back");
        assert_eq!(v1::TaskStatus::RetryWait.as_str(), "retry_wait");
        assert_eq!("holding".parse(), Ok(v1::PhaseStatus::Holding));
        assert!("HOLDING".parse::<v1::PhaseStatus>().is_err());
        // Printed like the `str` it stands for, widths included (`baton runs`).
        assert_eq!(format!("{:<9}|", v1::RunStatus::Halted), "halted   |");
        assert_eq!(format!("{}", v1::TaskStatus::RetryWait), "retry_wait");
    }

    /// The messages as they were before the enums: the string field alone,
    /// at the same field numbers.
    mod old_shape {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct PhaseChanged {
            #[prost(string, tag = "1")]
            pub phase_id: String,
            #[prost(string, tag = "2")]
            pub status: String,
            #[prost(string, tag = "3")]
            pub reason: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct RunFinished {
            #[prost(string, tag = "1")]
            pub status: String,
            #[prost(string, tag = "2")]
            pub reason: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Event {
            #[prost(string, tag = "1")]
            pub run_id: String,
            #[prost(int64, tag = "2")]
            pub time_ms: i64,
            #[prost(message, optional, tag = "20")]
            pub phase_changed: Option<PhaseChanged>,
            #[prost(message, optional, tag = "22")]
            pub run_finished: Option<RunFinished>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct TaskSummary {
            #[prost(string, tag = "1")]
            pub task_id: String,
            #[prost(string, tag = "2")]
            pub status: String,
            #[prost(string, tag = "3")]
            pub error: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct GateRequest {
            #[prost(string, tag = "1")]
            pub run_id: String,
            #[prost(string, tag = "2")]
            pub phase_id: String,
            #[prost(message, repeated, tag = "6")]
            pub tasks: Vec<TaskSummary>,
        }
    }

    #[test]
    fn events_written_before_the_enums_read_their_status_from_the_text() {
        let old = old_shape::Event {
            run_id: "r1".into(),
            time_ms: 7,
            phase_changed: Some(old_shape::PhaseChanged {
                phase_id: "canary".into(),
                status: "holding".into(),
                reason: "hold 5m".into(),
            }),
            run_finished: None,
        };
        let ev = codec::decode_event("baton.evt.r1.phase", &old.encode_to_vec()).unwrap();
        let Some(Body::PhaseChanged(p)) = &ev.body else {
            panic!("{ev:?}")
        };
        assert_eq!(p.phase_status, 0, "the old event has no enum");
        assert_eq!(phase_status(p), v1::PhaseStatus::Holding);
        assert_eq!(p.reason, "hold 5m");

        let old = old_shape::Event {
            run_id: "r1".into(),
            time_ms: 8,
            phase_changed: None,
            run_finished: Some(old_shape::RunFinished {
                status: "rolled_back".into(),
                reason: "phase deploy failed".into(),
            }),
        };
        let ev = codec::decode_event("baton.evt.r1.finished", &old.encode_to_vec()).unwrap();
        let Some(Body::RunFinished(f)) = &ev.body else {
            panic!("{ev:?}")
        };
        assert_eq!(run_status(f), v1::RunStatus::RolledBack);

        let old = old_shape::GateRequest {
            run_id: "r1".into(),
            phase_id: "verify".into(),
            tasks: vec![
                old_shape::TaskSummary {
                    task_id: "a".into(),
                    status: "succeeded".into(),
                    error: String::new(),
                },
                old_shape::TaskSummary {
                    task_id: "b".into(),
                    status: "failed".into(),
                    error: "exit 1".into(),
                },
            ],
        };
        let req = v1::GateRequest::decode(old.encode_to_vec().as_slice()).unwrap();
        assert_eq!(req.tasks[0].task_status, 0, "the old request has no enum");
        let read: Vec<_> = req
            .tasks
            .iter()
            .map(|t| (t.task_id.as_str(), task_status(t), t.error.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                ("a", v1::TaskStatus::Succeeded, ""),
                ("b", v1::TaskStatus::Failed, "exit 1"),
            ]
        );
    }

    #[test]
    fn the_enum_wins_and_new_messages_read_back_in_either_shape() {
        let p = phase_changed("p".into(), v1::PhaseStatus::Gating, String::new());
        let back = v1::PhaseChanged::decode(p.encode_to_vec().as_slice()).unwrap();
        assert_eq!(phase_status(&back), v1::PhaseStatus::Gating);
        // Only the enum is written: a reader of the old shape sees no status.
        let old = old_shape::PhaseChanged::decode(p.encode_to_vec().as_slice()).unwrap();
        assert_eq!((old.phase_id.as_str(), old.status.as_str()), ("p", ""));

        let t = task_summary("t".into(), v1::TaskStatus::Skipped, "e".into());
        let back = v1::TaskSummary::decode(t.encode_to_vec().as_slice()).unwrap();
        assert_eq!(task_status(&back), v1::TaskStatus::Skipped);
        // Only the enum is written: a reader of the old shape sees no status.
        let old = old_shape::TaskSummary::decode(t.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (
                old.task_id.as_str(),
                old.status.as_str(),
                old.error.as_str()
            ),
            ("t", "", "e")
        );

        let f = run_finished(v1::RunStatus::Halted, "r".into());
        let back = v1::RunFinished::decode(f.encode_to_vec().as_slice()).unwrap();
        assert_eq!(run_status(&back), v1::RunStatus::Halted);
        // Only the enum is written: a reader of the old shape sees no status.
        let old = old_shape::RunFinished::decode(f.encode_to_vec().as_slice()).unwrap();
        assert_eq!((old.status.as_str(), old.reason.as_str()), ("", "r"));

        // Both set: the enum is the status.
        let p = v1::PhaseChanged {
            #[allow(deprecated)]
            status: "failed".into(),
            ..phase_changed("p".into(), v1::PhaseStatus::Passed, String::new())
        };
        assert_eq!(phase_status(&p), v1::PhaseStatus::Passed);
        let t = v1::TaskSummary {
            #[allow(deprecated)]
            status: "failed".into(),
            ..task_summary("t".into(), v1::TaskStatus::Succeeded, String::new())
        };
        assert_eq!(task_status(&t), v1::TaskStatus::Succeeded);
        // Neither, or text no Baton wrote.
        let p = v1::PhaseChanged::default();
        assert_eq!(phase_status(&p), v1::PhaseStatus::Unspecified);
        let p = v1::PhaseChanged {
            #[allow(deprecated)]
            status: "exploded".into(),
            ..Default::default()
        };
        assert_eq!(phase_status(&p), v1::PhaseStatus::Unspecified);
        assert_eq!(
            task_status(&v1::TaskSummary::default()),
            v1::TaskStatus::Unspecified
        );
        // An enum value from a newer Baton that this one does not know.
        let f = v1::RunFinished {
            run_status: 99,
            #[allow(deprecated)]
            status: "failed".into(),
            ..Default::default()
        };
        assert_eq!(run_status(&f), v1::RunStatus::Failed);
    }
}
