//! Artifact files on the worker's own disk (no NATS, no Docker): safe
//! relative paths, walking a task's out directory, unpacking the tar Docker
//! hands back, and SHA-256 digests.
//!
//! Both walks apply the same rules: only regular files count; `result.json`
//! at the top is the task's report, not an artifact; symlinks, hard links,
//! devices and paths with `..` or a root are skipped and never followed
//! (listed in [`Collected::skipped`], for a warning once their names are
//! redacted: a name may hold a secret). Once the running total passes the limit, files are only
//! counted (not hashed or written), so that the error can say how much the
//! task left without the worker storing it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::runtime::result::format_mib;

/// The task's report, relayed separately (see `runtime::result`).
pub const RESULT_FILE: &str = "result.json";

/// One regular file a task left, staged on the worker's disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFile {
    /// Relative to the out directory, `/`-separated.
    pub path: String,
    pub local: PathBuf,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// What a task left in its out directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Sorted by path; empty when over the limit.
    pub files: Vec<OutFile>,
    /// Bytes of all regular artifact files, including those past the limit.
    pub total_bytes: u64,
    /// Entries not kept, and why; names as the task wrote them (not yet
    /// redacted).
    pub skipped: Vec<Skipped>,
}

/// An entry of the out directory that is not an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub why: &'static str,
}

const UNUSABLE_NAME: &str = "artifact with an unusable name skipped";
const NOT_REGULAR: &str =
    "artifact that is not a regular file (symlink, hard link, device, …) skipped";

impl Collected {
    /// The attempt's error when the task left more than `limit` bytes.
    pub fn over_limit(&self, limit: u64) -> Option<String> {
        (self.total_bytes > limit).then(|| limit_error(self.total_bytes, limit))
    }
}

pub fn limit_error(total: u64, limit: u64) -> String {
    format!(
        "task left {} in /baton/out/, over the {} limit (raise max_artifact_bytes or write less)",
        human_bytes(total),
        human_bytes(limit)
    )
}

/// `70.1 MiB`, `2.9 KiB`, `1000 bytes`: small limits stay readable.
pub fn human_bytes(b: u64) -> String {
    const KIB: u64 = 1024;
    if b >= KIB * KIB {
        format_mib(i64::try_from(b).unwrap_or(i64::MAX))
    } else if b >= KIB {
        format!("{:.1} KiB", b as f64 / KIB as f64)
    } else {
        format!("{b} bytes")
    }
}

/// `a/b/c` when every component of `p` is a plain name (`.` is dropped);
/// `None` for `..`, roots, non-UTF-8 names and empty paths.
pub fn safe_rel_path(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(name) => parts.push(name.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Lowercase hex SHA-256 and length of everything `reader` yields, copied to `sink`.
pub fn copy_hashed(
    reader: &mut impl Read,
    sink: &mut impl Write,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Walk `root` (the process runtime's `$BATON_OUT`) without following links.
pub fn collect_dir(root: &Path, limit: u64) -> std::io::Result<Collected> {
    let mut collected = Collected::default();
    walk(root, root, limit, &mut collected)?;
    finish(collected, limit)
}

fn walk(root: &Path, dir: &Path, limit: u64, out: &mut Collected) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let full = entry.path();
        let meta = std::fs::symlink_metadata(&full)?;
        let rel = full.strip_prefix(root).ok().and_then(safe_rel_path);
        let Some(rel) = rel else {
            out.skipped.push(Skipped {
                path: full.display().to_string(),
                why: UNUSABLE_NAME,
            });
            continue;
        };
        if meta.is_dir() {
            walk(root, &full, limit, out)?;
        } else if meta.is_file() {
            if rel == RESULT_FILE {
                continue;
            }
            out.total_bytes += meta.len();
            if out.total_bytes <= limit {
                let (size, sha256) =
                    copy_hashed(&mut std::fs::File::open(&full)?, &mut std::io::sink())?;
                out.files.push(OutFile {
                    path: rel,
                    local: full,
                    size,
                    sha256,
                });
            }
        } else {
            out.skipped.push(Skipped {
                path: rel,
                why: NOT_REGULAR,
            });
        }
    }
    Ok(())
}

/// Unpack the tar of `GET /containers/<id>/archive?path=/baton/out` into
/// `dest`. Docker names every entry after the directory (`out/…`); that
/// first component is dropped.
pub fn extract_tar(reader: impl Read, dest: &Path, limit: u64) -> std::io::Result<Collected> {
    let mut collected = Collected::default();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let raw = entry.path()?.into_owned();
        let inner: PathBuf = raw.components().skip(1).collect();
        if kind.is_dir() {
            continue;
        }
        let Some(rel) = safe_rel_path(&inner) else {
            collected.skipped.push(Skipped {
                path: raw.display().to_string(),
                why: UNUSABLE_NAME,
            });
            continue;
        };
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            collected.skipped.push(Skipped {
                path: rel,
                why: NOT_REGULAR,
            });
            continue;
        }
        if rel == RESULT_FILE {
            continue;
        }
        collected.total_bytes += entry.header().size()?;
        if collected.total_bytes > limit {
            // Counted only; the entries iterator skips the content.
            continue;
        }
        let local = dest.join(&rel);
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&local)?;
        let (size, sha256) = copy_hashed(&mut entry, &mut file)?;
        collected.files.push(OutFile {
            path: rel,
            local,
            size,
            sha256,
        });
    }
    finish(collected, limit)
}

fn finish(mut c: Collected, limit: u64) -> std::io::Result<Collected> {
    if c.total_bytes > limit {
        c.files.clear();
    }
    c.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths() {
        assert_eq!(
            safe_rel_path(Path::new("a/./b.txt")).as_deref(),
            Some("a/b.txt")
        );
        assert_eq!(safe_rel_path(Path::new("../x")), None);
        assert_eq!(safe_rel_path(Path::new("a/../../x")), None);
        assert_eq!(safe_rel_path(Path::new("/etc/passwd")), None);
        assert_eq!(safe_rel_path(Path::new(".")), None);
    }

    #[test]
    fn limit_message() {
        let msg = limit_error(73_505_997, 64 * 1024 * 1024);
        assert_eq!(
            msg,
            "task left 70.1 MiB in /baton/out/, over the 64 MiB limit (raise max_artifact_bytes or write less)"
        );
        assert_eq!(human_bytes(3000), "2.9 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn tar_rules() {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, kind: tar::EntryType, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // set_path refuses `..`; write the raw name like a hostile archive would.
            let name_field = &mut h.as_old_mut().name;
            name_field[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        add("out/", tar::EntryType::Directory, b"");
        add("out/b.txt", tar::EntryType::Regular, b"bb");
        add("out/result.json", tar::EntryType::Regular, b"{}");
        add("out/sub/a.txt", tar::EntryType::Regular, b"hello\n");
        add("out/../evil", tar::EntryType::Regular, b"x");
        add("out/link", tar::EntryType::Symlink, b"");
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let c = extract_tar(&bytes[..], dir.path(), 100).unwrap();
        let paths: Vec<_> = c.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["b.txt", "sub/a.txt"]);
        assert_eq!(c.total_bytes, 8);
        let skipped: Vec<_> = c.skipped.iter().map(|s| (s.path.as_str(), s.why)).collect();
        assert_eq!(
            skipped,
            vec![("out/../evil", UNUSABLE_NAME), ("link", NOT_REGULAR)]
        );
        assert_eq!(
            c.files[1].sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert!(!dir.path().join("../evil").exists());
        let c = extract_tar(&bytes[..], tempfile::tempdir().unwrap().path(), 7).unwrap();
        assert!(c.files.is_empty());
        assert!(c.over_limit(7).is_some());
    }
}
