//! Names on the bus. Changing one is a wire change: bump the stream names too.
//!
//! Ids that go into subjects and keys (runs, plans, roles, tasks, phases) are
//! tokens: [`valid_token`], `[a-z0-9][a-z0-9_-]{0,62}`, so they never hold
//! `.`, `*` or `>`. The plan loader checks plan ids against it, the
//! coordinator run ids and the plan names webhooks name.

pub const EVENTS_STREAM: &str = "BATON_EVENTS";
pub const TASKS_STREAM: &str = "BATON_TASKS";
pub const GATES_STREAM: &str = "BATON_GATES";
pub const LOGS_STREAM: &str = "BATON_LOGS";
pub const PLANS_BUCKET: &str = "baton_plans";
pub const RUNS_BUCKET: &str = "baton_runs";
pub const LEASES_BUCKET: &str = "baton_leases";
pub const WORKERS_BUCKET: &str = "baton_workers";
pub const DEADLETTER_STREAM: &str = "BATON_DEADLETTER";
pub const ARTIFACTS_BUCKET: &str = "baton_artifacts";
pub const ROLES_BUCKET: &str = "baton_roles";
/// Every run's incidents (core NATS; the EVENTS stream keeps them too).
pub const INCIDENTS_ALL: &str = "baton.incident.>";

pub const EVENTS_ALL: &str = "baton.evt.>";
/// The audit trail: one hash chain per run on `baton.audit.<run>`.
pub const AUDIT_STREAM: &str = "BATON_AUDIT";
pub const AUDIT_ALL: &str = "baton.audit.>";
/// Signed evidence bundles (DSSE envelopes), one per ended run.
pub const EVIDENCE_BUCKET: &str = "baton_evidence";
/// Approvals over NATS: `baton.approve.<identity>.<run>`. NATS permissions
/// bind the identity: a credential may publish only under its own name.
pub const APPROVALS_ALL: &str = "baton.approve.*.*";
pub const TASKS_ALL: &str = "baton.task.>";
pub const GATES_ALL: &str = "baton.gate.>";
pub const LOGS_ALL: &str = "baton.log.>";
pub const TRIGGER_ALL: &str = "baton.trigger.*";
pub const DEADLETTER_ALL: &str = "baton.dlq.>";
/// JetStream's advisory when a consumer gives up on a message.
pub const MAX_DELIVERIES_ADVISORY: &str =
    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BATON_TASKS.*";
/// The same advisory for the gate evaluators' consumer (a request no
/// evaluator ever acknowledged).
pub const MAX_DELIVERIES_ADVISORY_GATES: &str =
    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.BATON_GATES.*";
/// The durable consumer shared by all gate evaluators.
pub const GATES_CONSUMER: &str = "gates";

/// Header carrying the W3C trace context, so one run is one trace across processes.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Signatures of webhook requests already accepted, keyed by the signature's
/// hex: a key is created once, so a replay fails at every coordinator.
pub const HOOK_NONCES_BUCKET: &str = "baton_hook_nonces";

/// The longest token, in characters.
pub const MAX_TOKEN_LEN: usize = 63;

/// What makes a string unusable as a token (see [`token_problem`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Empty,
    /// More than [`MAX_TOKEN_LEN`] characters.
    TooLong,
    /// The first character is not a lowercase letter or a digit.
    Starts(char),
    /// The first character that is not a lowercase letter, digit, `-` or `_`.
    Contains(char),
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong => write!(f, "is longer than {MAX_TOKEN_LEN} characters"),
            Self::Starts(c) => write!(f, "starts with `{c}`"),
            Self::Contains(c) => write!(f, "contains `{c}`"),
        }
    }
}

/// Why `s` cannot be one subject token or key part, if it cannot.
///
/// The one rule for ids on the bus: `[a-z0-9][a-z0-9_-]{0,62}`. No `.`
/// (a token separator in subjects and keys), no `*` or `>` (wildcards), no
/// spaces, and one spelling per id (lowercase), so two ids that read alike
/// are the same id. Checked in this order: empty, length, first character,
/// the others.
pub fn token_problem(s: &str) -> Option<TokenProblem> {
    let Some(first) = s.chars().next() else {
        return Some(TokenProblem::Empty);
    };
    // Bytes bound characters: only a long string needs counting.
    if s.len() > MAX_TOKEN_LEN && s.chars().count() > MAX_TOKEN_LEN {
        return Some(TokenProblem::TooLong);
    }
    let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !lower_or_digit(first) {
        return Some(TokenProblem::Starts(first));
    }
    s.chars()
        .find(|&c| !(lower_or_digit(c) || c == '-' || c == '_'))
        .map(TokenProblem::Contains)
}

/// Whether `s` is usable as one subject token or key part: see [`token_problem`].
pub fn valid_token(s: &str) -> bool {
    token_problem(s).is_none()
}

pub fn event(run: &str, kind: &str) -> String {
    format!("baton.evt.{run}.{kind}")
}
/// Where an attempt is claimed: one subject per attempt (see `TaskStarted`).
/// The role is in it so that NATS permissions can confine a worker user to
/// claiming its own roles' attempts (`worker-build`).
pub fn task_claim(run: &str, role: &str, task: &str, attempt: u32) -> String {
    format!("baton.evt.{run}.task_started.{role}.{task}.{attempt}")
}
pub fn run_events(run: &str) -> String {
    format!("baton.evt.{run}.>")
}
/// Every run's events of one kind, e.g. all cancellations (workers watch those).
pub fn events_of_kind(kind: &str) -> String {
    format!("baton.evt.*.{kind}")
}
/// One task's work messages: one subject per task, so that a coordinator
/// taking over a run can see whether a dispatch is already queued.
pub fn task(role: &str, run: &str, task: &str) -> String {
    format!("baton.task.{role}.{run}.{task}")
}
/// Everything queued for one role (a role consumer's filter).
pub fn role_tasks(role: &str) -> String {
    format!("baton.task.{role}.>")
}
pub fn deadletter(role: &str) -> String {
    format!("baton.dlq.{role}")
}
/// Where a gate request of `kind` goes when no evaluator ever answered it.
pub fn deadletter_gate(kind: &str) -> String {
    format!("baton.dlq.gate.{kind}")
}
/// The `leases` key that owns a run.
pub fn run_lease(run: &str) -> String {
    format!("run.{run}")
}
pub fn gate(kind: &str) -> String {
    format!("baton.gate.{kind}")
}
pub fn log(run: &str, task: &str) -> String {
    format!("baton.log.{run}.{task}")
}
pub fn run_logs(run: &str) -> String {
    format!("baton.log.{run}.>")
}
pub fn incident(run: &str) -> String {
    format!("baton.incident.{run}")
}
pub fn audit(run: &str) -> String {
    format!("baton.audit.{run}")
}
pub fn approval(identity: &str, run: &str) -> String {
    format!("baton.approve.{identity}.{run}")
}
pub fn trigger(plan: &str) -> String {
    format!("baton.trigger.{plan}")
}
/// The durable consumer of one role, shared by that role's workers.
pub fn role_consumer(role: &str) -> String {
    format!("role-{role}")
}

/// `Nats-Msg-Id` values: derived from what a message means, so a duplicate
/// publish (a retry after a lost ack, a coordinator replaying) is dropped by
/// the server inside the duplicate window.
pub mod msg_id {
    pub fn submitted(run: &str) -> String {
        format!("{run}:submitted")
    }
    pub fn dispatch(run: &str, task: &str, attempt: u32) -> String {
        format!("{run}:dispatch:{task}:{attempt}")
    }
    pub fn started(run: &str, task: &str, attempt: u32) -> String {
        format!("{run}:started:{task}:{attempt}")
    }
    pub fn finished(run: &str, task: &str, attempt: u32) -> String {
        format!("{run}:finished:{task}:{attempt}")
    }
    pub fn timer(run: &str, task: &str, attempt: u32) -> String {
        format!("{run}:timer:{task}:{attempt}")
    }
    pub fn gate_request(run: &str, phase: &str, gate: u32, round: u32) -> String {
        format!("{run}:gatereq:{phase}:{gate}:{round}")
    }
    pub fn gate_result(run: &str, phase: &str, gate: u32, round: u32) -> String {
        format!("{run}:gate:{phase}:{gate}:{round}")
    }
    pub fn phase(run: &str, phase: &str, status: &str, round: u32) -> String {
        format!("{run}:phase:{phase}:{status}:{round}")
    }
    /// A person's decision: random, since two people may decide the same
    /// thing at once and each must count.
    pub fn decision(run: &str, nonce: u64) -> String {
        format!("{run}:decision:{nonce:016x}")
    }
    pub fn cancel(run: &str) -> String {
        format!("{run}:cancel")
    }
    pub fn incident(run: &str, kind: &str, phase: &str) -> String {
        format!("{run}:incident:{kind}:{phase}")
    }
    /// A stage's timer (canary hold, closed window, approval expiry).
    pub fn stage_timer(run: &str, phase: &str, round: u32, at_ms: i64) -> String {
        format!("{run}:stimer:{phase}:{round}:{at_ms}")
    }
    /// The `n`th record of the run's audit chain.
    pub fn audit(run: &str, n: u64) -> String {
        format!("{run}:audit:{n}")
    }
    pub fn finished_run(run: &str) -> String {
        format!("{run}:finished")
    }
    pub fn lost(run: &str, task: &str, attempt: u32) -> String {
        format!("{run}:lost:{task}:{attempt}")
    }
    pub fn dead_lettered(run: &str, task: &str, attempt: u32) -> String {
        format!("{run}:dlq:{task}:{attempt}")
    }
    /// The DEADLETTER copy of the work-queue message at `seq`.
    pub fn deadletter_copy(seq: u64) -> String {
        format!("dlq:{seq}")
    }
    /// The DEADLETTER copy of the gate request at `seq` of the GATES queue
    /// (whose sequences are not the TASKS queue's).
    pub fn deadletter_gate_copy(seq: u64) -> String {
        format!("dlq:gate:{seq}")
    }
}

#[cfg(test)]
mod tests {
    use super::{msg_id, token_problem, valid_token, TokenProblem, MAX_TOKEN_LEN};

    #[test]
    fn tokens_accept_lowercase_digits_dashes_and_underscores() {
        let longest = "a".repeat(MAX_TOKEN_LEN);
        for ok in [
            "a",
            "7",
            "scan-2_x",
            "release-train_2",
            "0199a3c2f1e5b7d4c9a",
            "a-",
            "a_",
            "a--b",
            longest.as_str(),
        ] {
            assert!(valid_token(ok), "{ok:?}");
            assert_eq!(token_problem(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn tokens_refuse_what_subjects_and_keys_cannot_hold() {
        use TokenProblem::*;
        let too_long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases = [
            ("", Empty),
            (too_long.as_str(), TooLong),
            ("a.b", Contains('.')),
            ("a*", Contains('*')),
            ("a>", Contains('>')),
            ("*", Starts('*')),
            (">", Starts('>')),
            ("a b", Contains(' ')),
            (" a", Starts(' ')),
            ("a\tb", Contains('\t')),
            ("Scan", Starts('S')),
            ("sCan", Contains('C')),
            ("-a", Starts('-')),
            ("_a", Starts('_')),
            ("a/b", Contains('/')),
            ("a:b", Contains(':')),
            ("café", Contains('é')),
        ];
        for (bad, problem) in cases {
            assert!(!valid_token(bad), "{bad:?}");
            assert_eq!(token_problem(bad), Some(problem), "{bad:?}");
        }
        // Length counts characters: 40 non-ASCII ones are short but invalid.
        assert_eq!(token_problem(&"é".repeat(40)), Some(Starts('é')));
        assert_eq!(token_problem(&"é".repeat(64)), Some(TooLong));
    }

    #[test]
    fn token_problems_read_as_the_end_of_a_sentence() {
        assert_eq!(TokenProblem::Empty.to_string(), "is empty");
        assert_eq!(
            TokenProblem::TooLong.to_string(),
            "is longer than 63 characters"
        );
        assert_eq!(TokenProblem::Starts('S').to_string(), "starts with `S`");
        assert_eq!(TokenProblem::Contains('>').to_string(), "contains `>`");
    }

    /// Message ids are on the wire (deduplication across versions): these
    /// are the shapes coordinators and workers already publish.
    #[test]
    fn message_ids_keep_their_shapes() {
        assert_eq!(msg_id::decision("r", 255), "r:decision:00000000000000ff");
        assert_eq!(msg_id::cancel("r"), "r:cancel");
        assert_eq!(msg_id::incident("r", "halt", "p"), "r:incident:halt:p");
        assert_eq!(msg_id::stage_timer("r", "p", 2, 9), "r:stimer:p:2:9");
        assert_eq!(msg_id::audit("r", 3), "r:audit:3");
        assert_eq!(msg_id::dispatch("r", "t", 1), "r:dispatch:t:1");
        assert_eq!(msg_id::deadletter_copy(42), "dlq:42");
        assert_eq!(msg_id::deadletter_gate_copy(42), "dlq:gate:42");
        assert_eq!(msg_id::gate_result("r", "p", 1, 2), "r:gate:p:1:2");
    }
}
