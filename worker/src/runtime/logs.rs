//! Reading a container's output through the logs endpoint.
//!
//! [`follow`] streams the output while the container runs (`logs` with
//! `follow` returns everything from the start, so nothing printed before the
//! request is lost). Docker 20.10 can end a followed log before an
//! unterminated last line was written; when the wrapper's end marker is
//! missing, [`catch_up`] reads the finished log once more and feeds only the
//! bytes not seen yet.

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::LogsOptionsBuilder;
use bollard::Docker;
use futures::{Stream as FuturesStream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::output::{LineSplitter, StdoutCollector};
use super::{LogLine, Sink, Stream};
use crate::redact::{Redactor, StreamRedactor};

/// Output collected so far, and how many bytes of each stream were consumed.
pub(crate) struct Capture {
    pub(crate) stdout: StdoutCollector,
    stderr: LineSplitter,
    seen_out: usize,
    seen_err: usize,
    sink: Sink,
    /// Before line splitting, so a value split across chunks is caught.
    redact_out: StreamRedactor,
    redact_err: StreamRedactor,
}

impl Capture {
    pub(crate) fn new(logs: mpsc::Sender<LogLine>, redactor: Arc<Redactor>) -> Self {
        Self {
            stdout: StdoutCollector::new(true),
            stderr: LineSplitter::default(),
            seen_out: 0,
            seen_err: 0,
            sink: Sink::new(logs),
            redact_out: StreamRedactor::new(redactor.clone()),
            redact_err: StreamRedactor::new(redactor),
        }
    }

    /// Feeds the part of one pass's stream that earlier passes did not see.
    async fn feed(
        &mut self,
        output: impl FuturesStream<Item = Result<LogOutput, DockerError>>,
        stop: &CancellationToken,
        id: &str,
    ) {
        let mut output = std::pin::pin!(output);
        let (mut pos_out, mut pos_err) = (0, 0);
        loop {
            let item = tokio::select! {
                item = output.next() => item,
                _ = stop.cancelled() => break,
            };
            match item {
                None => break,
                Some(Ok(LogOutput::StdOut { message })) => {
                    let fresh = unseen(&message, &mut pos_out, &mut self.seen_out);
                    let fresh = self.redact_out.push(fresh);
                    for line in self.stdout.push(&fresh) {
                        self.sink.send(Stream::Stdout, line).await;
                    }
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    let fresh = unseen(&message, &mut pos_err, &mut self.seen_err);
                    self.stderr.push(&self.redact_err.push(fresh));
                    while let Some(line) = self.stderr.next_line() {
                        self.sink.send(Stream::Stderr, line).await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(container = %id, error = %e, "log stream failed");
                    break;
                }
            }
        }
    }

    /// End of output: forwards the last unterminated lines.
    pub(crate) async fn finish(&mut self) {
        let rest = self.redact_out.finish();
        for line in self.stdout.push(&rest) {
            self.sink.send(Stream::Stdout, line).await;
        }
        self.stderr.push(&self.redact_err.finish());
        while let Some(line) = self.stderr.next_line() {
            self.sink.send(Stream::Stderr, line).await;
        }
        for line in self.stdout.finish() {
            self.sink.send(Stream::Stdout, line).await;
        }
        if let Some(line) = self.stderr.finish() {
            self.sink.send(Stream::Stderr, line).await;
        }
    }
}

/// Follows the output until the container stops (or `stop`).
pub(crate) async fn follow(
    docker: Docker,
    id: String,
    mut capture: Capture,
    stop: CancellationToken,
) -> Capture {
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let output = docker.logs(&id, Some(options));
    capture.feed(output, &stop, &id).await;
    capture
}

/// Reads the stopped container's whole log again and feeds what is new.
pub(crate) async fn catch_up(docker: &Docker, id: &str, capture: &mut Capture) {
    let options = LogsOptionsBuilder::new()
        .follow(false)
        .stdout(true)
        .stderr(true)
        .build();
    let output = docker.logs(id, Some(options));
    capture.feed(output, &CancellationToken::new(), id).await;
}

/// The suffix of `chunk` beyond `seen` bytes; `pos` is this pass's offset of
/// the chunk in its stream, `seen` the bytes consumed by all passes.
fn unseen<'a>(chunk: &'a [u8], pos: &mut usize, seen: &mut usize) -> &'a [u8] {
    let start = *pos;
    *pos += chunk.len();
    if *pos <= *seen {
        return &[];
    }
    let skip = seen.saturating_sub(start);
    *seen = *pos;
    &chunk[skip..]
}

#[cfg(test)]
mod tests {
    use super::unseen;

    #[test]
    fn second_pass_feeds_only_new_bytes() {
        let (mut pos, mut seen) = (0, 0);
        assert_eq!(unseen(b"abc", &mut pos, &mut seen), b"abc");
        assert_eq!(unseen(b"de", &mut pos, &mut seen), b"de");
        assert_eq!(seen, 5);
        // Catch-up pass, chunked differently.
        let mut pos = 0;
        assert_eq!(unseen(b"ab", &mut pos, &mut seen), b"");
        assert_eq!(unseen(b"cdef", &mut pos, &mut seen), b"f");
        assert_eq!(unseen(b"g", &mut pos, &mut seen), b"g");
        assert_eq!(seen, 7);
    }
}
