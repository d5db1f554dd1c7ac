//! `vulnflow connectors`: the deployment's connectors, never their keys.

use clap::Args;

use crate::api_client::ApiClient;
use crate::error::CliError;
use crate::output::{self, Table};
use crate::wire::{Connector, ConnectorList};

/// Names may hold 200 characters; the table shows the start of longer ones.
const MAX_NAME_WIDTH: usize = 40;

#[derive(Args)]
pub struct ConnectorsArgs {
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(client: &ApiClient, args: &ConnectorsArgs) -> Result<(), CliError> {
    let answer = client.get(&["connectors"], &[]).await?;
    let list: ConnectorList = answer.read()?;
    if args.json {
        return output::print_json(&answer.body);
    }
    if list.connectors.is_empty() {
        eprintln!("no connectors yet: an admin creates one with POST /connectors (api/openapi.yaml)");
        return Ok(());
    }
    let mut table = Table::new(&["ID", "NAME", "TYPE", "BASE URL", "SCHEDULE", "DEFAULT MODE"]);
    for connector in &list.connectors {
        table.row(vec![
            connector.connector_id.clone(),
            output::cut(&connector.name, MAX_NAME_WIDTH),
            connector.kind.clone(),
            connector.base_url.clone(),
            schedule(connector),
            connector.default_mode.clone(),
        ]);
    }
    output::print(&table.render())
}

/// "every 24 h within 30 min", or "manual only".
fn schedule(connector: &Connector) -> String {
    match (connector.schedule_hours, connector.sync_window_minutes) {
        (None, _) => "manual only".to_string(),
        (Some(hours), None) => format!("every {hours} h"),
        (Some(hours), Some(minutes)) => format!("every {hours} h within {minutes} min"),
    }
}
