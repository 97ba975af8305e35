//! The tokens the coordinator accepts, loaded from a file of hashes.
//!
//! One token a line: `sha256:<64 hex> <name> <role>`; blank lines and lines
//! starting with `#` are ignored. The file never holds a token itself.
//!
//! A store loaded from a file follows it while serving
//! ([`TokenStore::refresh`], driven by [`super::reload`]): removing a line
//! revokes its token without a restart. A reload that fails keeps the tokens
//! loaded before, so that a typo never locks everyone out.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::token::{digest, valid_name};
use super::{Identity, Role};
use crate::Error;

struct Entry {
    digest: [u8; 32],
    identity: Identity,
}

#[derive(Default)]
struct Entries {
    /// From the file; replaced whole by each reload.
    file: Vec<Entry>,
    /// Added while serving ([`TokenStore::insert`]); kept across reloads.
    inserted: Vec<Entry>,
}

/// Enough to tell cheaply that the file may have changed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// What the store last saw of its file.
struct Seen {
    /// None when the file could not be stat'ed.
    stamp: Option<Stamp>,
    /// Of the text the tokens were last loaded from: a touched but unchanged
    /// file is not reloaded.
    sha256: [u8; 32],
}

/// Shared by every connection; tokens can be added while serving, and a
/// store loaded from a file follows the file.
#[derive(Default)]
pub struct TokenStore {
    entries: RwLock<Entries>,
    /// Some for a store made by [`TokenStore::load`].
    file: Option<(PathBuf, Mutex<Seen>)>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenStore({} tokens)", self.len())
    }
}

/// What [`TokenStore::refresh`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The file is as it was: nothing to do.
    Unchanged,
    /// The file was read and its tokens replaced the old ones.
    Reloaded { tokens: usize },
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::TokensFileUnreadable {
        path: path.display().to_string(),
        source,
    })
}

impl TokenStore {
    /// The tokens of the file at `path`; the store keeps the path, to reload.
    pub fn load(path: &Path) -> Result<Self, Error> {
        // Stat before reading: a change in between then shows as a change later.
        let stamp = stamp(path);
        let text = read(path)?;
        let file = parse_entries(&path.display().to_string(), &text)?;
        Ok(Self {
            entries: RwLock::new(Entries {
                file,
                inserted: Vec::new(),
            }),
            file: Some((
                path.to_path_buf(),
                Mutex::new(Seen {
                    stamp,
                    sha256: Sha256::digest(text.as_bytes()).into(),
                }),
            )),
        })
    }

    /// Tokens from text; such a store has no file to follow.
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        Ok(Self {
            entries: RwLock::new(Entries {
                file: parse_entries(file, text)?,
                inserted: Vec::new(),
            }),
            file: None,
        })
    }

    /// The file the tokens come from, if they do.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// Follow the file: when `force`, or when its size or mtime changed and
    /// then its text did, parse it and replace the file's tokens. On an error
    /// the tokens stay as they were, and the same broken file is not read
    /// again until it changes, so that it is reported once.
    pub fn refresh(&self, force: bool) -> Result<Refresh, Error> {
        let Some((path, seen)) = &self.file else {
            return Ok(Refresh::Unchanged);
        };
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamp(path);
        // A file that vanished stays `None` == `None`: reported once, not every poll.
        if !force && now == seen.stamp {
            return Ok(Refresh::Unchanged);
        }
        seen.stamp = now;
        let text = read(path)?;
        let sha256: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if !force && sha256 == seen.sha256 {
            return Ok(Refresh::Unchanged);
        }
        let file = parse_entries(&path.display().to_string(), &text)?;
        seen.sha256 = sha256;
        let tokens = file.len();
        self.entries.write().unwrap_or_else(|p| p.into_inner()).file = file;
        Ok(Refresh::Reloaded { tokens })
    }

    /// Accept `token` from now on, as `identity`.
    pub fn insert(&self, token: &baton_proto::secret::Secret, identity: Identity) {
        let e = Entry {
            digest: digest(token.expose()),
            identity,
        };
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .inserted
            .push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        let e = self.entries.read().unwrap_or_else(|p| p.into_inner());
        e.file.len() + e.inserted.len()
    }

    /// Who holds `token`, if anyone. Every entry is compared, in constant
    /// time, so timing tells nothing about how close a guess came.
    pub fn identify(&self, token: &str) -> Option<Identity> {
        let d = digest(token);
        let mut found = None;
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        for e in entries.file.iter().chain(entries.inserted.iter()) {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e.identity.clone());
            }
        }
        found
    }
}

fn parse_entries(file: &str, text: &str) -> Result<Vec<Entry>, Error> {
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
    Ok(entries)
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

    /// A tokens file in a fresh directory, and what it allows.
    fn file_with(lines: &[String]) -> (scratch::Dir, std::path::PathBuf) {
        let dir = scratch::Dir::new();
        let path = dir.0.join("tokens");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        (dir, path)
    }

    /// Rewrites `path` with `text`, with a different mtime for sure.
    fn edit(path: &Path, text: &str) {
        let before = std::fs::metadata(path).unwrap().modified().unwrap();
        std::fs::write(path, text).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(before + std::time::Duration::from_secs(1))
            .unwrap();
    }

    mod scratch {
        /// A directory removed on drop (the crate has no tempfile dependency).
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "baton-tokens-{}-{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn a_line_removed_from_the_file_revokes_its_token_on_refresh() {
        let (a, b) = (generate(), generate());
        let (la, lb) = (
            file_line(&a, "ana", Role::Admin),
            file_line(&b, "bo", Role::Viewer),
        );
        let (_dir, path) = file_with(&[la.clone(), lb]);
        let s = TokenStore::load(&path).unwrap();
        assert_eq!(s.path(), Some(path.as_path()));
        assert_eq!(s.refresh(false).unwrap(), Refresh::Unchanged);
        edit(&path, &format!("{la}\n"));
        assert_eq!(s.refresh(false).unwrap(), Refresh::Reloaded { tokens: 1 });
        assert_eq!(s.identify(b.expose()), None);
        assert!(s.identify(a.expose()).is_some());
        // Touched, same text: nothing to do.
        edit(&path, &format!("{la}\n"));
        assert_eq!(s.refresh(false).unwrap(), Refresh::Unchanged);
        // A signal reloads whatever the file looks like.
        assert_eq!(s.refresh(true).unwrap(), Refresh::Reloaded { tokens: 1 });
    }

    #[test]
    fn a_broken_file_keeps_the_old_tokens_and_is_reported_once() {
        let a = generate();
        let la = file_line(&a, "ana", Role::Admin);
        let (_dir, path) = file_with(std::slice::from_ref(&la));
        let s = TokenStore::load(&path).unwrap();
        let inserted = generate();
        s.insert(
            &inserted,
            Identity {
                name: "dev".into(),
                role: Role::Admin,
            },
        );
        edit(&path, &format!("{la}\nnot-a-token-line\n"));
        let e = s.refresh(false).unwrap_err().to_string();
        let file = path.display().to_string();
        assert!(
            e.starts_with(&format!("{file}:2:1: expected 3 fields")),
            "{e}"
        );
        assert!(s.identify(a.expose()).is_some(), "kept");
        assert_eq!(s.refresh(false).unwrap(), Refresh::Unchanged, "said once");
        // Gone altogether: said once too, and the tokens stay.
        std::fs::remove_file(&path).unwrap();
        let e = s.refresh(false).unwrap_err().to_string();
        assert!(e.contains("cannot read the tokens file"), "{e}");
        assert_eq!(s.refresh(false).unwrap(), Refresh::Unchanged);
        assert!(s.identify(a.expose()).is_some());
        // Back, emptied: every file token is revoked; inserted ones are not the file's.
        std::fs::write(&path, "# nobody\n").unwrap();
        assert_eq!(s.refresh(false).unwrap(), Refresh::Reloaded { tokens: 0 });
        assert_eq!(s.identify(a.expose()), None);
        assert!(s.identify(inserted.expose()).is_some());
    }

    #[test]
    fn a_store_from_text_has_nothing_to_follow() {
        let s = TokenStore::parse("generated", &file_line(&generate(), "a", Role::Admin)).unwrap();
        assert_eq!(s.path(), None);
        assert_eq!(s.refresh(true).unwrap(), Refresh::Unchanged);
    }

    #[test]
    fn debug_shows_no_hashes() {
        let line = file_line(&generate(), "ana", Role::Admin);
        let s = TokenStore::parse("f", &line).unwrap();
        assert_eq!(format!("{s:?}"), "TokenStore(1 tokens)");
    }
}
