//! Connectors: create, list, read, change and delete. The keys go to the secret store
//! and never come back out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::ApiServices;
use super::input;
use crate::errors::{Result, SyncError};
use crate::model::{Connector, ConnectorRecord, ScannerCredentials, ScannerKind, SyncMode};
use crate::scanners;

const SCHEDULE_HOURS: std::ops::RangeInclusive<u32> = 1..=168;
/// EventBridge Scheduler's limits on a flexible window.
const SYNC_WINDOW_MINUTES: std::ops::RangeInclusive<u32> = 1..=1440;
const MAX_NAME_CHARS: usize = 200;
const MAX_KEY_CHARS: usize = 512;
/// Shorter keys are no scanner's (Tenable's are 64 characters) and could not be told from
/// ordinary text when they are redacted.
const MIN_KEY_CHARS: usize = 8;

/// The secret the API keeps a connector's keys in, and the pipeline reads them from.
fn secret_id_for(connector_id: &str) -> String {
    format!("vulnflow/{connector_id}")
}

#[derive(Deserialize)]
struct NewConnector {
    #[serde(default)]
    connector_id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    kind: ScannerKind,
    base_url: String,
    #[serde(default)]
    access_key: Option<String>,
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    schedule_hours: Option<u32>,
    #[serde(default)]
    sync_window_minutes: Option<u32>,
    #[serde(default)]
    default_mode: SyncMode,
}

/// A partial update: absent fields stay as they are; `null` turns a schedule off.
#[derive(Deserialize)]
struct ConnectorChanges {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    access_key: Option<String>,
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, deserialize_with = "present")]
    schedule_hours: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    sync_window_minutes: Option<Option<u32>>,
    #[serde(default)]
    default_mode: Option<SyncMode>,
}

/// The credential fields a request gave, every scanner's, by name: which two a
/// connector takes depends on its scanner ([`scanners::credential_fields`]).
struct GivenCredentials([(&'static str, Option<String>); 4]);

impl GivenCredentials {
    fn new(
        access_key: Option<String>,
        secret_key: Option<String>,
        username: Option<String>,
        password: Option<String>,
    ) -> Self {
        GivenCredentials([
            ("access_key", access_key),
            ("secret_key", secret_key),
            ("username", username),
            ("password", password),
        ])
    }

    /// The credentials of a `kind` connector, when the request gave any: both of its
    /// scanner's fields (given as a pair, so that a rotation never mixes old and new),
    /// and no field of another scanner's.
    fn of(self, kind: ScannerKind) -> Result<Option<ScannerCredentials>> {
        let [first, second] = scanners::credential_fields(kind);
        let mut wanted = [None, None];
        for (field, value) in self.0 {
            match (scanners::credential_fields(kind).iter().position(|name| *name == field), value) {
                (Some(position), value) => wanted[position] = value,
                (None, Some(_)) => {
                    return Err(SyncError::invalid_field(
                        field,
                        format!("is not a field of a {} connector: it takes {first} and {second}", kind.as_str()),
                    ));
                }
                (None, None) => {}
            }
        }
        match wanted {
            [None, None] => Ok(None),
            [Some(first_value), Some(second_value)] => {
                let first_value = valid_credential(first, first_value)?;
                Ok(Some(scanners::credentials(kind, first_value, valid_credential(second, second_value)?)))
            }
            [Some(_), None] => {
                Err(SyncError::invalid_field(second, format!("is required with {first}: they go as a pair")))
            }
            [None, Some(_)] => {
                Err(SyncError::invalid_field(first, format!("is required with {second}: they go as a pair")))
            }
        }
    }
}

/// Tells `"field": null` (Some(None)) from a field left out (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A connector as the API shows it: never a key.
#[derive(Debug, Serialize)]
pub(super) struct ConnectorView {
    connector_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: ScannerKind,
    base_url: String,
    default_mode: SyncMode,
    schedule_hours: Option<u32>,
    sync_window_minutes: Option<u32>,
    /// Where the keys are kept (the secret's name, not its value).
    secret_id: String,
    /// Where the next incremental sync starts: the start of the last complete sync.
    incremental_from: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

impl From<&ConnectorRecord> for ConnectorView {
    fn from(record: &ConnectorRecord) -> Self {
        let connector = &record.connector;
        ConnectorView {
            connector_id: connector.connector_id.clone(),
            name: connector.name.clone(),
            kind: connector.kind,
            base_url: connector.base_url.clone(),
            default_mode: connector.default_mode,
            schedule_hours: record.schedule_hours,
            sync_window_minutes: record.sync_window_minutes,
            secret_id: connector.secret_id.clone(),
            incremental_from: connector.sync_cursor.and_then(|cursor| DateTime::from_timestamp(cursor, 0)),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ConnectorList {
    connectors: Vec<ConnectorView>,
}

/// The connector, or `NotFound` naming it.
pub(super) async fn found(services: &ApiServices, connector_id: &str) -> Result<ConnectorRecord> {
    services
        .connectors
        .connector_record(connector_id)
        .await?
        .ok_or_else(|| SyncError::NotFound(format!("there is no connector {connector_id}: GET /connectors lists them")))
}

pub(super) async fn create(services: &ApiServices, body: &[u8]) -> Result<ConnectorView> {
    let new: NewConnector = input::body(body)?;
    let connector_id = match new.connector_id {
        Some(connector_id) => valid_connector_id(connector_id)?,
        None => format!("{}-{}", new.kind.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..12]),
    };
    let credentials = GivenCredentials::new(new.access_key, new.secret_key, new.username, new.password)
        .of(new.kind)?
        .ok_or_else(|| {
        let [first, _] = scanners::credential_fields(new.kind);
        SyncError::invalid_field(first, "is required")
    })?;
    let now = Utc::now();
    let record = ConnectorRecord {
        connector: Connector {
            secret_id: secret_id_for(&connector_id),
            connector_id,
            name: valid_name(new.name)?,
            kind: new.kind,
            base_url: valid_base_url(services, new.base_url).await?,
            default_mode: new.default_mode,
            sync_cursor: None,
        },
        schedule_hours: within("schedule_hours", new.schedule_hours, SCHEDULE_HOURS)?,
        sync_window_minutes: within("sync_window_minutes", new.sync_window_minutes, SYNC_WINDOW_MINUTES)?,
        created_at: Some(now),
        updated_at: Some(now),
        sync_claim: None,
    };
    // The record first: it fails on a taken id before any existing connector's keys are touched.
    services.connectors.create_connector(&record).await?;
    let connector = &record.connector;
    if let Err(error) = services.secrets.put_credentials(&connector.secret_id, &credentials).await {
        // A connector without its keys would fail every sync: take it back.
        if let Err(cleanup) = services.connectors.delete_connector(&connector.connector_id).await {
            let connector_id = &connector.connector_id;
            tracing::error!(connector_id, error = %cleanup, "could not remove a connector whose keys were not stored");
        }
        return Err(error);
    }
    tracing::info!(connector_id = %connector.connector_id, "connector created");
    Ok(ConnectorView::from(&record))
}

pub(super) async fn list(services: &ApiServices) -> Result<ConnectorList> {
    let mut records = services.connectors.list_connectors().await?;
    records.sort_by(|a, b| a.connector.connector_id.cmp(&b.connector.connector_id));
    Ok(ConnectorList { connectors: records.iter().map(ConnectorView::from).collect() })
}

pub(super) async fn get(services: &ApiServices, connector_id: &str) -> Result<ConnectorView> {
    Ok(ConnectorView::from(&found(services, connector_id).await?))
}

pub(super) async fn update(services: &ApiServices, connector_id: &str, body: &[u8]) -> Result<ConnectorView> {
    let changes: ConnectorChanges = input::body(body)?;
    let mut record = found(services, connector_id).await?;
    let connector = &mut record.connector;
    if let Some(name) = changes.name {
        connector.name = valid_name(name)?;
    }
    let mut moved = false;
    if let Some(base_url) = changes.base_url {
        let base_url = valid_base_url(services, base_url).await?;
        moved = base_url != connector.base_url;
        connector.base_url = base_url;
    }
    if let Some(mode) = changes.default_mode {
        connector.default_mode = mode;
    }
    if let Some(hours) = changes.schedule_hours {
        record.schedule_hours = within("schedule_hours", hours, SCHEDULE_HOURS)?;
    }
    if let Some(minutes) = changes.sync_window_minutes {
        record.sync_window_minutes = within("sync_window_minutes", minutes, SYNC_WINDOW_MINUTES)?;
    }
    let credentials = GivenCredentials::new(changes.access_key, changes.secret_key, changes.username, changes.password)
        .of(record.connector.kind)?;
    if moved && credentials.is_none() {
        // The stored credentials were given for the old host: they never go to another unasked.
        let [first, second] = scanners::credential_fields(record.connector.kind);
        return Err(SyncError::invalid_field(
            first,
            format!("is required with a new base_url: give that scanner's {first} and {second}"),
        ));
    }
    if let Some(credentials) = credentials {
        services.secrets.put_credentials(&record.connector.secret_id, &credentials).await?;
        tracing::info!(connector_id, "connector keys rotated");
    }
    record.updated_at = Some(Utc::now());
    services.connectors.update_connector(&record).await?;
    Ok(ConnectorView::from(&record))
}

/// Deletes the connector and its keys. Its id is retired: the findings and assets it
/// synced stay stored under it, and no new connector can take the id and inherit them.
pub(super) async fn delete(services: &ApiServices, connector_id: &str) -> Result<()> {
    let record = found(services, connector_id).await?;
    services.starter().ensure_idle(&record).await?;
    // Idle as read: one conditional write deletes it only if no sync was claimed since.
    let last_claim = record.sync_claim.as_ref().map(|claim| claim.job_id.as_str());
    if !services.connectors.retire_connector(connector_id, last_claim).await? {
        found(services, connector_id).await?;
        return Err(SyncError::Conflict(format!(
            "a sync of connector {connector_id} started while it was being deleted: \
             cancel it (GET /connectors/{connector_id}/syncs shows it), then delete the connector"
        )));
    }
    tracing::info!(connector_id, "connector deleted");
    // A secret named by hand (not the API's own) may serve others: it stays.
    let connector = &record.connector;
    if connector.secret_id == secret_id_for(connector_id)
        && let Err(error) = services.secrets.delete_secret(&connector.secret_id).await
    {
        tracing::error!(connector_id, %error, "a deleted connector's keys could not be deleted");
        return Err(SyncError::storage(
            format!("connector {connector_id} is deleted, but deleting its keys (the secret {})", connector.secret_id),
            format!("{error}: delete that secret in Secrets Manager"),
            true,
        ));
    }
    Ok(())
}

fn valid_connector_id(connector_id: String) -> Result<String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if (3..=64).contains(&connector_id.len()) && connector_id.chars().all(allowed) {
        Ok(connector_id)
    } else {
        Err(SyncError::invalid_field(
            "connector_id",
            "must be 3 to 64 characters of a-z, 0-9 and -, or left out to have one generated",
        ))
    }
}

fn valid_name(name: String) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(SyncError::invalid_field("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(name.to_string())
}

/// A scanner's URL, if the deployment allows it: looked up now, and again at every call
/// of a sync (the address behind a name may change).
async fn valid_base_url(services: &ApiServices, base_url: String) -> Result<String> {
    let parsed = reqwest::Url::parse(base_url.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
    match parsed {
        Some(url) if url.username().is_empty() && url.password().is_none() => {
            services.scanner_network.check_url_and_addresses(&url).await?;
            Ok(url.as_str().trim_end_matches('/').to_string())
        }
        Some(_) => Err(SyncError::invalid_field(
            "base_url",
            "must not carry credentials: give the keys as access_key and secret_key",
        )),
        None => {
            Err(SyncError::invalid_field("base_url", "must be an http or https URL such as https://cloud.tenable.com"))
        }
    }
}

/// A credential field's value, trimmed. A user name is no secret; every other field
/// is, and shorter than [`MIN_KEY_CHARS`] it is no scanner's (and could not be told from
/// ordinary text when redacted).
fn valid_credential(field: &str, value: String) -> Result<String> {
    let shortest = if field == "username" { 1 } else { MIN_KEY_CHARS };
    let value = value.trim();
    if value.len() < shortest || value.len() > MAX_KEY_CHARS {
        return Err(SyncError::invalid_field(
            field,
            format!("must be the scanner's {field}: {shortest} to {MAX_KEY_CHARS} characters"),
        ));
    }
    Ok(value.to_string())
}

fn within(field: &str, value: Option<u32>, allowed: std::ops::RangeInclusive<u32>) -> Result<Option<u32>> {
    match value {
        Some(number) if !allowed.contains(&number) => Err(SyncError::invalid_field(
            field,
            format!("must be a whole number from {} to {}, or null to turn it off", allowed.start(), allowed.end()),
        )),
        _ => Ok(value),
    }
}
