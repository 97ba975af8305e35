//! `approval: { quorum: N, allow_self_approval: false }`: people decide.
//!
//! Pending until N distinct people approved; any rejection fails it. An
//! approval without a reason, or by the run's submitter when the plan forbids
//! self-approval, does not count, and the reasons say so: a person reading
//! `baton status` must see why their approval did not move the run.

use baton_proto::v1::{ApprovalGate, GateRequest, Verdict};

use super::Answer;

pub fn evaluate(g: &ApprovalGate, req: &GateRequest) -> Answer {
    if let Some(r) = req.decisions.iter().find(|d| !d.approve) {
        return Answer::fail(vec![format!("rejected by {}: {}", r.by, r.reason)]);
    }
    let quorum = g.quorum.max(1) as usize;
    let mut ignored = Vec::new();
    // One person counts once, however often they approve.
    let mut approvers: Vec<&str> = Vec::new();
    for d in &req.decisions {
        if d.reason.trim().is_empty() {
            ignored.push(format!("approval by {} ignored: it gives no reason", d.by));
        } else if !g.allow_self_approval && !req.submitted_by.is_empty() && d.by == req.submitted_by
        {
            ignored.push(format!(
                "approval by {} ignored: they submitted the run, and this gate forbids self-approval",
                d.by
            ));
        } else if !approvers.contains(&d.by.as_str()) {
            approvers.push(&d.by);
        }
    }
    ignored.dedup();
    if approvers.len() >= quorum {
        let mut reasons = vec![format!("approved by {}", approvers.join(", "))];
        reasons.extend(ignored);
        return Answer {
            verdict: Verdict::Pass,
            reasons,
            retry_at_ms: 0,
        };
    }
    let so_far = match approvers.as_slice() {
        [] => "no approvals yet".to_string(),
        who => format!("approved so far by {}", who.join(", ")),
    };
    let more = quorum - approvers.len();
    let mut needed = format!(
        "{}/{quorum} approvals, {so_far}; {more} more needed",
        approvers.len()
    );
    if !g.allow_self_approval && !req.submitted_by.is_empty() {
        needed.push_str(&format!(
            " (not {}, who submitted the run)",
            req.submitted_by
        ));
    }
    needed.push_str(&format!(
        " — approve with `baton approve {} --reason \"…\"`",
        req.run_id
    ));
    let mut reasons = vec![needed];
    reasons.extend(ignored);
    Answer {
        verdict: Verdict::Pending,
        retry_at_ms: 0,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::v1::Decision;

    fn d(approve: bool, by: &str, reason: &str) -> Decision {
        Decision {
            approve,
            by: by.into(),
            reason: reason.into(),
            task_id: String::new(),
        }
    }

    fn gate(quorum: u32, allow_self_approval: bool) -> ApprovalGate {
        ApprovalGate {
            quorum,
            allow_self_approval,
            ..Default::default()
        }
    }

    fn req(submitted_by: &str, decisions: Vec<Decision>) -> GateRequest {
        GateRequest {
            run_id: "r1".into(),
            submitted_by: submitted_by.into(),
            decisions,
            ..Default::default()
        }
    }

    #[test]
    fn quorum_of_distinct_people() {
        let g = gate(2, true);
        let a = evaluate(&g, &req("sub", vec![]));
        assert_eq!(a.verdict, Verdict::Pending);
        assert!(a.reasons[0].starts_with("0/2 approvals, no approvals yet; 2 more needed"));
        let twice = vec![d(true, "alice", "ok"), d(true, "alice", "still ok")];
        let a = evaluate(&g, &req("sub", twice.clone()));
        assert_eq!(a.verdict, Verdict::Pending, "one person counts once");
        assert!(
            a.reasons[0].starts_with("1/2 approvals, approved so far by alice; 1 more needed"),
            "{a:?}"
        );
        let mut both = twice;
        both.push(d(true, "bob", "ok"));
        let a = evaluate(&g, &req("sub", both.clone()));
        assert_eq!(a.verdict, Verdict::Pass);
        assert_eq!(a.reasons[0], "approved by alice, bob");
        both.push(d(false, "carol", "not on a Friday"));
        let a = evaluate(&g, &req("sub", both));
        assert_eq!(a.verdict, Verdict::Fail);
        assert_eq!(a.reasons[0], "rejected by carol: not on a Friday");
    }

    #[test]
    fn the_submitter_does_not_count_when_self_approval_is_forbidden() {
        let ds = vec![d(true, "alice", "mine, looks good"), d(true, "bob", "ok")];
        let a = evaluate(&gate(2, false), &req("alice", ds.clone()));
        assert_eq!(a.verdict, Verdict::Pending, "{a:?}");
        assert!(
            a.reasons[0].contains("1/2 approvals, approved so far by bob"),
            "{a:?}"
        );
        assert!(
            a.reasons[0].contains("(not alice, who submitted the run)"),
            "{a:?}"
        );
        assert!(
            a.reasons[1].contains("approval by alice ignored: they submitted the run"),
            "{a:?}"
        );
        // Allowed, the same decisions reach the quorum.
        assert_eq!(
            evaluate(&gate(2, true), &req("alice", ds)).verdict,
            Verdict::Pass
        );
        // The submitter may still reject: stopping a run needs no second pair of eyes.
        let a = evaluate(
            &gate(1, false),
            &req("alice", vec![d(false, "alice", "oops")]),
        );
        assert_eq!(a.verdict, Verdict::Fail);
    }

    #[test]
    fn an_approval_without_a_reason_does_not_count() {
        let a = evaluate(&gate(1, true), &req("sub", vec![d(true, "alice", "  ")]));
        assert_eq!(a.verdict, Verdict::Pending);
        assert!(
            a.reasons[1].contains("approval by alice ignored: it gives no reason"),
            "{a:?}"
        );
    }
}
