//! `vulnflow connectors`: the deployment's connectors, never their keys; and
//! `vulnflow connectors create`, which takes a scanner's credentials from the environment
//! so that they never show in the command line (shell history, `ps`).

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use vulnflow_shared::model::{ScannerKind, SyncMode};
use vulnflow_shared::scanners;

use crate::api_client::ApiClient;
use crate::error::CliError;
use crate::output::{self, Table};
use crate::wire::{Connector, ConnectorList};

/// Names may hold 200 characters; the table shows the start of longer ones.
const MAX_NAME_WIDTH: usize = 40;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConnectorsArgs {
    #[command(subcommand)]
    command: Option<ConnectorsCommand>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ConnectorsCommand {
    /// Create a connector (admin). Its credentials come from the environment:
    /// VULNFLOW_ACCESS_KEY and VULNFLOW_SECRET_KEY for tenable, VULNFLOW_USERNAME and
    /// VULNFLOW_PASSWORD for qualys.
    Create(CreateArgs),
}

#[derive(Args)]
struct CreateArgs {
    /// The scanner.
    #[arg(long = "type", value_enum)]
    kind: ScannerKind,
    #[arg(long)]
    name: String,
    /// The scanner's API root, e.g. https://cloud.tenable.com or
    /// https://qualysapi.qg2.apps.qualys.com.
    #[arg(long)]
    base_url: String,
    /// The connector's id; `<type>-<12 hex digits>` when left out.
    #[arg(long)]
    id: Option<String>,
    /// Hours between scheduled syncs; none when left out.
    #[arg(long)]
    schedule_hours: Option<u32>,
    /// The longest a sync may run, in minutes.
    #[arg(long)]
    sync_window_minutes: Option<u32>,
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    default_mode: SyncMode,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(client: &ApiClient, args: &ConnectorsArgs) -> Result<(), CliError> {
    match &args.command {
        Some(ConnectorsCommand::Create(create_args)) => create(client, create_args).await,
        None => list(client, args.json).await,
    }
}

/// The environment variable that holds a credential field.
fn variable_of(field: &str) -> String {
    format!("VULNFLOW_{}", field.to_uppercase())
}

async fn create(client: &ApiClient, args: &CreateArgs) -> Result<(), CliError> {
    let mut body = Map::new();
    for field in scanners::credential_fields(args.kind) {
        let variable = variable_of(field);
        let value = std::env::var(&variable).ok().filter(|value| !value.is_empty()).ok_or_else(|| {
            CliError::Usage(format!(
                "set {variable}: a {} connector's {field} is read from the environment, never from the command line",
                args.kind.as_str()
            ))
        })?;
        body.insert(field.to_string(), Value::String(value));
    }
    body.extend([
        ("type".to_string(), json!(args.kind)),
        ("name".to_string(), json!(args.name)),
        ("base_url".to_string(), json!(args.base_url)),
        ("schedule_hours".to_string(), json!(args.schedule_hours)),
        ("sync_window_minutes".to_string(), json!(args.sync_window_minutes)),
        ("default_mode".to_string(), json!(args.default_mode)),
    ]);
    if let Some(id) = &args.id {
        body.insert("connector_id".to_string(), json!(id));
    }
    let answer = client.post(&["connectors"], &Value::Object(body)).await?;
    if args.json {
        return output::print_json(&answer.body);
    }
    let connector: Connector = answer.read()?;
    output::print(&connector_table(std::slice::from_ref(&connector)))
}

async fn list(client: &ApiClient, json: bool) -> Result<(), CliError> {
    let answer = client.get(&["connectors"], &[]).await?;
    let list: ConnectorList = answer.read()?;
    if json {
        return output::print_json(&answer.body);
    }
    if list.connectors.is_empty() {
        eprintln!("no connectors yet: an admin creates one with `vulnflow connectors create`");
        return Ok(());
    }
    output::print(&connector_table(&list.connectors))
}

fn connector_table(connectors: &[Connector]) -> String {
    let mut table = Table::new(&["ID", "NAME", "TYPE", "BASE URL", "SCHEDULE", "DEFAULT MODE"]);
    for connector in connectors {
        table.row(vec![
            connector.connector_id.clone(),
            output::cut(&connector.name, MAX_NAME_WIDTH),
            connector.kind.clone(),
            connector.base_url.clone(),
            schedule(connector),
            connector.default_mode.clone(),
        ]);
    }
    table.render()
}

/// "every 24 h within 30 min", or "manual only".
fn schedule(connector: &Connector) -> String {
    match (connector.schedule_hours, connector.sync_window_minutes) {
        (None, _) => "manual only".to_string(),
        (Some(hours), None) => format!("every {hours} h"),
        (Some(hours), Some(minutes)) => format!("every {hours} h within {minutes} min"),
    }
}
