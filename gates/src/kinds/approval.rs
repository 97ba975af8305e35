//! `approval: { quorum: N }`: people decide. Pending until N approvals; any rejection fails it.

use baton_proto::v1::{ApprovalGate, GateRequest, Verdict};

use super::Answer;

pub fn evaluate(g: &ApprovalGate, req: &GateRequest) -> Answer {
    if let Some(r) = req.decisions.iter().find(|d| !d.approve) {
        return Answer::fail(vec![format!("rejected by {}: {}", r.by, r.reason)]);
    }
    let quorum = g.quorum.max(1) as usize;
    // One person counts once, however often they approve.
    let mut approvers: Vec<&str> = req.decisions.iter().map(|d| d.by.as_str()).collect();
    approvers.sort_unstable();
    approvers.dedup();
    if approvers.len() >= quorum {
        Answer::pass(format!("approved by {}", approvers.join(", ")))
    } else {
        Answer {
            verdict: Verdict::Pending,
            retry_at_ms: 0,
            reasons: vec![format!(
                "{}/{quorum} approvals — approve with `baton approve {} --reason \"…\"`",
                approvers.len(),
                req.run_id
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::v1::Decision;

    fn d(approve: bool, by: &str) -> Decision {
        Decision {
            approve,
            by: by.into(),
            reason: "r".into(),
            task_id: String::new(),
        }
    }

    #[test]
    fn quorum_of_distinct_people() {
        let g = ApprovalGate { quorum: 2 };
        let mut req = GateRequest::default();
        assert_eq!(evaluate(&g, &req).verdict, Verdict::Pending);
        req.decisions = vec![d(true, "alice"), d(true, "alice")];
        assert_eq!(evaluate(&g, &req).verdict, Verdict::Pending);
        req.decisions.push(d(true, "bob"));
        assert_eq!(evaluate(&g, &req).verdict, Verdict::Pass);
        req.decisions.push(d(false, "carol"));
        let a = evaluate(&g, &req);
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.reasons[0].contains("rejected by carol"));
    }
}
