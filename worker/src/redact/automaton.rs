//! An Aho-Corasick automaton over every form of an attempt's secrets, for
//! leftmost-longest, non-overlapping replacement in one pass.
//!
//! Each input byte is one transition (plus amortised failure links), so
//! redaction costs the same whatever the number of forms. Matches are
//! committed once no longer match starting at or before them can still
//! complete: the depth of the current state is the longest suffix of the
//! input that is still a beginning of some form, so nothing can start
//! before `position − depth`. The same quantity tells a stream how much of
//! its end to hold back.
//!
//! Storage is compact (CSR): 4 × `u32` per state plus 5 bytes per edge, and
//! a dense table for the start state only.

/// No pattern ends here.
const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(super) struct Automaton {
    /// Edges of state `s`: `labels[edges[s]..edges[s + 1]]` (sorted) and
    /// the same range of `targets`.
    edges: Vec<u32>,
    labels: Vec<u8>,
    targets: Vec<u32>,
    fail: Vec<u32>,
    depth: Vec<u32>,
    /// The longest pattern that ends the text of this state, or [`NONE`].
    out: Vec<u32>,
    /// Transitions of the start state, every byte.
    root: Vec<u32>,
    /// Length of each pattern.
    lengths: Vec<u32>,
}

/// A match: `[start, end)` of the buffer, and the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Found {
    pub start: usize,
    pub end: usize,
    pub pattern: u32,
}

/// Where a scan of a growing buffer stands.
#[derive(Clone, Debug, Default)]
pub(super) struct Cursor {
    state: u32,
    /// Bytes of the buffer fed to the automaton.
    fed: usize,
    /// The best match so far that a longer or earlier one may still beat.
    candidate: Option<Found>,
}

impl Cursor {
    /// The buffer lost its first `n` bytes (all before anything pending).
    pub fn shift(&mut self, n: usize) {
        self.fed -= n;
        if let Some(c) = &mut self.candidate {
            c.start -= n;
            c.end -= n;
        }
    }
}

impl Automaton {
    /// `patterns` must be distinct and non-empty; pattern `i` is reported as `i`.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a [u8]>) -> Self {
        // The trie, with a child list per state while building.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut depth: Vec<u32> = vec![0];
        let mut terminal: Vec<u32> = vec![NONE];
        let mut lengths = Vec::new();
        for (id, p) in patterns.into_iter().enumerate() {
            let mut s = 0usize;
            for &b in p {
                s = match children[s].iter().find(|(l, _)| *l == b) {
                    Some(&(_, t)) => t as usize,
                    None => {
                        let t = children.len();
                        children[s].push((b, t as u32));
                        children.push(Vec::new());
                        depth.push(depth[s] + 1);
                        terminal.push(NONE);
                        t
                    }
                };
            }
            terminal[s] = id as u32;
            lengths.push(p.len() as u32);
        }
        let n = children.len();

        // Compact edges.
        let mut edges = Vec::with_capacity(n + 1);
        let mut labels = Vec::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        for c in &mut children {
            c.sort_unstable();
            edges.push(labels.len() as u32);
            for &(l, t) in c.iter() {
                labels.push(l);
                targets.push(t);
            }
        }
        edges.push(labels.len() as u32);
        drop(children);

        let mut a = Automaton {
            edges,
            labels,
            targets,
            fail: vec![0; n],
            depth,
            out: terminal,
            root: vec![0; 256],
            lengths,
        };
        for i in a.edges[0] as usize..a.edges[1] as usize {
            a.root[a.labels[i] as usize] = a.targets[i];
        }
        // Failure links, breadth first, so a state's link and output are
        // known before its children's.
        let mut queue = std::collections::VecDeque::new();
        for i in a.edges[0] as usize..a.edges[1] as usize {
            queue.push_back(a.targets[i]);
        }
        while let Some(s) = queue.pop_front() {
            let s = s as usize;
            for i in a.edges[s] as usize..a.edges[s + 1] as usize {
                let (b, t) = (a.labels[i], a.targets[i] as usize);
                let f = a.next(a.fail[s], b);
                a.fail[t] = f;
                if a.out[t] == NONE {
                    a.out[t] = a.out[f as usize];
                }
                queue.push_back(t as u32);
            }
        }
        a
    }

    /// Number of states, for the memory estimate.
    pub fn states(&self) -> usize {
        self.fail.len()
    }

    fn edge(&self, s: usize, b: u8) -> Option<u32> {
        let (lo, hi) = (self.edges[s] as usize, self.edges[s + 1] as usize);
        let labels = &self.labels[lo..hi];
        let i = if labels.len() <= 8 {
            labels.iter().position(|&l| l == b)?
        } else {
            labels.binary_search(&b).ok()?
        };
        Some(self.targets[lo + i])
    }

    fn next(&self, mut s: u32, b: u8) -> u32 {
        loop {
            if s == 0 {
                return self.root[b as usize];
            }
            if let Some(t) = self.edge(s as usize, b) {
                return t;
            }
            s = self.fail[s as usize];
        }
    }

    /// Feeds `buf[cursor.fed..]` and calls `emit` for every match that is
    /// final, in order, never overlapping. Without `end`, returns where the
    /// part that may still become (or grow) a match begins: the caller must
    /// keep `buf` from there on and call again when more arrives. With
    /// `end`, every remaining candidate is final, and it returns the end of
    /// the last match (or 0).
    pub fn scan(
        &self,
        buf: &[u8],
        cursor: &mut Cursor,
        end: bool,
        mut emit: impl FnMut(Found),
    ) -> usize {
        let mut settled = 0;
        loop {
            if cursor.fed == buf.len() {
                match cursor.candidate.take() {
                    Some(c) if end => {
                        emit(c);
                        settled = c.end;
                        cursor.fed = c.end;
                        cursor.state = 0;
                        continue;
                    }
                    c => {
                        cursor.candidate = c;
                        if end {
                            return settled;
                        }
                        return cursor.fed - self.depth[cursor.state as usize] as usize;
                    }
                }
            }
            cursor.state = self.next(cursor.state, buf[cursor.fed]);
            cursor.fed += 1;
            let s = cursor.state as usize;
            let p = self.out[s];
            if p != NONE {
                let start = cursor.fed - self.lengths[p as usize] as usize;
                let better = match cursor.candidate {
                    None => true,
                    Some(c) => start < c.start || (start == c.start && cursor.fed > c.end),
                };
                if better {
                    cursor.candidate = Some(Found {
                        start,
                        end: cursor.fed,
                        pattern: p,
                    });
                }
            }
            if let Some(c) = cursor.candidate {
                if cursor.fed - self.depth[s] as usize > c.start {
                    // Nothing can start at or before `c.start` any more.
                    emit(c);
                    settled = c.end;
                    cursor.candidate = None;
                    cursor.fed = c.end;
                    cursor.state = 0;
                }
            }
        }
    }
}
