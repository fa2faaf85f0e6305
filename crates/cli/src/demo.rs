//! `coldchain demo`: not yet implemented.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs) -> ExitCode {
    eprintln!("coldchain: demo is not implemented yet");
    ExitCode::from(1)
}
