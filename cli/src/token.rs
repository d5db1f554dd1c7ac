//! `vulnflow token`: a bearer token for the sync API, signed with the deployment's key
//! in Secrets Manager, for operators with AWS access to hand out or use.

use chrono::{Duration, Utc};
use clap::{Args, ValueEnum, builder::NonEmptyStringValueParser};
use vulnflow_shared::auth::{self, Role};
use vulnflow_shared::config::aws_config;

use crate::error::CliError;
use crate::output;

#[derive(Args)]
pub struct TokenArgs {
    /// Who the token names, e.g. an e-mail address; recorded on the syncs it starts.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    principal: String,
    /// What the token may do.
    #[arg(long, value_enum)]
    role: RoleName,
    /// The Secrets Manager secret that holds the signing key (the stack's
    /// ApiSigningKeySecret output). AWS credentials and region come from the environment.
    #[arg(long, value_name = "ID")]
    secret_id: String,
    /// How many hours the token is valid.
    #[arg(long, value_name = "N", default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=720))]
    hours: u16,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleName {
    /// Starts and cancels syncs, changes connectors.
    Admin,
    /// Reads connectors, jobs and history.
    Reader,
}

/// Prints only the token, so that it can be captured: `export VULNFLOW_TOKEN=$(vulnflow token ...)`.
pub async fn run(args: &TokenArgs) -> Result<(), CliError> {
    let (config, _) = aws_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let key = auth::signing_key(&secrets, &args.secret_id).await.map_err(CliError::SigningKey)?;
    let role = match args.role {
        RoleName::Admin => Role::Admin,
        RoleName::Reader => Role::Reader,
    };
    let lifetime = Duration::hours(i64::from(args.hours));
    let token = auth::mint(&key, args.principal.trim(), role, lifetime, Utc::now());
    eprintln!(
        "{} token for {}, valid for {}",
        match role {
            Role::Admin => "an admin",
            Role::Reader => "a reader",
        },
        args.principal.trim(),
        output::plural(usize::from(args.hours), "hour")
    );
    output::print(&format!("{token}\n"))
}
