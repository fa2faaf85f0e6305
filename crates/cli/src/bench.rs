//! `coldchain bench`: not yet implemented.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("coldchain: bench is not implemented yet");
    ExitCode::from(1)
}
