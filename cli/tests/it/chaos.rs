//! The short chaos run of CI: one fault of each kind on local processes,
//! under 5 minutes, with every invariant checked. The long run is
//! `baton chaos` (docs/operations.md); its figures are in docs/reliability.md.

use std::time::Duration;

use baton_chaos::{self as chaos, ChaosOptions, FaultKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fault_of_each_kind_loses_nothing_and_does_nothing_twice() {
    let o = ChaosOptions::short(env!("CARGO_BIN_EXE_baton").into());
    let ack_wait = o.ack_wait;
    let report = chaos::run(o).await.expect("the chaos cluster runs");
    println!("{}", report.text());
    for k in FaultKind::ALL {
        assert_eq!(
            report.faults.get(&k.to_string()),
            Some(&1),
            "{k} was not injected once"
        );
    }
    let i = &report.invariants;
    assert_eq!(i.runs_lost, 0, "{:#?}", i.violations);
    assert_eq!(i.duplicate_effects, 0, "{:#?}", i.violations);
    assert_eq!(i.effects_missing, 0, "{:#?}", i.violations);
    assert_eq!(
        (i.phases_skipped, i.phases_repeated),
        (0, 0),
        "{:#?}",
        i.violations
    );
    assert_eq!(i.runs_succeeded, i.runs_submitted);
    assert!(i.deliveries >= i.runs_submitted * 8, "{i:?}");
    // Faults aim at busy workers and at coordinators that own runs, but a
    // task can end between the aim and the blow, so a kind may touch no work
    // and go unmeasured; its bound is held by the dedicated tests
    // (e2e_takeover). What was measured is held to its bound here.
    for k in FaultKind::ALL {
        if !report.recovery.contains_key(&k.to_string()) {
            println!("{k}: touched no work in flight this time; not measured");
        }
    }
    for (kind, r) in &report.recovery {
        let bound = match kind.as_str() {
            "coordinator_kill" => Duration::from_secs(10),
            "nats_restart" => Duration::from_secs(15),
            _ => ack_wait + Duration::from_secs(5),
        };
        assert!(
            r.max_ms <= bound.as_millis() as f64,
            "recovery after {kind} took {} ms (bound {bound:?})",
            r.max_ms
        );
    }
}
