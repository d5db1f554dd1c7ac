//! The sync pipeline, one file per stage. Each stage is a function over [`Services`]
//! (the storage ports and the HTTP client) and a small event the state machine hands
//! it; no stage knows which stage called it, and no record passes through the state
//! machine: only ids and S3 keys do.

pub mod connectivity;
pub mod fetch;
pub mod finalize;
pub mod initiate;
pub mod normalize;
pub mod process;
pub mod resume;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::{Result, SyncError};
use crate::job;
use crate::model::{Connector, ConnectorRecord, ExportKind, ScannerKind, Stage, StageOutcome};
use crate::scanner_network::ScannerHttp;
use crate::scanners::{self, CallLimits, ExportScanner};
use crate::store::{ConnectorStore, InventoryStore, JobStore, ObjectStore, SecretStore};
use crate::usage::{Meter, Usage, function_memory_mb};

/// What the stages work with. Built once per function process.
#[derive(Clone)]
pub struct Services {
    pub connectors: Arc<dyn ConnectorStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub jobs: Arc<dyn JobStore>,
    pub inventory: Arc<dyn InventoryStore>,
    pub objects: Arc<dyn ObjectStore>,
    /// Every scanner call goes through it: it refuses addresses the deployment does not allow.
    pub http: ScannerHttp,
    pub settings: Settings,
    /// What this process's adapters consumed; each stage adds its share to its job.
    pub meter: Arc<Meter>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The deployment (stack) name, recorded on every job.
    pub deployment: String,
    /// Assets per export chunk (Tenable accepts 50..5000).
    pub assets_per_chunk: u32,
    /// How long an export may stay unfinished before the sync gives up.
    pub export_timeout: chrono::Duration,
    /// How long the state machine waits between two polls of an unfinished export.
    pub export_poll_seconds: u64,
    /// How long one scanner call may wait out rate limits, and how large an answer it reads.
    pub scanner_calls: CallLimits,
    /// Assets one finalize invocation sweeps for ones a complete sync did not see: the
    /// work of one invocation stays the same however large the inventory.
    pub sweep_page_assets: usize,
}

/// The job a state is working for: what every state after `initiate` receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRef {
    pub job_id: String,
    pub connector_id: String,
    /// The connector's scanner: which client and normalizer its chunks need.
    pub scanner: ScannerKind,
    /// When the connector's sync window ends, carried along so that no stage reads the
    /// job to know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ends_at: Option<DateTime<Utc>>,
}

impl JobRef {
    /// `SyncWindowEnded` once the sync window is over: the sync starts nothing new.
    pub fn ensure_within_window(&self, now: DateTime<Utc>) -> Result<()> {
        match self.window_ends_at {
            Some(ends_at) if now >= ends_at => Err(SyncError::SyncWindowEnded { ends_at }),
            _ => Ok(()),
        }
    }
}

/// A chunk stage's event: the job, the chunk, and the S3 key the previous stage wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTask {
    pub job: JobRef,
    pub kind: ExportKind,
    pub chunk_key: String,
    pub object_key: String,
    /// What the raw chunk refers to, gathered by the fetch stage for the normalizer.
    #[serde(default)]
    pub reference_key: Option<String>,
}

/// What a chunk stage hands the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOutput {
    pub chunk_key: String,
    pub kind: ExportKind,
    pub object_key: String,
    pub records: u64,
    /// Set by the fetch stage when the scanner's chunk refers to facts kept beside it.
    /// Always present, null when there are none: the state machine passes it on by path.
    #[serde(default)]
    pub reference_key: Option<String>,
}

impl Services {
    /// Every port on one in-memory store, for tests and benchmarks of the stages; scanner
    /// calls may reach the simulator on 127.0.0.1.
    #[cfg(any(test, feature = "test-support"))]
    pub fn in_memory(store: Arc<crate::store::memory::MemoryStore>, settings: Settings) -> Services {
        Services {
            connectors: store.clone(),
            secrets: store.clone(),
            jobs: store.clone(),
            inventory: store.clone(),
            objects: store,
            http: ScannerHttp::new(
                Arc::new(crate::scanner_network::ScannerNetworkPolicy::local_simulator()),
                reqwest::Client::builder(),
            )
            .expect("a default HTTP client builds"),
            settings,
            meter: Arc::default(),
        }
    }

    pub(crate) async fn connector(&self, connector_id: &str) -> Result<Connector> {
        Ok(self.connector_record(connector_id).await?.connector)
    }

    pub(crate) async fn connector_record(&self, connector_id: &str) -> Result<ConnectorRecord> {
        self.connectors.connector_record(connector_id).await?.ok_or_else(|| {
            SyncError::InvalidRequest(format!("there is no connector {connector_id}: create it before starting a sync"))
        })
    }

    /// The scanner client of a connector, with its keys read from the secret store.
    pub(crate) async fn scanner(&self, connector: &Connector) -> Result<Box<dyn ExportScanner>> {
        let credentials = self.secrets.credentials(&connector.secret_id).await?;
        scanners::connect(connector, credentials, &self.http, self.settings.scanner_calls)
    }

    /// Runs one stage's work for a job: times the stage on the job and, when the work
    /// fails, records why before the error goes back to the state machine.
    ///
    /// A failure a retry may cure is kept on the chunk record only: a chunk that then
    /// succeeds shows as retried, not as an error on the job.
    pub(crate) async fn run_stage<T, F>(
        &self,
        job_id: &str,
        stage: Stage,
        chunk_key: Option<&str>,
        work: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let (started, before) = (std::time::Instant::now(), self.meter.reading());
        self.jobs.stage_started(job_id, stage, Utc::now()).await?;
        let outcome = match work.await {
            Ok(value) => self.jobs.stage_ended(job_id, stage, StageOutcome::Succeeded, Utc::now()).await.map(|_| value),
            Err(error) => {
                job::record_stage_failure(self.jobs.as_ref(), job_id, stage, chunk_key, &error).await;
                Err(error)
            }
        };
        self.record_usage(job_id, started, &before).await;
        outcome
    }

    /// Adds what this invocation consumed to the job. A usage that cannot be recorded
    /// is logged: the stage's outcome matters more than its bill.
    async fn record_usage(&self, job_id: &str, started: std::time::Instant, before: &Usage) {
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let usage = Usage {
            lambda_invocations: 1,
            lambda_mb_milliseconds: millis.saturating_mul(function_memory_mb()),
            ..self.meter.reading().since(before)
        };
        if let Err(error) = self.jobs.add_usage(job_id, &usage).await {
            tracing::warn!(job_id, %error, "could not record what the stage consumed");
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A pipeline over the in-memory store and a real simulator on loopback.

    use std::sync::Arc;

    use tenable_simulator::{RunningSimulator, SimulatorConfig};

    use super::{ChunkTask, JobRef, Services, Settings};
    use crate::errors::Result;
    use crate::job::SyncRequest;
    use crate::model::{Connector, ExportRef, ScannerCredentials, ScannerKind, SyncMode, SyncScope, Trigger};
    use crate::pipeline::connectivity::test_connectivity;
    use crate::pipeline::fetch::{fetch_chunk, next_export, poll_export};
    use crate::pipeline::finalize::{CaughtError, FinalizeEvent, JobSummary, finalize};
    use crate::pipeline::initiate::{self, StartSync};
    use crate::pipeline::normalize::normalize;
    use crate::pipeline::process::process;
    use crate::store::memory::MemoryStore;
    use crate::store::{ConnectorStore, JobStore, ObjectStore};

    pub struct Harness {
        pub store: Arc<MemoryStore>,
        pub services: Services,
        pub simulator: RunningSimulator,
    }

    pub const CONNECTOR: &str = "tenable-test";

    pub async fn harness(config: SimulatorConfig) -> Harness {
        let store = Arc::new(MemoryStore::default());
        store.put_secret(
            "tenable-keys",
            ScannerCredentials::ApiKeys {
                access_key: config.access_key.clone(),
                secret_key: config.secret_key.clone(),
            },
        );
        let simulator = RunningSimulator::start(config).await.expect("the simulator starts");
        store
            .put_connector(&Connector {
                connector_id: CONNECTOR.into(),
                name: "Tenable test".into(),
                kind: ScannerKind::Tenable,
                base_url: simulator.base_url.clone(),
                secret_id: "tenable-keys".into(),
                default_mode: SyncMode::Full,
                sync_cursor: None,
            })
            .await
            .expect("stores the connector");
        let settings = Settings {
            deployment: "unit-tests".into(),
            assets_per_chunk: 50,
            export_timeout: chrono::Duration::minutes(5),
            export_poll_seconds: 1,
            scanner_calls: crate::scanners::CallLimits {
                throttle_budget: std::time::Duration::from_secs(5),
                max_answer_bytes: 64 << 20,
            },
            // Small pages, so that a test of a few dozen assets sweeps several.
            sweep_page_assets: 7,
        };
        let services = Services::in_memory(store.clone(), settings);
        Harness { store, services, simulator }
    }

    impl Harness {
        pub async fn start_job(&self, job_id: &str) -> JobRef {
            self.start_job_with(job_id, SyncMode::Full, SyncScope::default()).await
        }

        pub async fn start_job_with(&self, job_id: &str, mode: SyncMode, scope: SyncScope) -> JobRef {
            let start = StartSync {
                job_id: job_id.into(),
                execution_arn: None,
                input: SyncRequest {
                    connector_id: CONNECTOR.into(),
                    mode: Some(mode),
                    trigger: Some(Trigger::Manual { by: "tester@example.com".into() }),
                    scope,
                    resumed_from: None,
                },
            };
            initiate::initiate(&self.services, start).await.expect("initiates")
        }

        /// Starts a job that resumes `earlier`, with its mode and scope, as the API does.
        pub async fn resume_job(&self, job_id: &str, earlier: &str) -> JobRef {
            let earlier = self.store.get_job(earlier).await.unwrap().expect("the resumed job exists");
            let start = StartSync {
                job_id: job_id.into(),
                execution_arn: None,
                input: SyncRequest {
                    connector_id: CONNECTOR.into(),
                    mode: Some(earlier.mode),
                    trigger: Some(Trigger::Manual { by: "tester@example.com".into() }),
                    scope: earlier.scope,
                    resumed_from: Some(earlier.job_id),
                },
            };
            initiate::initiate(&self.services, start).await.expect("initiates")
        }

        /// Starts a full sync and runs it as the state machine would.
        pub async fn run_new(&self, job_id: &str) -> JobSummary {
            let job = self.start_job(job_id).await;
            self.run(&job).await
        }

        /// What the state machine does with a started job, in order, with errors left
        /// where they fall.
        pub async fn run(&self, job: &JobRef) -> JobSummary {
            let caught = self.sync_chunks(job).await.err().map(|error| CaughtError {
                error: error.error_name().to_string(),
                cause: Some(serde_json::json!({ "errorMessage": error.to_string() }).to_string()),
            });
            self.finalize(FinalizeEvent { job_id: job.job_id.clone(), failure: caught }).await
        }

        /// Finalizes as the state machine does: again while its sweep has pages left.
        pub async fn finalize(&self, event: FinalizeEvent) -> JobSummary {
            loop {
                let summary = finalize(&self.services, event.clone()).await.expect("finalizes");
                if !summary.sweeping {
                    return summary;
                }
            }
        }

        pub async fn sync_chunks(&self, job: &JobRef) -> Result<()> {
            test_connectivity(&self.services, job).await?;
            let mut previous = None;
            while let Some(export) = next_export(&self.services, job, previous.as_ref()).await? {
                let manifest_key = loop {
                    let outcome = poll_export(&self.services, job, &export).await?;
                    if let Some(key) = outcome.manifest_key {
                        break key;
                    }
                };
                let manifest = self.store.get_object(&manifest_key).await?;
                for chunk_id in serde_json::from_slice::<Vec<u32>>(&manifest).expect("a chunk id list") {
                    // A failed chunk fails alone, as in the state machine's map.
                    let _ = self.one_chunk(job, &export, chunk_id).await;
                }
                previous = Some(export);
            }
            Ok(())
        }

        pub async fn one_chunk(&self, job: &JobRef, export: &ExportRef, chunk_id: u32) -> Result<()> {
            let fetched = fetch_chunk(&self.services, job, export, chunk_id).await?;
            let task = ChunkTask {
                job: job.clone(),
                kind: fetched.kind,
                chunk_key: fetched.chunk_key,
                object_key: fetched.object_key,
                reference_key: fetched.reference_key,
            };
            let normalized = normalize(&self.services, task).await?;
            let task = ChunkTask {
                job: job.clone(),
                kind: normalized.kind,
                chunk_key: normalized.chunk_key,
                object_key: normalized.object_key,
                reference_key: None,
            };
            process(&self.services, task).await.map(|_| ())
        }
    }
}
