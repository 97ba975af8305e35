//! Artifact names without secrets. A task may name a file after a secret
//! (`/baton/out/$TOKEN.txt`); the path becomes part of the object name
//! `<run>/<task>/<attempt>/<path>`, of the object's metadata and subject,
//! of `TaskFinished.artifacts` and of later tasks' `/baton/in/`. So each
//! path passes the attempt's redactor like the file's content does.
//!
//! Redacted paths stay unique and usable: two files that redact to the
//! same path (`$TOKEN.txt` and `$(hex $TOKEN).txt`), or to the path of a
//! file that had no secret in its name, are told apart by a `~2`, `~3`, …
//! before the extension. Paths without a secret keep their names; the
//! others are numbered in the order of their original paths, so the same
//! files always get the same names. A path that redacted to a directory of
//! another file's path (or the other way round) is numbered at that
//! component, so that every name can still be written under `/baton/in/`.

use std::collections::HashSet;
use std::path::Path;

use super::local::{safe_rel_path, OutFile};
use crate::redact::Redactor;

/// Rewrites the `path` of every file with the secrets in it redacted, keeps
/// them unique, and sorts the files by their new path. `files` must be
/// sorted by (unique) path, as [`super::local`] leaves them.
pub fn redact_paths(redactor: &Redactor, files: &mut [OutFile]) {
    if redactor.is_empty() {
        return;
    }
    let redacted: Vec<Option<String>> = files
        .iter()
        .map(|f| {
            let r = redactor.str(&f.path);
            (r != f.path).then(|| {
                // Redaction only ever inserts `[REDACTED:…]` into components;
                // should a path still come out unusable, it is named afresh.
                match safe_rel_path(Path::new(&r)) {
                    Some(safe) if safe == r => r,
                    _ => "[REDACTED]".to_string(),
                }
            })
        })
        .collect();
    if redacted.iter().all(Option::is_none) {
        return;
    }
    let mut taken = Taken::default();
    for (f, r) in files.iter().zip(&redacted) {
        if r.is_none() {
            taken.add(&f.path);
        }
    }
    for (f, r) in files.iter_mut().zip(redacted) {
        if let Some(r) = r {
            let name = taken.unique(&r);
            taken.add(&name);
            f.path = name;
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
}

/// Paths in use: files, and the directories they imply.
#[derive(Default)]
struct Taken {
    files: HashSet<String>,
    dirs: HashSet<String>,
}

impl Taken {
    fn add(&mut self, path: &str) {
        for (i, c) in path.char_indices() {
            if c == '/' {
                self.dirs.insert(path[..i].to_string());
            }
        }
        self.files.insert(path.to_string());
    }

    /// The shallowest component of `path` where it runs into what is
    /// taken: an ancestor that is a file, or the path itself as a file or
    /// directory. `None`: free.
    fn clash(&self, path: &str) -> Option<usize> {
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            if self.files.contains(&parts[..i].join("/")) {
                return Some(i - 1);
            }
        }
        (self.files.contains(path) || self.dirs.contains(path)).then(|| parts.len() - 1)
    }

    fn unique(&self, path: &str) -> String {
        let Some(at) = self.clash(path) else {
            return path.to_string();
        };
        let parts: Vec<&str> = path.split('/').collect();
        (2u64..)
            .map(|n| {
                let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                p[at] = numbered(parts[at], n);
                p.join("/")
            })
            .find(|p| self.clash(p).is_none())
            .expect("a free name among unboundedly many")
    }
}

/// `name~n.ext`, or `name~n` without an extension (a leading dot is not one).
fn numbered(component: &str, n: u64) -> String {
    match component.rfind('.') {
        Some(dot) if dot > 0 => format!("{}~{n}{}", &component[..dot], &component[dot..]),
        _ => format!("{component}~{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tok-3f9a1c7e5b+x=y";

    fn files(paths: &[&str]) -> Vec<OutFile> {
        let mut v: Vec<OutFile> = paths
            .iter()
            .map(|p| OutFile {
                path: p.to_string(),
                local: Path::new("/tmp").join(p),
                size: 0,
                sha256: String::new(),
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    fn redacted(paths: &[&str]) -> Vec<(String, String)> {
        let r = Redactor::new([("T", SECRET.as_bytes())]);
        let mut f = files(paths);
        redact_paths(&r, &mut f);
        f.into_iter()
            .map(|f| {
                let local = f.local.strip_prefix("/tmp").unwrap().display().to_string();
                (f.path, local)
            })
            .collect()
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_secret_in_a_file_or_directory_name_is_redacted() {
        let a = format!("{SECRET}.txt");
        let b = format!("dir-{SECRET}/inner.txt");
        let c = format!("x/{SECRET}");
        assert_eq!(
            redacted(&[&a, &b, &c, "plain.txt"]),
            vec![
                ("[REDACTED:T].txt".to_string(), a.clone()),
                ("dir-[REDACTED:T]/inner.txt".to_string(), b.clone()),
                ("plain.txt".to_string(), "plain.txt".to_string()),
                ("x/[REDACTED:T]".to_string(), c.clone()),
            ]
        );
    }

    #[test]
    fn names_that_redact_alike_are_numbered_in_original_order() {
        let raw = format!("{SECRET}.txt");
        let hexed = format!("{}.txt", hex(SECRET));
        let upper = format!("{}.txt", hex(SECRET).to_uppercase());
        // The literal name keeps its place; the others are numbered in
        // the order of their original paths.
        let got = redacted(&[&raw, &hexed, &upper, "[REDACTED:T].txt"]);
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "[REDACTED:T].txt",
                "[REDACTED:T]~2.txt",
                "[REDACTED:T]~3.txt",
                "[REDACTED:T]~4.txt"
            ]
        );
        let origin = |p: &str| got.iter().find(|(n, _)| n == p).unwrap().1.clone();
        assert_eq!(origin("[REDACTED:T].txt"), "[REDACTED:T].txt");
        let mut numbered = [upper.clone(), hexed.clone(), raw.clone()];
        numbered.sort();
        assert_eq!(origin("[REDACTED:T]~2.txt"), numbered[0]);
        assert_eq!(origin("[REDACTED:T]~3.txt"), numbered[1]);
        assert_eq!(origin("[REDACTED:T]~4.txt"), numbered[2]);
        // Deterministic: the same files, in any order, the same names.
        let mut shuffled = vec![upper.as_str(), "[REDACTED:T].txt", &raw, &hexed];
        shuffled.reverse();
        assert_eq!(redacted(&shuffled), got);
    }

    #[test]
    fn a_numbered_name_already_taken_is_skipped() {
        let raw = format!("{SECRET}.txt");
        assert_eq!(
            redacted(&[&raw, "[REDACTED:T].txt", "[REDACTED:T]~2.txt"])
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>(),
            [
                "[REDACTED:T].txt",
                "[REDACTED:T]~2.txt",
                "[REDACTED:T]~3.txt"
            ]
        );
    }

    #[test]
    fn a_file_and_a_directory_of_the_same_redacted_name_stay_apart() {
        // `<secret>` is a file, `<hex>/in.txt` a file in a directory: both
        // redact to `[REDACTED:T]`, which cannot be both under /baton/in/.
        let file = SECRET.to_string();
        let nested = format!("{}/in.txt", hex(SECRET));
        let got: Vec<String> = redacted(&[&file, &nested])
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, ["[REDACTED:T]/in.txt", "[REDACTED:T]~2"]);
        // A literal file of that name is kept; the directory is numbered.
        let got: Vec<String> = redacted(&["[REDACTED:T]", &nested])
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, ["[REDACTED:T]", "[REDACTED:T]~2/in.txt"]);
        // A literal directory of that name is kept; the file is numbered.
        let got: Vec<String> = redacted(&[&file, "[REDACTED:T]/a.txt"])
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(got, ["[REDACTED:T]/a.txt", "[REDACTED:T]~2"]);
    }

    #[test]
    fn extensions_and_dot_files() {
        assert_eq!(numbered("a.tar.gz", 2), "a.tar~2.gz");
        assert_eq!(numbered(".env", 3), ".env~3");
        assert_eq!(numbered("noext", 2), "noext~2");
    }

    #[test]
    fn without_secrets_or_matches_nothing_changes() {
        let mut f = files(&["b.txt", "a/c.txt"]);
        let before = f.clone();
        redact_paths(&Redactor::default(), &mut f);
        assert_eq!(f, before);
        redact_paths(&Redactor::new([("T", SECRET.as_bytes())]), &mut f);
        assert_eq!(f, before);
    }
}
