//! Any text given as a plan: loading it either yields a plan or
//! diagnostics, never a panic, a hang or a stack overflow. A plan that loads
//! is also summarised and its tasks' templates rendered, as the coordinator does.
#![no_main]

use std::collections::BTreeMap;

use baton_plan as plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match plan::load("fuzz.yaml", text) {
        Ok(p) => {
            let _ = plan::summary(&p);
            let inputs: BTreeMap<String, String> = p
                .inputs
                .iter()
                .map(|i| (i.name.clone(), "x".to_string()))
                .collect();
            for phase in &p.phases {
                for task in phase.tasks.iter().chain(&phase.rollback) {
                    for arg in &task.run {
                        let _ = plan::render(arg, &inputs, &BTreeMap::new());
                    }
                }
            }
        }
        Err(e) => {
            // Every diagnostic points inside the file (lines count from 1).
            for d in &e.diagnostics {
                assert!(d.line >= 1, "diagnostic without a line: {d:?}");
            }
            let _ = e.to_string();
        }
    }
});
