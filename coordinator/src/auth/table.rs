//! Which role each admin method needs at least. A method not in the table
//! is refused to everyone: a new RPC stays closed until someone decides.

use super::Role;

/// `(gRPC path, least role)` for every method the coordinator serves.
pub const TABLE: &[(&str, Role)] = &[
    ("/baton.v1.Admin/GetRun", Role::Viewer),
    ("/baton.v1.Admin/ListRuns", Role::Viewer),
    ("/baton.v1.Admin/WatchRun", Role::Viewer),
    ("/baton.v1.Admin/Logs", Role::Viewer),
    ("/baton.v1.Admin/ListWorkers", Role::Viewer),
    ("/baton.v1.Admin/ListRoles", Role::Viewer),
    // Evidence holds what runs did, no secrets: whoever may read runs may export it.
    ("/baton.v1.Admin/GetEvidence", Role::Viewer),
    ("/baton.v1.Admin/SubmitRun", Role::Operator),
    ("/baton.v1.Admin/CancelRun", Role::Operator),
    ("/baton.v1.Admin/ApplyPlan", Role::Operator),
    ("/baton.v1.Admin/ApplyRoles", Role::Operator),
    ("/baton.v1.Admin/Approve", Role::Approver),
    ("/baton.v1.Admin/Reject", Role::Approver),
    // Reflection describes the API, which is public in the source anyway;
    // it still needs a token so that anonymous scanners learn nothing.
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Role::Viewer,
    ),
];

/// The least role allowed to call `path`; None for a method nobody may call.
pub fn least_role(path: &str) -> Option<Role> {
    TABLE.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rpc of the proto file has a row, so a new method cannot ship
    /// without someone choosing its role.
    #[test]
    fn every_admin_rpc_has_a_row() {
        let proto = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/baton/v1/admin.proto"
        ))
        .unwrap();
        let rpcs: Vec<&str> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .map(|l| l.split('(').next().unwrap().trim())
            .collect();
        assert!(rpcs.len() >= 12, "found only {rpcs:?}");
        for m in &rpcs {
            let path = format!("/baton.v1.Admin/{m}");
            assert!(least_role(&path).is_some(), "{path} has no row");
        }
        // And no row names a method that does not exist.
        let admin_rows = TABLE
            .iter()
            .filter(|(p, _)| p.starts_with("/baton.v1.Admin/"));
        assert_eq!(admin_rows.count(), rpcs.len());
    }

    #[test]
    fn decisions_need_an_approver_and_writes_an_operator() {
        assert_eq!(least_role("/baton.v1.Admin/Approve"), Some(Role::Approver));
        assert_eq!(least_role("/baton.v1.Admin/Reject"), Some(Role::Approver));
        assert_eq!(
            least_role("/baton.v1.Admin/SubmitRun"),
            Some(Role::Operator)
        );
        assert_eq!(least_role("/baton.v1.Admin/GetRun"), Some(Role::Viewer));
        // An operator submits but cannot approve its own run.
        assert!(Role::Operator < least_role("/baton.v1.Admin/Approve").unwrap());
    }

    #[test]
    fn unknown_methods_have_no_role() {
        assert_eq!(least_role("/baton.v1.Admin/DropEverything"), None);
        assert_eq!(least_role("/baton.v1.Admin/getrun"), None);
        assert_eq!(
            least_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            None
        );
        assert_eq!(least_role(""), None);
    }
}
