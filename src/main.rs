#![forbid(unsafe_code)]
//! `coldchain`: the one binary of the network — servers, the dev network, health checks —
//! and the commands of the crates under `crates/` (ops, demo, bench, soak, compose, certs,
//! credentials). It alone depends on the services; it hands them to the bench.

mod console;
mod run;
mod settings;

use std::process::ExitCode;

/// sled copies a tree node on every change: the profile of a durable write spent a fifth
/// of its time in glibc's malloc and free (consolidating fragmented large blocks).
/// mimalloc's size-class pages serve that pattern far more cheaply. It is built without
/// transparent huge pages (`no_thp`): with them the idle dev network's 25 servers took
/// 210 MiB resident instead of 47 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// The Huaihua cold-chain network.
#[derive(Parser)]
#[command(name = "coldchain", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one service of one site (or the gateway, or the console) as this process.
    Serve(run::ServeArgs),
    /// Run the whole network in this process: every site's services, the gateway and the
    /// console.
    Dev(run::DevArgs),
    /// Exit 0 when the server at ADDR answers SERVING, 1 otherwise (for compose).
    Healthcheck(run::HealthcheckArgs),
    /// Operator commands against the gateway or a site.
    #[command(flatten)]
    Ops(coldchain_ops::OpsCommand),
    /// Drive a realistic day on a running network.
    Demo(coldchain_demo::DemoArgs),
    /// Measure every service side by side with PostgreSQL and the gRPC ceiling.
    Bench(coldchain_bench::BenchArgs),
    /// Run the network as processes under random faults (seeded) and check its invariants.
    Soak(coldchain_soak::SoakArgs),
    /// Generate deploy/compose.yaml, stack.yaml, compose.sites.yaml and network.compose.toml
    /// from the network file.
    Compose(coldchain_deploy::ComposeArgs),
    /// Make a local CA and a certificate per service instance (for compose and trying TLS).
    Certs(coldchain_certs::CertsArgs),
    /// Make API keys: one credential, or the keyring of every role of a network.
    #[command(subcommand)]
    Credentials(coldchain_credentials::CredentialsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("coldchain: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => run::serve(args).await,
            Command::Dev(args) => run::dev(args).await,
            Command::Healthcheck(args) => run::healthcheck(args).await,
            Command::Ops(command) => coldchain_ops::run(command).await,
            Command::Demo(args) => coldchain_demo::run(args).await,
            Command::Bench(args) => match run::bench_metrics() {
                Ok(()) => coldchain_bench::run(args, run::build).await,
                Err(code) => code,
            },
            Command::Soak(args) => match std::env::current_exe() {
                Ok(exe) => coldchain_soak::run(args, exe).await,
                Err(error) => {
                    eprintln!("coldchain: cannot find this executable: {error}");
                    ExitCode::from(1)
                }
            },
            Command::Compose(args) => coldchain_deploy::run(args).await,
            Command::Certs(args) => coldchain_certs::run(args),
            Command::Credentials(command) => coldchain_credentials::run(command),
        }
    })
}
