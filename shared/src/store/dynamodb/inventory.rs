//! The inventory port over the assets and findings tables. Assets are keyed by
//! connector and asset id; findings by their asset's partition ([`asset_key`]), packed
//! (see `findings`).

use std::collections::HashMap;

use async_trait::async_trait;

use super::{DynamoStore, decode, storage_error, string};
use crate::errors::Result;
use crate::store::{AssetFindings, AssetsPage, FindingsUpdate, InventoryStore, StoredAsset};

#[async_trait]
impl InventoryStore for DynamoStore {
    async fn findings_of_assets(
        &self,
        connector_id: &str,
        asset_ids: &[String],
    ) -> Result<HashMap<String, AssetFindings>> {
        self.read_findings(connector_id, asset_ids).await
    }

    async fn put_findings(&self, connector_id: &str, updates: &[FindingsUpdate]) -> Result<()> {
        self.write_findings(connector_id, updates).await
    }

    async fn assets(&self, connector_id: &str, asset_ids: &[String]) -> Result<HashMap<String, StoredAsset>> {
        let found: Vec<StoredAsset> = self.batch_get(&self.tables.assets, connector_id, "asset_id", asset_ids).await?;
        Ok(found.into_iter().map(|a| (a.asset.asset_id.clone(), a)).collect())
    }

    async fn put_assets(&self, assets: &[StoredAsset]) -> Result<()> {
        self.batch_put(&self.tables.assets, assets).await
    }

    async fn assets_page(&self, connector_id: &str, after: Option<&str>, limit: usize) -> Result<AssetsPage> {
        let start_key = after.map(|asset_id| {
            HashMap::from([
                ("connector_id".to_string(), string(connector_id)),
                ("asset_id".to_string(), string(asset_id)),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.tables.assets)
            .key_condition_expression("connector_id = :connector")
            .expression_attribute_values(":connector", string(connector_id))
            .set_exclusive_start_key(start_key)
            // The sweep must see every mark the sync's chunks wrote.
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| storage_error("Query on the assets table", e))?;
        let assets: Vec<StoredAsset> =
            output.items.unwrap_or_default().into_iter().map(|item| decode("assets", item)).collect::<Result<_>>()?;
        let next = output
            .last_evaluated_key
            .and_then(|mut key| key.remove("asset_id"))
            .and_then(|asset_id| asset_id.as_s().ok().cloned());
        Ok((assets, next))
    }
}
