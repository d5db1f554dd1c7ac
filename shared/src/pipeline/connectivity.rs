//! Connectivity Test: one cheap authenticated call before asking for an export, so a
//! wrong key fails in seconds with CREDENTIAL_ERROR instead of mid-export.

use super::{JobRef, Services};
use crate::errors::Result;
use crate::model::Stage;

pub async fn test_connectivity(services: &Services, job: &JobRef) -> Result<()> {
    services
        .run_stage(&job.job_id, Stage::ConnectivityTest, None, async {
            let connector = services.connector(&job.connector_id).await?;
            services.scanner(&connector).await?.check_access().await
        })
        .await
}

#[cfg(test)]
mod tests {
    use tenable_simulator::SimulatorConfig;

    use super::*;
    use crate::errors::error_names;
    use crate::model::{JobStatus, ScannerCredentials, ScannerKind};
    use crate::pipeline::test_support::{CONNECTOR, harness};
    use crate::store::{ConnectorStore, JobStore};

    #[tokio::test]
    async fn good_keys_pass() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        test_connectivity(&h.services, &job).await.expect("the simulator accepts the keys");
    }

    #[tokio::test]
    async fn wrong_keys_end_in_a_credential_error_with_the_keys_redacted() {
        let h = harness(SimulatorConfig::default()).await;
        let wrong = ScannerCredentials::ApiKeys {
            access_key: "wrong-access-key-1234".into(),
            secret_key: "wrong-secret-key-5678".into(),
        };
        h.store.put_secret("tenable-keys", wrong);
        let job = h.start_job("job-1").await;
        let error = test_connectivity(&h.services, &job).await.expect_err("the keys are refused");
        assert_eq!(error.error_name(), "Vulnflow.CredentialError");
        let stored = h.store.get_job(&job.job_id).await.unwrap().expect("job");
        let failure = stored.failure.expect("the failure is recorded");
        assert_eq!(failure.status, JobStatus::CredentialError);
        assert_eq!(failure.stage, Stage::ConnectivityTest);
        assert_eq!(failure.http_status, Some(401));
        assert!(failure.action.contains("credentials"));
        let text = serde_json::to_string(&failure).unwrap();
        assert!(!text.contains("wrong-secret-key-5678") && !text.contains("wrong-access-key-1234"), "{text}");
    }

    #[tokio::test]
    async fn a_connector_at_an_internal_address_fails_at_once_saying_what_to_fix() {
        // Connectors stored before the API checked addresses, or by hand.
        for (base_url, message) in [
            ("https://10.0.0.5", "base_url is 10.0.0.5, a private address"),
            ("http://[::1]:8443", "base_url is ::1, a loopback address"),
        ] {
            let h = harness(SimulatorConfig::default()).await;
            let mut connector = h.services.connector(CONNECTOR).await.expect("the connector");
            connector.base_url = base_url.into();
            h.store.put_connector(&connector).await.expect("stores the connector");
            let job = h.start_job("job-1").await;
            let error = test_connectivity(&h.services, &job).await.expect_err("the address is refused");
            assert_eq!(error.error_name(), error_names::INVALID_REQUEST);
            assert!(!error_names::TRANSIENT.contains(&error.error_name()), "never retried");
            let failure = h.store.get_job(&job.job_id).await.unwrap().and_then(|job| job.failure).expect("recorded");
            assert!(failure.message.starts_with(message), "{}", failure.message);
            assert!(failure.message.contains("ScannerAllowList") && failure.action.contains("base_url"), "{failure:?}");
        }
    }

    #[tokio::test]
    async fn a_connector_whose_secret_holds_another_scanners_credentials_fails_at_once_naming_the_fields() {
        let h = harness(SimulatorConfig::default()).await;
        let mut connector = h.services.connector(CONNECTOR).await.expect("the connector");
        connector.kind = ScannerKind::Qualys;
        h.store.put_connector(&connector).await.expect("stores the connector");
        let job = h.start_job("job-1").await;
        let error = test_connectivity(&h.services, &job).await.expect_err("API keys are no Qualys login");
        assert_eq!(error.error_name(), error_names::INVALID_REQUEST);
        assert_eq!(
            error.to_string(),
            "invalid request: the secret tenable-keys does not hold qualys credentials (username and password): \
             give them with PATCH /connectors/tenable-test"
        );
    }
}
