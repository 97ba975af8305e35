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
//!
//! The tar Docker hands back is read within bounds ([`extract_tar`]): sizes
//! come from the entry headers (PAX-aware: Docker writes a file over 8 GiB
//! with size 0 in the plain header and the real size in a PAX record), so a
//! sparse 10 TiB file is refused from its header, and content that is not
//! kept is skipped only while the skipped bytes stay under [`SKIP_SLACK`]
//! past the limit; past that, reading stops ([`Collected::stopped`]).

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
    /// Reading stopped at this entry, past the limit, before the end:
    /// `total_bytes` is then a lower bound.
    pub stopped: Option<Stopped>,
}

/// The entry at which reading a tar back stopped (name not yet redacted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    pub path: String,
    /// Its size as its header gives it (a sparse file's apparent size).
    pub size: u64,
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

/// Content that is not kept may still be skipped (read and dropped) up to
/// this many bytes past the limit, so that a task slightly over it is told
/// its exact total; past that, reading stops.
pub const SKIP_SLACK: u64 = 1024 * 1024;

impl Collected {
    /// The attempt's error when the task left more than `limit` bytes.
    pub fn over_limit(&self, limit: u64) -> Option<String> {
        if let Some(s) = &self.stopped {
            return Some(stopped_error(s, self.total_bytes, limit));
        }
        (self.total_bytes > limit).then(|| limit_error(self.total_bytes, limit))
    }
}

/// The error when reading stopped at `s` with `total` bytes counted.
pub fn stopped_error(s: &Stopped, total: u64, limit: u64) -> String {
    let what = if s.size > limit {
        format!("{} is {}", s.path, human_bytes(s.size))
    } else {
        format!(
            "{} or more (reading stopped at {}, {})",
            human_bytes(total),
            s.path,
            human_bytes(s.size)
        )
    };
    format!(
        "artifacts in /baton/out exceed the {} limit (max_artifact_bytes): {what} — write less, or raise artifacts.max_bytes in the plan",
        human_bytes(limit)
    )
}

pub fn limit_error(total: u64, limit: u64) -> String {
    format!(
        "task left {} in /baton/out/, over the {} limit (raise max_artifact_bytes or write less)",
        human_bytes(total),
        human_bytes(limit)
    )
}

/// `10 TiB`, `1.5 GiB`, `70.1 MiB`, `2.9 KiB`, `1000 bytes`: small limits
/// stay readable.
pub fn human_bytes(b: u64) -> String {
    const KIB: u64 = 1024;
    const GIB: u64 = KIB * KIB * KIB;
    let large = |unit: u64, name: &str| {
        if b / unit * unit == b {
            format!("{} {name}", b / unit)
        } else {
            format!("{:.1} {name}", b as f64 / unit as f64)
        }
    };
    if b >= GIB * KIB {
        large(GIB * KIB, "TiB")
    } else if b >= GIB {
        large(GIB, "GiB")
    } else if b >= KIB * KIB {
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
///
/// Bounded: at most `limit` bytes are written, and content that is not
/// kept is skipped only while all content read stays within `limit` plus
/// [`SKIP_SLACK`]; an entry whose content would go past that stops the
/// reading ([`Collected::stopped`]) without a byte of it being read. The
/// caller drops the rest of the stream.
pub fn extract_tar(reader: impl Read, dest: &Path, limit: u64) -> std::io::Result<Collected> {
    let mut collected = Collected::default();
    let budget = limit.saturating_add(SKIP_SLACK);
    // Content bytes read, kept or not.
    let mut read_bytes = 0u64;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        // PAX-aware, unlike `header().size()` (0 for files over 8 GiB).
        let size = entry.size();
        let raw = entry.path()?.into_owned();
        let inner: PathBuf = raw.components().skip(1).collect();
        let mut skip = |path: &str, collected: &mut Collected| {
            read_bytes = read_bytes.saturating_add(size);
            if read_bytes > budget {
                collected.stopped = Some(Stopped {
                    path: path.to_string(),
                    size,
                });
            }
            collected.stopped.is_none()
        };
        if kind.is_dir() {
            continue;
        }
        let Some(rel) = safe_rel_path(&inner) else {
            let path = raw.display().to_string();
            if !skip(&path, &mut collected) {
                break;
            }
            collected.skipped.push(Skipped {
                path,
                why: UNUSABLE_NAME,
            });
            continue;
        };
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            if !skip(&rel, &mut collected) {
                break;
            }
            collected.skipped.push(Skipped {
                path: rel,
                why: NOT_REGULAR,
            });
            continue;
        }
        if rel == RESULT_FILE {
            if !skip(&rel, &mut collected) {
                break;
            }
            continue;
        }
        collected.total_bytes = collected.total_bytes.saturating_add(size);
        if collected.total_bytes > limit {
            // Counted only; the entries iterator skips the content, if the
            // slack allows.
            if !skip(&rel, &mut collected) {
                break;
            }
            continue;
        }
        let local = dest.join(&rel);
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&local)?;
        let (size, sha256) = copy_hashed(&mut entry, &mut file)?;
        read_bytes = read_bytes.saturating_add(size);
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
    if c.total_bytes > limit || c.stopped.is_some() {
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
        assert_eq!((c.total_bytes, c.stopped.as_ref()), (8, None));
    }

    const TEN_TIB: u64 = 10 << 40;

    /// A tar prefix, then zeros for ever; fails once more than `max` bytes
    /// were read, so that a test cannot hang on a content it should skip.
    struct Endless {
        prefix: std::io::Cursor<Vec<u8>>,
        read: u64,
        max: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let mut n = self.prefix.read(buf)?;
            if n == 0 {
                n = buf.len();
                buf.fill(0);
            }
            self.read += n as u64;
            if self.read > self.max {
                return Err(std::io::Error::other("read past the bound"));
            }
            Ok(n)
        }
    }

    /// `out/<name>` as Docker writes a file over 8 GiB: a PAX record with
    /// the size, and 0 in the plain header.
    fn pax_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, size: u64) {
        let record = format!("size={size}\n");
        let mut len = record.len() + 3;
        while format!("{len} {record}").len() != len {
            len += 1;
        }
        let pax = format!("{len} {record}");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path(format!("out/PaxHeaders.0/{name}")).unwrap();
        h.set_size(pax.len() as u64);
        h.set_cksum();
        b.append(&h, pax.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path(format!("out/{name}")).unwrap();
        h.set_mode(0o644);
        h.set_size(0);
        h.set_cksum();
        // Only the header: its content is the endless zeros.
        b.get_mut().extend_from_slice(h.as_bytes());
    }

    fn small_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("out/{name}"), data).unwrap();
    }

    #[test]
    fn a_sparse_10_tib_file_is_refused_from_its_header() {
        let mut b = tar::Builder::new(Vec::new());
        small_entry(&mut b, "a.txt", b"hello\n");
        pax_entry(&mut b, "huge", TEN_TIB);
        let reader = Endless {
            prefix: std::io::Cursor::new(b.into_inner().unwrap()),
            read: 0,
            max: 4 * 1024 * 1024,
        };
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let c = extract_tar(reader, dir.path(), 64 * 1024 * 1024).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            c.stopped,
            Some(Stopped {
                path: "huge".into(),
                size: TEN_TIB
            })
        );
        assert!(c.files.is_empty());
        assert!(!dir.path().join("huge").exists());
        assert_eq!(
            c.over_limit(64 * 1024 * 1024).as_deref(),
            Some("artifacts in /baton/out exceed the 64 MiB limit (max_artifact_bytes): huge is 10 TiB — write less, or raise artifacts.max_bytes in the plan")
        );
    }

    #[test]
    fn a_huge_result_file_is_not_read_either() {
        let mut b = tar::Builder::new(Vec::new());
        pax_entry(&mut b, RESULT_FILE, TEN_TIB);
        let reader = Endless {
            prefix: std::io::Cursor::new(b.into_inner().unwrap()),
            read: 0,
            max: 4 * 1024 * 1024,
        };
        let c = extract_tar(reader, tempfile::tempdir().unwrap().path(), 1000).unwrap();
        assert_eq!(c.stopped.map(|s| s.path), Some(RESULT_FILE.to_string()));
    }

    #[test]
    fn reading_stops_once_the_skipped_content_passes_the_slack() {
        let mut b = tar::Builder::new(Vec::new());
        let chunk = vec![7u8; 600 * 1024];
        for i in 0..10 {
            small_entry(&mut b, &format!("f{i}"), &chunk);
        }
        let bytes = b.into_inner().unwrap();
        let limit = 1000 * 1024;
        let c = extract_tar(&bytes[..], tempfile::tempdir().unwrap().path(), limit).unwrap();
        // f0 is kept (600 KiB), f1 passes the limit, f2 and f3 are skipped
        // within the slack, f3 would go past it.
        assert_eq!(
            c.stopped,
            Some(Stopped {
                path: "f3".into(),
                size: 600 * 1024
            })
        );
        assert_eq!(c.total_bytes, 4 * 600 * 1024);
        assert!(c.files.is_empty());
        assert_eq!(
            c.over_limit(limit).as_deref(),
            Some("artifacts in /baton/out exceed the 1000.0 KiB limit (max_artifact_bytes): 2.3 MiB or more (reading stopped at f3, 600.0 KiB) — write less, or raise artifacts.max_bytes in the plan")
        );
    }

    #[test]
    fn large_sizes_read_well() {
        assert_eq!(human_bytes(TEN_TIB), "10 TiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
    }
}
