//! The Secrets Manager adapter: a connector's API keys, read when a stage needs them
//! and never stored or logged anywhere else.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};

use super::SecretStore;
use crate::errors::{Result, SyncError};
use crate::model::TenableCredentials;

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        SecretsManagerStore { client }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn tenable_credentials(&self, secret_id: &str) -> Result<TenableCredentials> {
        let output = self.client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
            if e.code() == Some("ResourceNotFoundException") {
                SyncError::InvalidRequest(format!(
                    "the connector's secret {secret_id} does not exist in Secrets Manager: create it or fix the connector's secret_id"
                ))
            } else {
                let transient = e.code().is_none() || e.code() == Some("InternalServiceError");
                SyncError::storage(format!("reading secret {secret_id}"), DisplayErrorContext(&e), transient)
            }
        })?;
        let text = output.secret_string.unwrap_or_default();
        // The error never quotes the secret's text: it holds the keys.
        serde_json::from_str(&text).map_err(|_| {
            SyncError::InvalidRequest(format!(
                "the secret {secret_id} must be JSON {{\"access_key\": \"...\", \"secret_key\": \"...\"}}"
            ))
        })
    }
}
