//! `baton role apply|list`, and role files for `baton plan validate --roles`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_plan as plan;
use baton_proto::v1;

use crate::client::{connect, read_plan};
use crate::exit::Exit;

/// Register the roles of a role file; prints "<id>: created|updated|unchanged".
pub async fn apply(file: &Path, server: &crate::ServerArg) -> Result<(), Exit> {
    let yaml = read_plan(file)?;
    let mut c = connect(server).await?;
    let req = v1::ApplyRolesRequest {
        roles_yaml: yaml,
        file: file.display().to_string(),
    };
    for line in c.apply_roles(req).await?.into_inner().results {
        println!("{line}");
    }
    Ok(())
}

/// Every registered role with its spec.
pub async fn list(server: &crate::ServerArg) -> Result<(), Exit> {
    let mut c = connect(server).await?;
    let roles = c
        .list_roles(v1::ListRolesRequest {})
        .await?
        .into_inner()
        .roles;
    if roles.is_empty() {
        println!("no roles registered — register some with `baton role apply FILE`");
    }
    for role in roles {
        println!("{}", role.id);
        for line in role.yaml.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

/// The roles of some role files, as the registry would hold them (id →
/// normalized spec); later files win. Every file's problems are said, in
/// order; a file that cannot be read stops there.
pub fn from_files(files: &[PathBuf]) -> Result<BTreeMap<String, String>, Exit> {
    let mut out = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut failed = false;
    for file in files {
        let yaml = match read_plan(file) {
            Ok(y) => y,
            Err(e) => {
                problems.push(e.message);
                return Err(Exit::new(e.code, problems.join("\n")));
            }
        };
        match plan::load_roles(&file.display().to_string(), &yaml) {
            Ok(roles) => {
                for role in roles {
                    out.insert(role.id.clone(), plan::role_yaml(&role));
                }
            }
            Err(e) => {
                problems.extend(e.diagnostics.iter().map(|d| d.to_string()));
                failed = true;
            }
        }
    }
    if failed {
        Err(Exit::diagnostics(problems))
    } else {
        Ok(out)
    }
}
