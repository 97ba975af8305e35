//! What can go wrong in the coordinator, phrased as what the caller did or must do.

use baton_plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidPlan(#[from] PlanError),
    #[error("invalid inputs: {0}")]
    InvalidInputs(String),
    #[error("no plan named `{0}` is registered — register it with `baton plan apply FILE`")]
    UnknownPlan(String),
    #[error("run {0} not found — list runs with `baton runs`")]
    RunNotFound(String),
    #[error(
        "run {run} is not waiting for an approval (status {status}) — see `baton status {run}`"
    )]
    NothingToDecide { run: String, status: String },
    #[error("a decision on run {run} needs a reason — say why, e.g. `baton approve {run} --reason \"diff reviewed, canary green\"`")]
    ReasonRequired { run: String },
    #[error("the reason for run {run} is {bytes} bytes, more than the limit of 4096 — link to the details instead")]
    ReasonTooLong { run: String, bytes: usize },
    #[error("{who} submitted run {run}, and its approval gate forbids self-approval — ask someone else to approve it")]
    SelfApproval { run: String, who: String },
    #[error("run {run} already ended ({status})")]
    RunEnded { run: String, status: String },
    #[error("give either a plan's YAML or a registered plan's name, not {0}")]
    PlanSource(&'static str),
    #[error("{0}")]
    NatsUnreachable(String),
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("cannot listen for {what} on {addr}: {source} — is another process using it? pick another address")]
    Listen {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no admin tokens: start the coordinator with --tokens-file FILE, and create its first line with `baton token create --name NAME --role admin --tokens-file FILE` (only `baton dev --no-auth` runs without tokens)")]
    NoTokens,
    #[error("cannot read the tokens file {path}: {source} — pass the file `baton token create --tokens-file` wrote")]
    TokensFileUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message} — {hint}")]
    TokensFile {
        file: String,
        line: usize,
        col: usize,
        message: String,
        hint: String,
    },
    #[error("cannot read {flag} {path}: {source} — give a PEM file")]
    TlsFile {
        flag: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad TLS configuration: {0} — check that --tls-cert and --tls-key are a matching PEM certificate and key, and --tls-client-ca a PEM CA certificate")]
    Tls(#[source] tonic::transport::Error),
    #[error("bus error: {0}")]
    Bus(#[from] async_nats::Error),
    #[error("webhook server error: {0}")]
    Hooks(#[source] std::io::Error),
    #[error("evidence key {path}: {problem} — make a pair with `baton evidence keygen -o PREFIX`")]
    EvidenceKey { path: String, problem: String },
    #[error("evidence does not verify: {0}")]
    EvidenceInvalid(String),
    #[error("run {0} has no evidence — it is stored when the run ends, by a coordinator started with --evidence-key")]
    NoEvidence(String),
    #[error("gRPC server error: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// A part of the coordinator stopped while it served, or did not stop in time.
    #[error("{0}")]
    Stopped(#[from] baton_proto::supervise::Stopped),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::InvalidPlan(_)
            | Error::InvalidInputs(_)
            | Error::PlanSource(_)
            | Error::ReasonRequired { .. }
            | Error::ReasonTooLong { .. } => tonic::Status::invalid_argument(msg),
            Error::SelfApproval { .. } => tonic::Status::permission_denied(msg),
            Error::UnknownPlan(_) | Error::RunNotFound(_) | Error::NoEvidence(_) => {
                tonic::Status::not_found(msg)
            }
            Error::NothingToDecide { .. } | Error::RunEnded { .. } => {
                tonic::Status::failed_precondition(msg)
            }
            _ => tonic::Status::unavailable(msg),
        }
    }
}
