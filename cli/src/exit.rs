//! How a command ends when it does not succeed: an exit code and what to
//! say on stderr. Commands return `Result<_, Exit>` and use `?`; `main`
//! prints the message and exits with the code, in one place.
//!
//! Exit codes: 0 success, 1 a run ended otherwise or something failed
//! (the server, a file write, a check), 2 bad input (what the caller got wrong).

use std::fmt::Display;

use baton_proto::client as admin_client;

/// Something failed: the server, a write, a run that did not succeed.
pub const FAILED: u8 = 1;
/// What the caller gave is wrong: a file, a flag, a run that does not exist.
pub const BAD_INPUT: u8 = 2;

/// The process's exit code and the text to print on stderr first (empty:
/// nothing to add, e.g. a run that failed, which stdout already shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    /// `message` exactly as it is to be printed (one or more lines).
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }

    /// Bad input: `error: {e}`, exit 2.
    pub fn usage(e: impl Display) -> Self {
        Self::new(BAD_INPUT, format!("error: {e}"))
    }

    /// Something else failed: `error: {e}`, exit 1.
    pub fn failure(e: impl Display) -> Self {
        Self::new(FAILED, format!("error: {e}"))
    }

    /// Exit `code` with nothing more to say.
    pub fn silent(code: u8) -> Self {
        Self::new(code, String::new())
    }

    /// Diagnostics that are already `file:line:col: …` lines, one each: exit 2.
    pub fn diagnostics<D: Display>(lines: impl IntoIterator<Item = D>) -> Self {
        let lines: Vec<String> = lines.into_iter().map(|d| d.to_string()).collect();
        Self::new(BAD_INPUT, lines.join("\n"))
    }

    /// A command that still reports a bare exit code: 0 is success.
    pub fn from_code(code: u8) -> Result<(), Exit> {
        match code {
            0 => Ok(()),
            c => Err(Self::silent(c)),
        }
    }
}

/// gRPC status → message (with a hint for missing or too weak tokens) and
/// exit code: what the caller got wrong is 2, anything else 1.
impl From<tonic::Status> for Exit {
    fn from(s: tonic::Status) -> Self {
        let mut message = format!("error: {}", s.message());
        match s.code() {
            tonic::Code::Unauthenticated => message.push_str(&format!(
                "\nhint: set {} or {} (or pass --token-file) to a token from `baton token create`, or from `baton dev`'s output",
                admin_client::TOKEN_ENV,
                admin_client::TOKEN_FILE_ENV
            )),
            tonic::Code::PermissionDenied => {
                message.push_str("\nhint: ask an admin for a token with the role named above")
            }
            _ => {}
        }
        let code = match s.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::FailedPrecondition => BAD_INPUT,
            _ => FAILED,
        };
        Exit::new(code, message)
    }
}

/// Print the message, if any, on stderr and give the exit code: the one
/// place a command's outcome becomes the process's.
pub fn finish(r: Result<(), Exit>) -> u8 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("{}", e.message);
            }
            e.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_codes_and_messages_printed() {
        let cases = [
            (tonic::Code::InvalidArgument, BAD_INPUT),
            (tonic::Code::NotFound, BAD_INPUT),
            (tonic::Code::FailedPrecondition, BAD_INPUT),
            (tonic::Code::Unavailable, FAILED),
            (tonic::Code::Internal, FAILED),
            (tonic::Code::Unauthenticated, FAILED),
            (tonic::Code::PermissionDenied, FAILED),
        ];
        for (code, want) in cases {
            let e = Exit::from(tonic::Status::new(code, "boom"));
            assert_eq!(e.code, want, "{code:?}");
            assert!(
                e.message.starts_with("error: boom"),
                "{code:?}: {}",
                e.message
            );
        }
        let e = Exit::from(tonic::Status::unauthenticated("no token"));
        assert_eq!(e.message.lines().count(), 2);
        assert!(e
            .message
            .contains("hint: set BATON_TOKEN or BATON_TOKEN_FILE"));
        let e = Exit::from(tonic::Status::permission_denied("needs approver"));
        assert!(e
            .message
            .ends_with("\nhint: ask an admin for a token with the role named above"));
        assert_eq!(
            Exit::from(tonic::Status::not_found("x")).message,
            "error: x"
        );
    }

    #[test]
    fn finish_gives_the_code() {
        assert_eq!(finish(Ok(())), 0);
        assert_eq!(finish(Err(Exit::silent(1))), 1);
        assert_eq!(finish(Err(Exit::usage("bad"))), 2);
        assert_eq!(Exit::from_code(0), Ok(()));
        assert_eq!(Exit::from_code(3), Err(Exit::silent(3)));
    }
}
