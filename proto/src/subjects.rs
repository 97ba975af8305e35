//! Names on the bus. Changing one is a wire change: bump the stream names too.
//!
//! Ids that go into subjects (runs, roles, tasks, phases) are validated by the
//! plan loader to `[a-z0-9][a-z0-9_-]*`, so they never hold `.`, `*` or `>`.

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
/// The durable consumer shared by all gate evaluators.
pub const GATES_CONSUMER: &str = "gates";

/// Header carrying the W3C trace context, so one run is one trace across processes.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Signatures of webhook requests already accepted, keyed by the signature's
/// hex: a key is created once, so a replay fails at every coordinator.
pub const HOOK_NONCES_BUCKET: &str = "baton_hook_nonces";

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
}

#[cfg(test)]
mod tests {
    use super::msg_id;

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
    }
}
