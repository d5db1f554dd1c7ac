//! The connectors table: one item a connector, keyed by its id. A deleted connector
//! leaves a tombstone, so its id (and the findings kept under it) stays its own.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::Utc;

use super::{DynamoStore, attribute, can_be_key, conditional_write, decode, item, storage_error, string};
use crate::errors::{Result, SyncError};
use crate::model::{Connector, ConnectorRecord, SyncClaim};
use crate::store::{ConnectorStore, retired_id};

/// The attribute that marks a deleted connector's item: its id stays taken.
const RETIRED_AT: &str = "retired_at";
/// Connector attributes that syncs write, which an update from the API must leave alone.
const SYNC_OWNED_CONNECTOR_ATTRIBUTES: [&str; 2] = ["sync_cursor", "sync_claim"];
/// A connector that exists and was not deleted.
const LIVE: &str = "attribute_exists(connector_id) AND attribute_not_exists(retired_at)";
/// A live connector no sync was ever claimed on.
const LIVE_AND_NEVER_CLAIMED: &str =
    "attribute_exists(connector_id) AND attribute_not_exists(retired_at) AND attribute_not_exists(sync_claim)";
const PUT_ITEM: &str = "PutItem on the connectors table";
const UPDATE_ITEM: &str = "UpdateItem on the connectors table";

impl DynamoStore {
    fn connector_update(&self, connector_id: &str) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.tables.connectors).key("connector_id", string(connector_id))
    }
}

/// What an update from the API sets on a connector item: everything but its key and
/// what syncs write.
fn api_managed_attributes(record: &ConnectorRecord) -> Result<HashMap<String, AttributeValue>> {
    let mut attributes = item(record)?;
    attributes.remove("connector_id");
    for owned in SYNC_OWNED_CONNECTOR_ATTRIBUTES {
        attributes.remove(owned);
    }
    Ok(attributes)
}

#[async_trait]
impl ConnectorStore for DynamoStore {
    async fn connector_record(&self, connector_id: &str) -> Result<Option<ConnectorRecord>> {
        if !can_be_key(connector_id) {
            return Ok(None);
        }
        let key = HashMap::from([("connector_id".to_string(), string(connector_id))]);
        let item = self.read_item(&self.tables.connectors, "connectors", key).await?;
        item.filter(|item| !item.contains_key(RETIRED_AT)).map(|item| decode("connectors", item)).transpose()
    }

    async fn list_connectors(&self) -> Result<Vec<ConnectorRecord>> {
        let items = self
            .client
            .scan()
            .table_name(&self.tables.connectors)
            .consistent_read(true)
            .filter_expression("attribute_not_exists(retired_at)")
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| storage_error("Scan on the connectors table", e))?;
        items.into_iter().map(|item| decode("connectors", item)).collect()
    }

    async fn create_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let connector_id = &record.connector.connector_id;
        let request = self
            .client
            .put_item()
            .table_name(&self.tables.connectors)
            .set_item(Some(item(record)?))
            .condition_expression("attribute_not_exists(connector_id)");
        if conditional_write(PUT_ITEM, request.send()).await? {
            return Ok(());
        }
        // The id is taken: by a connector, or by a deleted one's tombstone.
        Err(match self.connector_record(connector_id).await? {
            None => retired_id(connector_id),
            Some(_) => SyncError::Conflict(format!("a connector {connector_id} already exists: choose another id")),
        })
    }

    async fn update_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let connector_id = &record.connector.connector_id;
        let attributes = api_managed_attributes(record)?;
        let mut request = self.connector_update(connector_id).condition_expression(LIVE);
        let mut assignments = Vec::with_capacity(attributes.len());
        for (index, (name, value)) in attributes.into_iter().enumerate() {
            assignments.push(format!("#a{index} = :a{index}"));
            request = request
                .expression_attribute_names(format!("#a{index}"), name)
                .expression_attribute_values(format!(":a{index}"), value);
        }
        let request = request.update_expression(format!("SET {}", assignments.join(", ")));
        if conditional_write(UPDATE_ITEM, request.send()).await? {
            Ok(())
        } else {
            Err(SyncError::NotFound(format!("there is no connector {connector_id}")))
        }
    }

    async fn delete_connector(&self, connector_id: &str) -> Result<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| storage_error("DeleteItem on the connectors table", e))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn retire_connector(&self, connector_id: &str, last_claim: Option<&str>) -> Result<bool> {
        if !can_be_key(connector_id) {
            return Ok(false);
        }
        let tombstone = HashMap::from([
            ("connector_id".to_string(), string(connector_id)),
            (RETIRED_AT.to_string(), attribute(&Utc::now())?),
        ]);
        let request = self.client.put_item().table_name(&self.tables.connectors).set_item(Some(tombstone));
        let request = match last_claim {
            Some(job_id) => request
                .condition_expression("attribute_not_exists(retired_at) AND sync_claim.job_id = :claim")
                .expression_attribute_values(":claim", string(job_id)),
            None => request.condition_expression(LIVE_AND_NEVER_CLAIMED),
        };
        conditional_write(PUT_ITEM, request.send()).await
    }

    async fn claim_sync(&self, connector_id: &str, previous: Option<&str>, claim: &SyncClaim) -> Result<bool> {
        let request = self
            .connector_update(connector_id)
            .update_expression("SET sync_claim = :claim")
            .expression_attribute_values(":claim", attribute(claim)?);
        let request = match previous {
            Some(job_id) => request
                .condition_expression("sync_claim.job_id = :previous")
                .expression_attribute_values(":previous", string(job_id)),
            None => request.condition_expression(LIVE_AND_NEVER_CLAIMED),
        };
        conditional_write(UPDATE_ITEM, request.send()).await
    }

    async fn release_sync(&self, connector_id: &str, job_id: &str) -> Result<()> {
        let request = self
            .connector_update(connector_id)
            .update_expression("REMOVE sync_claim")
            .condition_expression("sync_claim.job_id = :job")
            .expression_attribute_values(":job", string(job_id));
        // Not released when another start claimed the connector since: that claim stays.
        conditional_write(UPDATE_ITEM, request.send()).await.map(|_released| ())
    }

    async fn advance_cursor(&self, connector_id: &str, cursor: i64) -> Result<()> {
        let request = self
            .connector_update(connector_id)
            .update_expression("SET sync_cursor = :cursor")
            .condition_expression(format!("{LIVE} AND (attribute_not_exists(sync_cursor) OR sync_cursor < :cursor)"))
            .expression_attribute_values(":cursor", AttributeValue::N(cursor.to_string()));
        // Not advanced past a newer cursor, nor on a deleted connector.
        conditional_write(UPDATE_ITEM, request.send()).await.map(|_advanced| ())
    }

    async fn put_connector(&self, connector: &Connector) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.tables.connectors)
            .set_item(Some(item(connector)?))
            .send()
            .await
            .map_err(|e| storage_error(PUT_ITEM, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SyncMode;

    fn record() -> ConnectorRecord {
        ConnectorRecord {
            connector: Connector {
                connector_id: "tenable-1".into(),
                name: "Tenable".into(),
                kind: crate::model::ScannerKind::Tenable,
                base_url: "https://cloud.tenable.com".into(),
                secret_id: "vulnflow/tenable-1".into(),
                default_mode: SyncMode::Full,
                sync_cursor: Some(1_700_000_000),
            },
            schedule_hours: Some(24),
            sync_window_minutes: None,
            created_at: Some(Utc::now()),
            updated_at: Some(Utc::now()),
            sync_claim: Some(SyncClaim { job_id: "job-1".into(), claimed_at: Utc::now() }),
        }
    }

    #[test]
    fn a_connector_record_round_trips_and_a_hand_made_connector_reads_as_one() {
        let record = record();
        let decoded: ConnectorRecord = decode("connectors", item(&record).expect("encodes")).expect("decodes");
        assert_eq!(decoded, record);
        let by_hand: ConnectorRecord =
            decode("connectors", item(&record.connector).expect("encodes")).expect("decodes");
        assert_eq!(by_hand, ConnectorRecord::from(record.connector.clone()));
    }

    #[test]
    fn an_update_from_the_api_leaves_what_syncs_wrote_and_clears_a_schedule_turned_off() {
        let attributes = api_managed_attributes(&record()).expect("encodes");
        for kept in ["connector_id", "sync_cursor", "sync_claim"] {
            assert!(!attributes.contains_key(kept), "{kept} is not the API's to set");
        }
        let window = attributes.get("sync_window_minutes");
        assert_eq!(window, Some(&AttributeValue::Null(true)), "null, so an update turns it off");
        assert_eq!(attributes.get("schedule_hours"), Some(&AttributeValue::N("24".into())));
    }
}
