//! `tasks: all_ok` and `tasks: { min_ok: N }`: how many of the phase's tasks succeeded.

use baton_proto::kinds;
use baton_proto::v1::{GateRequest, TaskStatus, TasksGate};

use super::Answer;

pub fn evaluate(g: &TasksGate, req: &GateRequest) -> Answer {
    let total = req.tasks.len() as u32;
    let ok = req
        .tasks
        .iter()
        .filter(|t| kinds::task_status(t) == TaskStatus::Succeeded)
        .count() as u32;
    let needed = if g.min_ok == 0 { total } else { g.min_ok };
    let not_ok: Vec<String> = req
        .tasks
        .iter()
        .map(|t| (t, kinds::task_status(t)))
        .filter(|(_, status)| *status != TaskStatus::Succeeded)
        .map(|(t, status)| {
            if t.error.is_empty() {
                format!("task {} {status}", t.task_id)
            } else {
                format!("task {} {status}: {}", t.task_id, t.error)
            }
        })
        .collect();
    let rule = if g.min_ok == 0 {
        "all_ok".to_string()
    } else {
        format!("min_ok {}", g.min_ok)
    };
    if ok >= needed {
        Answer::pass(format!("{ok}/{total} tasks ok ({rule})"))
    } else {
        let mut reasons = vec![format!("{ok}/{total} tasks ok, {rule} needs {needed}")];
        reasons.extend(not_ok);
        Answer::fail(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::v1::Verdict;

    fn req(statuses: &[&str]) -> GateRequest {
        GateRequest {
            tasks: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    kinds::task_summary(
                        format!("t{i}"),
                        s.parse().unwrap(),
                        if *s == "failed" {
                            "exit code 2".into()
                        } else {
                            String::new()
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn all_ok_needs_every_task() {
        let a = evaluate(&TasksGate { min_ok: 0 }, &req(&["succeeded", "succeeded"]));
        assert_eq!(a.verdict, Verdict::Pass);
        let a = evaluate(&TasksGate { min_ok: 0 }, &req(&["succeeded", "failed"]));
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(
            a.reasons.iter().any(|r| r == "task t1 failed: exit code 2"),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn min_ok_counts() {
        let r = req(&["succeeded", "failed", "skipped"]);
        assert_eq!(
            evaluate(&TasksGate { min_ok: 1 }, &r).verdict,
            Verdict::Pass
        );
        let a = evaluate(&TasksGate { min_ok: 2 }, &r);
        assert_eq!(a.verdict, Verdict::Fail);
        assert_eq!(a.reasons[0], "1/3 tasks ok, min_ok 2 needs 2");
    }
}
