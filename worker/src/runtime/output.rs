//! Splitting a task's output streams into log lines (pure).
//!
//! [`LineSplitter`] turns arbitrary byte chunks into lines, cutting lines
//! longer than [`MAX_LINE_BYTES`]. [`StdoutCollector`] additionally keeps the
//! last [`STDOUT_TAIL_BYTES`] of stdout (to find the result line) and, for
//! the Docker wrapper, recognises the [`RESULT_MARKER`] line after which
//! stdout carries the content of `/baton/out/result.json` instead of log
//! lines, and the [`END_MARKER`] line that proves all output arrived.

use std::collections::VecDeque;

use super::result::MAX_RESULT_FILE_BYTES;

/// Printed by the Docker wrapper before the content of `result.json`.
pub const RESULT_MARKER: &str = "@@BATON-RESULT-FILE@@";

/// Printed by the Docker wrapper as its very last line.
pub const END_MARKER: &str = "@@BATON-END@@";

/// How much of stdout is kept in memory.
pub const STDOUT_TAIL_BYTES: usize = 64 * 1024;

/// Longer lines are forwarded in pieces of this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Bytes in, lines out (without `\n` / `\r\n`).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, or a [`MAX_LINE_BYTES`] piece of an overlong one.
    pub fn next_line(&mut self) -> Option<String> {
        let end = match self.buf.iter().position(|b| *b == b'\n') {
            Some(i) if i <= MAX_LINE_BYTES => i,
            _ if self.buf.len() >= MAX_LINE_BYTES => {
                let piece: Vec<u8> = self.buf.drain(..MAX_LINE_BYTES).collect();
                return Some(String::from_utf8_lossy(&piece).into_owned());
            }
            _ => return None,
        };
        let mut line: Vec<u8> = self.buf.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    /// The unterminated rest, at end of stream.
    pub fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.buf);
        Some(String::from_utf8_lossy(&rest).into_owned())
    }

    fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Collects stdout: forwards log lines, keeps the tail, extracts the result file.
#[derive(Debug)]
pub struct StdoutCollector {
    splitter: LineSplitter,
    wrapped: bool,
    ended: bool,
    /// Recent non-empty lines, at most [`STDOUT_TAIL_BYTES`] in total (the last one always kept).
    tail: VecDeque<String>,
    tail_bytes: usize,
    /// An empty line is held back: if a marker follows, it came from the
    /// wrapper's `echo` and is not the task's.
    held_blank: bool,
    file: Option<Vec<u8>>,
}

impl StdoutCollector {
    /// `wrapped`: output of the Docker wrapper (markers are recognised);
    /// false for plain processes.
    pub fn new(wrapped: bool) -> Self {
        Self {
            splitter: LineSplitter::default(),
            wrapped,
            ended: false,
            tail: VecDeque::new(),
            tail_bytes: 0,
            held_blank: false,
            file: None,
        }
    }

    /// Feed a chunk of stdout; returns the lines to forward as logs.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        if let Some(file) = &mut self.file {
            append_capped(file, chunk);
            return Vec::new();
        }
        self.splitter.push(chunk);
        let mut logs = Vec::new();
        while let Some(line) = self.splitter.next_line() {
            if self.wrapped && line == END_MARKER {
                self.held_blank = false;
                self.ended = true;
                continue;
            }
            if self.wrapped && line == RESULT_MARKER {
                self.held_blank = false;
                let mut file = Vec::new();
                append_capped(&mut file, &self.splitter.take_rest());
                self.file = Some(file);
                return logs;
            }
            self.accept(line, &mut logs);
        }
        logs
    }

    /// End of stream; returns the last lines to forward.
    pub fn finish(&mut self) -> Vec<String> {
        let mut logs = Vec::new();
        if self.file.is_none() {
            if let Some(rest) = self.splitter.finish() {
                self.accept(rest, &mut logs);
            }
        }
        if std::mem::take(&mut self.held_blank) {
            logs.push(String::new());
        }
        logs
    }

    fn accept(&mut self, line: String, logs: &mut Vec<String>) {
        if line.is_empty() {
            if self.held_blank {
                logs.push(String::new());
            }
            self.held_blank = true;
            return;
        }
        if std::mem::take(&mut self.held_blank) {
            logs.push(String::new());
        }
        if !line.trim().is_empty() {
            self.remember(line.clone());
        }
        logs.push(line);
    }

    fn remember(&mut self, line: String) {
        self.tail_bytes += line.len();
        self.tail.push_back(line);
        while self.tail_bytes > STDOUT_TAIL_BYTES && self.tail.len() > 1 {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
            }
        }
    }

    /// The last non-empty line of stdout (the candidate result).
    pub fn last_non_empty_line(&self) -> Option<&str> {
        self.tail.back().map(String::as_str)
    }

    /// The content of `result.json` relayed after the marker, if any.
    pub fn result_file(&self) -> Option<&[u8]> {
        let file = self.file.as_deref()?;
        Some(file.strip_suffix(Self::FILE_END).unwrap_or(file))
    }

    /// Whether the wrapper's [`END_MARKER`] arrived, i.e. the output is complete.
    pub fn ended(&self) -> bool {
        match &self.file {
            Some(file) => file.ends_with(Self::FILE_END),
            None => self.ended,
        }
    }

    /// How the relayed file ends: the wrapper's `echo` then the end marker.
    const FILE_END: &'static [u8] = b"\n@@BATON-END@@\n";
}

/// Appends up to one byte more than [`MAX_RESULT_FILE_BYTES`] (so that
/// "too large" stays detectable without unbounded memory).
fn append_capped(file: &mut Vec<u8>, chunk: &[u8]) {
    let room = (MAX_RESULT_FILE_BYTES + 1).saturating_sub(file.len());
    file.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(c: &mut StdoutCollector, chunks: &[&str]) -> Vec<String> {
        let mut logs = Vec::new();
        for chunk in chunks {
            logs.extend(c.push(chunk.as_bytes()));
        }
        logs.extend(c.finish());
        logs
    }

    #[test]
    fn splits_across_chunks() {
        let mut s = LineSplitter::default();
        s.push(b"hel");
        assert_eq!(s.next_line(), None);
        s.push(b"lo\r\nwor");
        assert_eq!(s.next_line().as_deref(), Some("hello"));
        assert_eq!(s.next_line(), None);
        s.push(b"ld");
        assert_eq!(s.finish().as_deref(), Some("world"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn cuts_overlong_lines() {
        let mut s = LineSplitter::default();
        s.push(&vec![b'a'; MAX_LINE_BYTES + 10]);
        s.push(b"\n");
        assert_eq!(s.next_line().map(|l| l.len()), Some(MAX_LINE_BYTES));
        assert_eq!(s.next_line().map(|l| l.len()), Some(10));
        assert_eq!(s.next_line(), None);
    }

    #[test]
    fn marker_splits_logs_from_file() {
        let mut c = StdoutCollector::new(true);
        let logs = feed(
            &mut c,
            &[
                "working\n{\"result\":\"ok\"}\n",
                "\n@@BATON-RESULT-FILE@@\n{\"resu",
                "lt\":\"fail\"}\n@@BATON-E",
            ],
        );
        assert_eq!(logs, vec!["working", "{\"result\":\"ok\"}"]);
        assert!(!c.ended());
        c.push(b"ND@@\n");
        assert!(c.ended());
        assert_eq!(c.result_file(), Some(&b"{\"result\":\"fail\"}"[..]));
        assert_eq!(c.last_non_empty_line(), Some("{\"result\":\"ok\"}"));
    }

    #[test]
    fn wrapper_echo_completes_an_unterminated_line() {
        let mut c = StdoutCollector::new(true);
        let logs = feed(
            &mut c,
            &["partial", "\n@@BATON-RESULT-FILE@@\n{}\n\n@@BATON-END@@\n"],
        );
        assert_eq!(logs, vec!["partial"]);
        assert_eq!(c.result_file(), Some(&b"{}\n"[..]));
        assert!(c.ended());
    }

    #[test]
    fn end_marker_and_the_wrappers_blank_line_are_not_logged() {
        let mut c = StdoutCollector::new(true);
        let logs = feed(&mut c, &["a\n\n", "\n@@BATON-END@@\n"]);
        assert_eq!(logs, vec!["a", ""]);
        assert!(c.ended());
        let mut c = StdoutCollector::new(true);
        let logs = feed(&mut c, &["no newline", "\n@@BATON-END@@\n"]);
        assert_eq!(logs, vec!["no newline"]);
        assert_eq!(c.last_non_empty_line(), Some("no newline"));
    }

    #[test]
    fn blank_lines_of_the_task_are_forwarded() {
        let mut c = StdoutCollector::new(true);
        let logs = feed(&mut c, &["a\n\n\nb\n\n"]);
        assert_eq!(logs, vec!["a", "", "", "b", ""]);
        assert_eq!(c.last_non_empty_line(), Some("b"));
        assert_eq!(c.result_file(), None);
    }

    #[test]
    fn marker_ignored_for_processes() {
        let mut c = StdoutCollector::new(false);
        let logs = feed(&mut c, &["@@BATON-RESULT-FILE@@\n@@BATON-END@@\nx"]);
        assert_eq!(logs, vec![RESULT_MARKER, END_MARKER, "x"]);
        assert!(!c.ended());
        assert_eq!(c.result_file(), None);
        assert_eq!(c.last_non_empty_line(), Some("x"));
    }

    #[test]
    fn tail_is_bounded_and_keeps_last_line() {
        let mut c = StdoutCollector::new(false);
        let line = "y".repeat(1000);
        for _ in 0..200 {
            c.push(format!("{line}\n").as_bytes());
        }
        c.push(b"{\"result\":\"ok\"}\n");
        assert!(c.tail_bytes <= STDOUT_TAIL_BYTES);
        assert_eq!(c.last_non_empty_line(), Some("{\"result\":\"ok\"}"));
    }

    #[test]
    fn result_file_is_capped() {
        let mut c = StdoutCollector::new(true);
        c.push(b"@@BATON-RESULT-FILE@@\n");
        for _ in 0..3 {
            c.push(&vec![b' '; MAX_RESULT_FILE_BYTES]);
        }
        assert_eq!(
            c.result_file().map(<[u8]>::len),
            Some(MAX_RESULT_FILE_BYTES + 1)
        );
    }
}
