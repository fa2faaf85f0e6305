//! Operator commands (issue 6): not yet implemented.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum OpsCommand {
    /// List every site with its zones and live health (not yet implemented).
    Sites,
}

pub async fn run(_command: OpsCommand) -> ExitCode {
    eprintln!("coldchain: operator commands are not implemented yet");
    ExitCode::from(1)
}
