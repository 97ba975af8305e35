//! The tokens the coordinator accepts, loaded from a file of hashes.
//!
//! One token a line: `sha256:<64 hex> <name> <role>`; blank lines and lines
//! starting with `#` are ignored. The file never holds a token itself.

use std::fmt;
use std::path::Path;
use std::sync::RwLock;

use subtle::ConstantTimeEq;

use super::token::{digest, valid_name};
use super::{Identity, Role};
use crate::Error;

struct Entry {
    digest: [u8; 32],
    identity: Identity,
}

/// Shared by every connection; tokens can be added while serving.
#[derive(Default)]
pub struct TokenStore {
    entries: RwLock<Vec<Entry>>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenStore({} tokens)", self.len())
    }
}

impl TokenStore {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::TokensFileUnreadable {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let bad = |col: usize, message: String, hint: &str| Error::TokensFile {
                file: file.to_string(),
                line: i + 1,
                col,
                message,
                hint: hint.to_string(),
            };
            let line = raw.trim_end();
            let indent = line.len() - line.trim_start().len();
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let fields: Vec<(usize, &str)> = words(line);
            if fields.len() != 3 {
                return Err(bad(
                    indent + 1,
                    format!("expected 3 fields, found {}", fields.len()),
                    "write `sha256:<hex> <name> <role>`; `baton token create` writes such lines",
                ));
            }
            let (hcol, hash) = fields[0];
            let hex = hash.strip_prefix("sha256:").ok_or_else(|| {
                bad(
                    hcol + 1,
                    format!("`{}` is not a sha256 hash", clip(hash)),
                    "the file holds hashes, never tokens: write `sha256:<64 hex digits>`",
                )
            })?;
            let mut d = [0u8; 32];
            hex::decode_to_slice(hex, &mut d).map_err(|_| {
                bad(
                    hcol + 8,
                    "the hash is not 64 hex digits".into(),
                    "copy the line `baton token create` appended, whole",
                )
            })?;
            let (ncol, name) = fields[1];
            if !valid_name(name) {
                return Err(bad(
                    ncol + 1,
                    format!("`{}` is not a valid name", clip(name)),
                    "use letters, digits and . _ - @, at most 64",
                ));
            }
            let (rcol, role) = fields[2];
            let role = Role::parse(role).ok_or_else(|| {
                bad(
                    rcol + 1,
                    format!("unknown role `{}`", clip(role)),
                    "the roles are viewer, operator, approver and admin",
                )
            })?;
            if entries.iter().any(|e| e.digest == d) {
                return Err(bad(
                    hcol + 1,
                    "this hash is already in the file".into(),
                    "a token has one name and one role: remove one of the lines",
                ));
            }
            entries.push(Entry {
                digest: d,
                identity: Identity {
                    name: name.to_string(),
                    role,
                },
            });
        }
        Ok(Self {
            entries: RwLock::new(entries),
        })
    }

    /// Accept `token` from now on, as `identity`.
    pub fn insert(&self, token: &crate::hooks::Secret, identity: Identity) {
        let e = Entry {
            digest: digest(token.expose()),
            identity,
        };
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Who holds `token`, if anyone. Every entry is compared, in constant
    /// time, so timing tells nothing about how close a guess came.
    pub fn identify(&self, token: &str) -> Option<Identity> {
        let d = digest(token);
        let mut found = None;
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        for e in entries.iter() {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e.identity.clone());
            }
        }
        found
    }
}

/// Whitespace-separated words with their 0-based byte column.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// A bad field is quoted short: a pasted token in the wrong place must not
/// be echoed whole into a terminal or a log.
fn clip(s: &str) -> String {
    match s.char_indices().nth(12) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{file_line, generate};

    #[test]
    fn a_created_token_is_known_by_its_name_and_role() {
        let (a, b) = (generate(), generate());
        let text = format!(
            "# admins\n{}\n\n{}\n",
            file_line(&a, "ana", Role::Admin),
            file_line(&b, "bo", Role::Viewer)
        );
        let s = TokenStore::parse("tokens", &text).unwrap();
        assert_eq!(s.len(), 2);
        let id = s.identify(a.expose()).unwrap();
        assert_eq!((id.name.as_str(), id.role), ("ana", Role::Admin));
        assert_eq!(s.identify(b.expose()).unwrap().role, Role::Viewer);
        assert_eq!(s.identify("baton_nope"), None);
        assert_eq!(s.identify(""), None);
    }

    #[test]
    fn a_token_pasted_instead_of_its_hash_is_refused_without_echoing_it() {
        let t = generate();
        let text = format!("{} ana admin\n", t.expose());
        let e = TokenStore::parse("tokens", &text).unwrap_err().to_string();
        assert!(e.starts_with("tokens:1:1: "), "{e}");
        assert!(e.contains("never tokens"), "{e}");
        assert!(!e.contains(t.expose()), "{e}");
    }

    #[test]
    fn errors_point_at_the_field() {
        let t = generate();
        let line = file_line(&t, "ana", Role::Admin).replace(" admin", " root");
        let e = TokenStore::parse("f", &format!("\n{line}"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f:2:77: unknown role `root`"), "{e}");
        let e = TokenStore::parse("f", "sha256:abc ana admin")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f:1:8: the hash is not 64 hex digits"), "{e}");
        let e = TokenStore::parse("f", "  sha256:abc ana")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f:1:3: expected 3 fields, found 2"), "{e}");
    }

    #[test]
    fn one_hash_twice_is_an_error() {
        let line = file_line(&generate(), "ana", Role::Admin);
        let e = TokenStore::parse("f", &format!("{line}\n{line}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("f:2:1: this hash is already in the file"), "{e}");
    }

    #[test]
    fn an_inserted_token_is_accepted_at_once() {
        let s = TokenStore::default();
        let t = generate();
        assert_eq!(s.identify(t.expose()), None);
        let ana = Identity {
            name: "ana".into(),
            role: Role::Approver,
        };
        s.insert(&t, ana.clone());
        assert_eq!(s.identify(t.expose()), Some(ana));
    }

    #[test]
    fn debug_shows_no_hashes() {
        let line = file_line(&generate(), "ana", Role::Admin);
        let s = TokenStore::parse("f", &line).unwrap();
        assert_eq!(format!("{s:?}"), "TokenStore(1 tokens)");
    }
}
