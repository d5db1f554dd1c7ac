//! `vulnflow`: the operator CLI. Each subcommand is one variant of [`Command`] and one
//! module; every failure is a [`CliError`], which decides the exit code.

mod api_client;
mod connectors;
mod cost;
mod error;
mod normalize;
mod output;
mod progress;
mod sync;
mod token;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api_client::ApiOptions;
use crate::error::{CliError, EXIT_CODES};

#[derive(Parser)]
#[command(
    name = "vulnflow",
    version,
    about = "Sync vulnerability data from scanners",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Normalize one Tenable export chunk or Qualys Host List Detection page: one finding
    /// (or, with `--kind assets`, one asset) per line (NDJSON) on stdout, a summary on stderr.
    Normalize(normalize::NormalizeArgs),
    /// List the connectors: id, name, type, base URL, schedule, default mode.
    Connectors(connectors::ConnectorsArgs),
    /// Start and follow, inspect, cancel and resume syncs.
    #[command(subcommand, after_help = EXIT_CODES)]
    Sync(sync::SyncCommand),
    /// Estimate what a sync costs in AWS (Lambda, Step Functions, DynamoDB, S3).
    Cost(cost::CostArgs),
    /// Mint a bearer token with the deployment's signing key (needs AWS access to it).
    Token(token::TokenArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Normalize(args) => normalize::run(&args),
        Command::Token(args) => token::run(&args).await,
        Command::Cost(args) => cost::run(&args),
        Command::Connectors(args) => connectors::run(&cli.api.client()?, &args).await,
        Command::Sync(command) => sync::run(command, &cli.api.client()?).await,
    }
}
