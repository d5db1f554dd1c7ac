//! What every function builds once at start-up: settings from the environment the
//! template gives it, the AWS clients, and logging.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, ApiServices, PageTokens};
use crate::auth;
use crate::errors::SyncError;
use crate::pipeline::{Services, Settings};
use crate::scanner_network::{ScannerHttp, ScannerNetworkPolicy};
use crate::scanners::CallLimits;
use crate::starter::SyncStarter;
use crate::store::dynamodb::{DynamoStore, Tables};
use crate::store::metering::CapacityMeter;
use crate::store::s3::S3Store;
use crate::store::secrets::SecretsManagerStore;
use crate::usage::{Meter, function_memory_mb};
use crate::workflow::StepFunctions;

fn required(name: &str) -> Result<String, SyncError> {
    std::env::var(name).map_err(|_| {
        SyncError::Internal(format!("the environment variable {name} is not set: deploy with infra/template.yaml"))
    })
}

fn optional_number(name: &str, default: u64) -> Result<u64, SyncError> {
    match std::env::var(name) {
        Ok(text) => text.parse().map_err(|_| SyncError::Internal(format!("{name}={text:?} is not a whole number"))),
        Err(_) => Ok(default),
    }
}

pub fn tables_from_env() -> Result<Tables, SyncError> {
    Ok(Tables {
        connectors: required("CONNECTORS_TABLE")?,
        jobs: required("JOBS_TABLE")?,
        chunks: required("CHUNKS_TABLE")?,
        assets: required("ASSETS_TABLE")?,
        findings: required("FINDINGS_TABLE")?,
    })
}

pub fn settings_from_env() -> Result<Settings, SyncError> {
    Ok(Settings {
        deployment: required("DEPLOYMENT_NAME")?,
        assets_per_chunk: u32::try_from(optional_number("EXPORT_ASSETS_PER_CHUNK", 500)?)
            .map_err(|_| SyncError::Internal("EXPORT_ASSETS_PER_CHUNK is too large".into()))?,
        export_timeout: chrono::Duration::minutes(optional_number("EXPORT_TIMEOUT_MINUTES", 360)? as i64),
        export_poll_seconds: optional_number("EXPORT_POLL_SECONDS", 30)?,
        scanner_calls: CallLimits::for_memory(
            Duration::from_secs(optional_number("THROTTLE_WAIT_SECONDS", 120)?),
            function_memory_mb(),
        ),
        sweep_page_assets: usize::try_from(optional_number("SWEEP_PAGE_ASSETS", 1000)?.max(1))
            .map_err(|_| SyncError::Internal("SWEEP_PAGE_ASSETS is too large".into()))?,
    })
}

/// Where scanners may be, from the deployment's allow list (`SCANNER_ALLOW_LIST`, the
/// template's ScannerAllowList). Unset or empty: public https scanners only.
fn scanner_network_from_env() -> Result<Arc<ScannerNetworkPolicy>, SyncError> {
    let allow_list = std::env::var("SCANNER_ALLOW_LIST").unwrap_or_default();
    ScannerNetworkPolicy::from_allow_list(&allow_list).map(Arc::new).map_err(|reason| {
        SyncError::Internal(format!("SCANNER_ALLOW_LIST: {reason}: correct the stack's ScannerAllowList parameter"))
    })
}

/// The AWS SDK configuration. With `AWS_ENDPOINT_URL` set (the local stack), S3 needs
/// path-style addresses: bucket host names do not resolve there.
pub async fn aws_config() -> (aws_config::SdkConfig, bool) {
    let config = aws_config::load_from_env().await;
    let local_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    (config, local_endpoint)
}

pub fn s3_client(config: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The tables, through a client whose every call adds the capacity DynamoDB reports
/// to `meter`.
fn dynamo_store_from_env(config: &aws_config::SdkConfig, meter: &Arc<Meter>) -> Result<Arc<DynamoStore>, SyncError> {
    let dynamodb_config =
        aws_sdk_dynamodb::config::Builder::from(config).interceptor(CapacityMeter(meter.clone())).build();
    Ok(Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(dynamodb_config),
        tables_from_env()?,
        chrono::Duration::days(optional_number("JOB_RETENTION_DAYS", 14)? as i64),
    )))
}

/// Every port backed by AWS, for a Lambda function's `main`.
pub async fn services_from_env() -> Result<Services, SyncError> {
    let (config, path_style) = aws_config().await;
    let meter = Arc::new(Meter::default());
    let dynamo = dynamo_store_from_env(&config, &meter)?;
    let objects = Arc::new(S3Store::new(s3_client(&config, path_style), required("DATA_BUCKET")?, meter.clone()));
    let secrets = Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config)));
    // A scanner that stops sending for this long has not answered: the call fails as
    // ScannerUnavailable and the state machine retries it. A download that keeps
    // streaming may take as long as it needs.
    let silence = Duration::from_secs(optional_number("SCANNER_TIMEOUT_SECONDS", 60)?);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(silence)
        .user_agent(concat!("vulnflow/", env!("CARGO_PKG_VERSION")));
    let http = ScannerHttp::new(scanner_network_from_env()?, client)
        .map_err(|e| SyncError::Internal(format!("cannot build the HTTP client: {e}")))?;
    Ok(Services {
        connectors: dynamo.clone(),
        secrets,
        jobs: dynamo.clone(),
        inventory: dynamo,
        objects,
        http,
        settings: settings_from_env()?,
        meter,
    })
}

/// The API function's router over its ports: the tables, the connectors' secrets, and
/// the state machine (`STATE_MACHINE_ARN`). With `API_SIGNING_SECRET_ID` set, the
/// function also checks bearer tokens itself where no authorizer ran.
pub async fn api_router_from_env() -> Result<api::GatewayService, SyncError> {
    let (config, _) = aws_config().await;
    // The API's own calls belong to no sync: its meter is read by nobody.
    let dynamo = dynamo_store_from_env(&config, &Arc::default())?;
    let secrets_client = aws_sdk_secretsmanager::Client::new(&config);
    let token_key = match std::env::var("API_SIGNING_SECRET_ID") {
        Ok(secret_id) => Some(auth::signing_key(&secrets_client, &secret_id).await?),
        Err(_) => None,
    };
    // Page tokens hold across the API's instances only under the deployment's key; without
    // one (a bare function run by hand) they hold within this process.
    let page_key = token_key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().as_bytes().to_vec());
    let services = ApiServices {
        connectors: dynamo.clone(),
        secrets: Arc::new(SecretsManagerStore::new(secrets_client)),
        jobs: dynamo,
        workflow: Arc::new(StepFunctions::new(aws_sdk_sfn::Client::new(&config), required("STATE_MACHINE_ARN")?)),
        deployment: required("DEPLOYMENT_NAME")?,
        page_tokens: PageTokens::new(&page_key),
        scanner_network: scanner_network_from_env()?,
    };
    Ok(api::behind_api_gateway(api::router(services, token_key)))
}

/// The scheduler's ports: the tables and the state machine (`STATE_MACHINE_ARN`).
pub async fn sync_starter_from_env() -> Result<SyncStarter, SyncError> {
    let (config, _) = aws_config().await;
    let dynamo = dynamo_store_from_env(&config, &Arc::default())?;
    Ok(SyncStarter {
        connectors: dynamo.clone(),
        jobs: dynamo,
        workflow: Arc::new(StepFunctions::new(aws_sdk_sfn::Client::new(&config), required("STATE_MACHINE_ARN")?)),
        deployment: required("DEPLOYMENT_NAME")?,
    })
}

/// JSON logs, one line per event, as CloudWatch reads them.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();
}
