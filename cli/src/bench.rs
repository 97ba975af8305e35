//! `baton bench`: written in full later in this file's history.
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Where to write the figures.
    #[arg(long, default_value = "bench-results.json")]
    pub out: std::path::PathBuf,
}

pub async fn run(_a: BenchArgs) -> u8 {
    eprintln!("error: baton bench is not built yet");
    1
}
