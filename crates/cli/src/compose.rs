//! `coldchain compose`: not yet implemented.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct ComposeArgs {}

pub async fn run(_args: ComposeArgs) -> ExitCode {
    eprintln!("coldchain: compose is not implemented yet");
    ExitCode::from(1)
}
