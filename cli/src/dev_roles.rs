//! The roles `baton dev` serves by default.

/// What `baton dev`'s worker serves unless told: the roles of every plan in
/// `examples/` plus common ones, so each example runs on a bare `baton dev`.
pub const DEV_ROLES: &str = "arch,plat,sec,obs,net,ops,qa,docs,dev,ci,build,test,deploy,review,\
patch,scan,conductor,cicd,devops,slo,supplychain,migrations,authz,product,dr,flags,arborist,\
planner,navigator,security,architect,developer,tester,deployer,compliance-checker,\
code-reviewer,patcher,seeder,scanner,fixer,validator";

#[cfg(test)]
mod tests {
    /// Every example runs on a bare `baton dev`: its worker serves their roles.
    #[test]
    fn dev_worker_serves_every_example_role() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let served: Vec<&str> = super::DEV_ROLES.split(',').collect();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let yaml = std::fs::read_to_string(&path).unwrap();
            let plan = baton_plan::load("example.yaml", &yaml).unwrap();
            for role in plan.roles.keys() {
                assert!(
                    served.contains(&role.as_str()),
                    "{}: role {role}",
                    path.display()
                );
            }
        }
    }
}
