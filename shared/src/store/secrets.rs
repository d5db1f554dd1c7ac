//! The Secrets Manager adapter: a connector's scanner credentials, read when a stage needs them,
//! written when the API creates or rotates them, and never stored or logged anywhere else.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::SecretStore;
use crate::errors::{Result, SyncError};
use crate::model::ScannerCredentials;

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        SecretsManagerStore { client }
    }
}

const NOT_FOUND: &str = "ResourceNotFoundException";

/// The error never quotes a request: a request may hold the keys.
fn secrets_error<E, R>(operation: String, error: SdkError<E, R>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = error.code().is_none() || error.code() == Some("InternalServiceError");
    SyncError::storage(operation, DisplayErrorContext(&error), transient)
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn credentials(&self, secret_id: &str) -> Result<ScannerCredentials> {
        let output = self.client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
            if e.code() == Some(NOT_FOUND) {
                SyncError::InvalidRequest(format!(
                    "the connector's secret {secret_id} does not exist in Secrets Manager: create it or fix the connector's secret_id"
                ))
            } else {
                secrets_error(format!("reading secret {secret_id}"), e)
            }
        })?;
        let text = output.secret_string.unwrap_or_default();
        // The error never quotes the secret's text: it holds the keys.
        serde_json::from_str(&text).map_err(|_| {
            SyncError::InvalidRequest(format!(
                "the secret {secret_id} must be JSON {{\"access_key\": \"...\", \"secret_key\": \"...\"}} \
                 or {{\"username\": \"...\", \"password\": \"...\"}}, as the connector's scanner takes"
            ))
        })
    }

    async fn put_credentials(&self, secret_id: &str, credentials: &ScannerCredentials) -> Result<()> {
        let text = serde_json::to_string(credentials)
            .map_err(|_| SyncError::Internal(format!("cannot encode the keys for secret {secret_id}")))?;
        let replaced = self.client.put_secret_value().secret_id(secret_id).secret_string(&text).send().await;
        match replaced {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(NOT_FOUND) => {
                self.client
                    .create_secret()
                    .name(secret_id)
                    .description("The scanner credentials of a vulnflow connector")
                    .secret_string(text)
                    .send()
                    .await
                    .map_err(|e| secrets_error(format!("creating secret {secret_id}"), e))?;
                Ok(())
            }
            Err(e) => Err(secrets_error(format!("writing secret {secret_id}"), e)),
        }
    }

    async fn delete_secret(&self, secret_id: &str) -> Result<()> {
        let deleted = self.client.delete_secret().secret_id(secret_id).force_delete_without_recovery(true).send().await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(NOT_FOUND) => Ok(()),
            Err(e) => Err(secrets_error(format!("deleting secret {secret_id}"), e)),
        }
    }
}
