//! Qualys VMDR through its v2 XML API.
//!
//! Qualys has no asynchronous export: a client pages through hosts. vulnflow lists the
//! host ids first (one call), then cuts the id space into buckets of one width, the
//! widest that leaves at most `assets_per_chunk` listed hosts in any bucket. Each bucket
//! that holds a host is a chunk, fetched with one `id_min`/`id_max` call and no
//! truncation, so the chunks run in parallel in the state machine's Distributed Map, a
//! retried chunk asks for the same hosts, and a resumed sync fetches only the buckets it
//! had not processed. The plan (width and filters) travels in the export's id, so no
//! state is kept between invocations. Every call is a form POST, which keeps long
//! parameter lists out of the URL (Qualys answers 414 to GET URLs over 8 KB).

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::knowledge_base::{self, KnowledgeEntry};
use super::knowledge_cache::{self, KnowledgeSource};
use super::page::{self, Answer as Page, Refusal, whole_number};
use crate::errors::{Redactor, Result, SyncError};
use crate::model::{ExportKind, Severity};
use crate::normalize::ChunkError;
use crate::scanner_network::ScannerHttp;
use crate::scanners::exchange::{Answer, exchange};
use crate::scanners::{
    CallLimits, ExportRequest, ExportScanner, ExportStarted, ExportState, ExportStatus, ReferenceCache,
};

const ABOUT: &str = "/msp/about.php";
const HOSTS: &str = "/api/2.0/fo/asset/host/";
const DETECTIONS: &str = "/api/2.0/fo/asset/host/vm/detection/";
const KNOWLEDGE_BASE: &str = "/api/2.0/fo/knowledge_base/vuln/";

/// SIMPLE_RETURN codes of a call turned away for a while: the concurrency limit (1960),
/// the rate limit (1965), another run of the same API by the user (1920).
const WAIT_CODES: [&str; 3] = ["1960", "1965", "1920"];
/// Codes of a login that cannot be used: bad login (2002), registration (2003) or
/// SecureID (2011) required.
const CREDENTIAL_CODES: [&str; 3] = ["2002", "2003", "2011"];
/// What a turned-away call waits when Qualys says no time.
const DEFAULT_WAIT: Duration = Duration::from_secs(5);

pub struct QualysClient {
    http: ScannerHttp,
    base_url: String,
    authorization: String,
    redactor: Redactor,
    limits: CallLimits,
}

/// What one answer means to the client.
enum Verdict {
    Accepted(Answer),
    /// Turned away by a limit: wait this long, or give up with the error.
    Wait(Duration, SyncError),
    Failed(SyncError),
}

impl QualysClient {
    pub fn new(http: ScannerHttp, base_url: &str, username: &str, password: &str, limits: CallLimits) -> Self {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        QualysClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization: format!("Basic {basic}"),
            redactor: Redactor::new([username.to_string(), password.to_string(), basic]),
            limits,
        }
    }

    /// Sends the call, waiting out Qualys' rate and concurrency limits as long as its
    /// answers ask while the budget lasts: a throttled call is the API working as designed.
    async fn call(&self, method: Method, path: &str, form: &[(&str, String)]) -> Result<Answer> {
        let mut waited = Duration::ZERO;
        loop {
            let request = self
                .http
                .request(method.clone(), &format!("{}{path}", self.base_url))
                .header("Authorization", &self.authorization)
                .header("X-Requested-With", "vulnflow")
                .form(form);
            let answer = exchange(&self.http, request, (&method, path), &self.limits, &self.redactor).await?;
            match self.verdict(path, answer) {
                Verdict::Accepted(answer) => return Ok(answer),
                Verdict::Failed(error) => return Err(error),
                Verdict::Wait(wait, error) => {
                    if waited + wait > self.limits.throttle_budget {
                        return Err(error);
                    }
                    tracing::info!(path, wait_seconds = wait.as_secs(), "turned away by a Qualys limit: waiting");
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
            }
        }
    }

    fn verdict(&self, path: &str, answer: Answer) -> Verdict {
        let refusal = page::refusal(&answer.body);
        let code = refusal.as_ref().map_or("", Refusal::code);
        let said = match &refusal {
            Some(refusal) => format!(" (code {code}: {})", refusal.text()),
            None => String::new(),
        };
        let status = answer.status;
        let recorded = answer.recorded(&self.redactor);
        if CREDENTIAL_CODES.contains(&code) || matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Verdict::Failed(SyncError::Credentials { response: recorded });
        }
        if status == StatusCode::CONFLICT && WAIT_CODES.contains(&code) {
            let wait = seconds_to_wait(&answer, refusal.as_ref()).unwrap_or(DEFAULT_WAIT);
            let reason = format!("{path} was turned away by a Qualys limit{said}");
            return Verdict::Wait(wait, SyncError::ScannerUnavailable { reason, response: Some(recorded) });
        }
        if status.is_server_error() {
            let reason = format!("{path} answered HTTP {}{said}", status.as_u16());
            return Verdict::Failed(SyncError::ScannerUnavailable { reason, response: Some(recorded) });
        }
        if status.is_success() && refusal.is_none() {
            return Verdict::Accepted(answer);
        }
        let reason = format!("{path} answered HTTP {}{said}", status.as_u16());
        Verdict::Failed(SyncError::ScannerRejected { reason, response: Some(recorded) })
    }

    /// The ids of the hosts a sync from `since` (unix seconds; 0 for all) looks at, and
    /// how many calls the subscription serves at once, when the answer says.
    async fn host_ids(&self, since: i64) -> Result<(Vec<u64>, Option<u32>)> {
        let mut form =
            vec![("action", "list".to_string()), ("details", "None".into()), ("truncation_limit", "0".into())];
        form.extend(processed_after(since));
        let answer = self.call(Method::POST, HOSTS, &form).await?;
        let concurrency_limit = answer.header("X-Concurrency-Limit-Limit").and_then(|limit| limit.trim().parse().ok());
        let body = answer.body;
        let mut ids = Vec::new();
        page::each_element(&body, &HOST_LIST, &["RESPONSE", "ID_SET"], |element| {
            let set: IdSet = page::deserialize(element).map_err(|unreadable| {
                ChunkError::NotXml(format!("its ID_SET cannot be read: {}", unreadable.reason))
            })?;
            for entry in &set.entries {
                ids.extend(entry.hosts().ok_or_else(|| ChunkError::NotXml(format!("{entry:?} names no host ids")))?);
            }
            Ok(())
        })
        .map_err(|error| SyncError::ScannerRejected {
            reason: format!("{HOSTS} answered something that is not a host list: {error}"),
            response: Some(self.redactor.response(200, [], &String::from_utf8_lossy(&body))),
        })?;
        Ok((ids, concurrency_limit))
    }
}

const HOST_LIST: Page = Page { root: "HOST_LIST_OUTPUT", name: "a host list (HOST_LIST_OUTPUT)" };

/// A host list's ids: single ids and ranges, in any order.
#[derive(Deserialize)]
struct IdSet {
    #[serde(rename = "$value", default)]
    entries: Vec<IdEntry>,
}

#[derive(Debug, Deserialize)]
enum IdEntry {
    #[serde(rename = "ID")]
    One(String),
    #[serde(rename = "ID_RANGE")]
    Range(String),
}

impl IdEntry {
    /// The ids it names: `1234`, or `1200-1250`.
    fn hosts(&self) -> Option<std::ops::RangeInclusive<u64>> {
        match self {
            IdEntry::One(id) => whole_number(id).map(|id| id..=id),
            IdEntry::Range(range) => {
                let (first, last) = range.split_once('-')?;
                let (first, last) = (whole_number(first)?, whole_number(last)?);
                (first <= last).then_some(first..=last)
            }
        }
    }
}

/// How long Qualys asks a turned-away call to wait: `X-RateLimit-ToWait-Sec`, else the
/// SIMPLE_RETURN's SECONDS_TO_WAIT item; at least a second.
fn seconds_to_wait(answer: &Answer, refusal: Option<&Refusal>) -> Option<Duration> {
    let from_header = answer.header("X-RateLimit-ToWait-Sec").and_then(|value| value.trim().parse::<u64>().ok());
    let from_body = || refusal?.item("SECONDS_TO_WAIT")?.parse::<u64>().ok();
    from_header.filter(|seconds| *seconds > 0).or_else(from_body).map(|seconds| Duration::from_secs(seconds.max(1)))
}

/// `vm_processed_after` for a sync from `since` (unix seconds); nothing for a full one.
fn processed_after(since: i64) -> Option<(&'static str, String)> {
    (since > 0)
        .then(|| chrono::DateTime::from_timestamp(since, 0))
        .flatten()
        .map(|at| ("vm_processed_after", qualys_time(at)))
}

/// A time as Qualys' API parameters take it.
fn qualys_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The widest power-of-two bucket of host ids that holds at most `per_chunk` of `ids`,
/// and whose bucket numbers fit a chunk id.
fn bucket_width(ids: &[u64], per_chunk: u32) -> u64 {
    let narrowest = ids.iter().max().map_or(1, |max| max / u64::from(u32::MAX) + 1);
    let mut width = 1u64 << 40;
    while width > narrowest {
        let mut per_bucket = std::collections::HashMap::<u64, u32>::new();
        let fits = ids.iter().all(|id| {
            let count = per_bucket.entry(id / width).or_default();
            *count += 1;
            *count <= per_chunk.max(1)
        });
        if fits {
            return width;
        }
        width /= 2;
    }
    narrowest
}

/// A sync's export of Qualys hosts: how their id space is cut, and which detections it
/// asks for. Its text form is the export's id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPlan {
    width: u64,
    since: i64,
    include_fixed: bool,
    /// Qualys severity levels (1-5); all when empty.
    severities: Vec<u8>,
}

impl HostPlan {
    fn id(&self) -> String {
        let levels: Vec<String> = self.severities.iter().map(u8::to_string).collect();
        format!("hosts-w{}-s{}-f{}-v{}", self.width, self.since, u8::from(self.include_fixed), levels.join("."))
    }

    fn parse(id: &str) -> Result<HostPlan> {
        let parse = || -> Option<HostPlan> {
            let mut parts = id.strip_prefix("hosts-")?.split('-');
            let width = parts.next()?.strip_prefix('w')?.parse().ok()?;
            let since = parts.next()?.strip_prefix('s')?.parse().ok()?;
            let include_fixed = parts.next()?.strip_prefix('f')? == "1";
            let levels = parts.next()?.strip_prefix('v')?;
            let severities =
                levels.split('.').filter(|l| !l.is_empty()).map(|l| l.parse().ok()).collect::<Option<_>>()?;
            (width > 0).then_some(HostPlan { width, since, include_fixed, severities })
        };
        parse().ok_or_else(|| SyncError::Internal(format!("{id:?} is not the id of a Qualys host export")))
    }

    /// The ids of bucket `bucket`.
    fn hosts(&self, bucket: u32) -> (u64, u64) {
        let first = u64::from(bucket) * self.width;
        (first, first + self.width - 1)
    }
}

/// Qualys' severity level of a vulnflow severity (see the normalizer's mapping).
fn severity_level(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

#[async_trait]
impl ExportScanner for QualysClient {
    async fn check_access(&self) -> Result<()> {
        self.call(Method::GET, ABOUT, &[]).await.map(|_| ())
    }

    async fn request_export(&self, request: &ExportRequest) -> Result<ExportStarted> {
        if !request.tags.is_empty() {
            return Err(SyncError::InvalidRequest(
                "a Qualys sync cannot be scoped by tags yet: scope it by severity or time, or not at all".into(),
            ));
        }
        let (ids, _) = self.host_ids(request.since).await?;
        let plan = HostPlan {
            width: bucket_width(&ids, request.assets_per_chunk),
            since: request.since,
            include_fixed: request.include_fixed,
            severities: request.severities.iter().map(|severity| severity_level(*severity)).collect(),
        };
        Ok(ExportStarted { export_uuid: plan.id(), adopted: false })
    }

    async fn export_status(&self, _kind: ExportKind, export_uuid: &str) -> Result<ExportStatus> {
        let plan = HostPlan::parse(export_uuid)?;
        let (ids, concurrency_limit) = self.host_ids(plan.since).await?;
        let buckets: BTreeSet<u32> = ids.into_iter().filter_map(|id| u32::try_from(id / plan.width).ok()).collect();
        Ok(ExportStatus {
            concurrency_limit,
            state: ExportState::Finished,
            total_chunks: buckets.len() as u64,
            chunks_available: buckets.into_iter().collect(),
            chunks_failed: Vec::new(),
        })
    }

    async fn download_chunk(&self, kind: ExportKind, export_uuid: &str, chunk_id: u32) -> Result<Vec<u8>> {
        let plan = HostPlan::parse(export_uuid)?;
        let (first, last) = plan.hosts(chunk_id);
        let mut form = vec![
            ("action", "list".to_string()),
            ("id_min", first.to_string()),
            ("id_max", last.to_string()),
            ("truncation_limit", "0".into()),
        ];
        form.extend(processed_after(plan.since));
        // An assets chunk is the same page without the results: its hosts are what the
        // normalizer reads. (It lists hosts with a detection of any status; a host never
        // found vulnerable shows in no Qualys page of detections.)
        let (statuses, results) = match kind {
            ExportKind::Assets => ("New,Active,Re-Opened,Fixed", "0"),
            ExportKind::Vulns if plan.include_fixed => ("New,Active,Re-Opened,Fixed", "1"),
            ExportKind::Vulns => ("New,Active,Re-Opened", "1"),
        };
        form.extend([("status", statuses.to_string()), ("show_results", results.to_string())]);
        if kind == ExportKind::Vulns && !plan.severities.is_empty() {
            let levels: Vec<String> = plan.severities.iter().map(u8::to_string).collect();
            form.push(("severities", levels.join(",")));
        }
        Ok(self.call(Method::POST, DETECTIONS, &form).await?.body)
    }

    /// The KnowledgeBase entries of the page's QIDs, as JSON, for the normalizer.
    async fn chunk_reference(
        &self,
        kind: ExportKind,
        chunk: &[u8],
        cache: &dyn ReferenceCache,
    ) -> Result<Option<Vec<u8>>> {
        if kind != ExportKind::Vulns {
            return Ok(None);
        }
        let entries =
            knowledge_cache::entries_for(&super::normalize::qids(chunk), cache, self, chrono::Utc::now()).await?;
        serde_json::to_vec(&entries)
            .map(Some)
            .map_err(|e| SyncError::Internal(format!("the chunk's KnowledgeBase entries cannot be written: {e}")))
    }
}

#[async_trait]
impl KnowledgeSource for QualysClient {
    async fn knowledge_entries(
        &self,
        qids: &[u64],
        changed_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<KnowledgeEntry>> {
        let ids: Vec<String> = qids.iter().map(u64::to_string).collect();
        let mut form = vec![("action", "list".to_string()), ("details", "All".into()), ("ids", ids.join(","))];
        form.extend(changed_after.map(|at| ("last_modified_after", qualys_time(at))));
        let body = self.call(Method::POST, KNOWLEDGE_BASE, &form).await?.body;
        let mut entries = Vec::new();
        knowledge_base::each_entry(&body, |entry| entries.push(entry)).map_err(|error| SyncError::ScannerRejected {
            reason: format!("{KNOWLEDGE_BASE} answered something vulnflow cannot read: {error}"),
            response: Some(self.redactor.response(200, [], &String::from_utf8_lossy(&body))),
        })?;
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use qualys_simulator::{CredentialError, Faults, FirstCalls, RateLimited, RunningSimulator, SimulatorConfig};

    use super::*;
    use crate::scanner_network::ScannerNetworkPolicy;

    async fn client_of(config: SimulatorConfig, password: &str) -> (RunningSimulator, QualysClient) {
        let username = config.username.clone();
        let simulator = RunningSimulator::start(config).await.expect("the simulator starts");
        let http = ScannerHttp::new(Arc::new(ScannerNetworkPolicy::local_simulator()), reqwest::Client::builder())
            .expect("an HTTP client");
        let limits = CallLimits { throttle_budget: Duration::from_secs(5), max_answer_bytes: 64 << 20 };
        let client = QualysClient::new(http, &simulator.base_url, &username, password, limits);
        (simulator, client)
    }

    fn request(per_chunk: u32) -> ExportRequest {
        ExportRequest {
            kind: ExportKind::Vulns,
            since: 0,
            include_fixed: true,
            assets_per_chunk: per_chunk,
            severities: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// The host ids of a Host List Detection page, as the normalizer reads its hosts.
    fn hosts_of(page: &[u8]) -> Vec<u64> {
        let mut ids = Vec::new();
        crate::scanners::qualys::normalize::each_host(page, |host| {
            ids.push(host.asset.asset_id.parse().expect("a host id"));
            Ok(())
        })
        .expect("a Host List Detection page");
        ids
    }

    #[tokio::test]
    async fn every_host_comes_in_exactly_one_chunk_of_at_most_the_chunk_size() {
        let config = SimulatorConfig { hosts: 120, detections_per_host: 2, concurrency_limit: 3, ..Default::default() };
        let password = config.password.clone();
        let (simulator, client) = client_of(config, &password).await;
        client.check_access().await.expect("the login works");
        let started = client.request_export(&request(25)).await.expect("planned");
        let status = client.export_status(ExportKind::Vulns, &started.export_uuid).await.expect("listed");
        assert_eq!(status.state, ExportState::Finished);
        assert_eq!(status.concurrency_limit, Some(3), "the subscription's X-Concurrency-Limit-Limit");
        assert_eq!(status.total_chunks, status.chunks_available.len() as u64);
        let mut seen = Vec::new();
        for chunk in &status.chunks_available {
            let page = client.download_chunk(ExportKind::Vulns, &started.export_uuid, *chunk).await.expect("fetched");
            let hosts = hosts_of(&page);
            assert!(hosts.len() <= 25, "chunk {chunk} holds {} hosts", hosts.len());
            seen.extend(hosts);
        }
        let truth: BTreeSet<u64> = simulator.dataset().hosts().iter().map(|host| host.id).collect();
        assert_eq!(seen.len(), truth.len(), "no host twice");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), truth);
        assert!(status.total_chunks >= 5, "120 hosts at 25 a chunk: {}", status.total_chunks);
    }

    #[tokio::test]
    async fn a_rate_limited_call_waits_as_qualys_asks_and_then_goes_through() {
        let faults = Faults {
            rate_limited: Some(RateLimited { first: FirstCalls { calls: 2, route: None }, to_wait_secs: 1 }),
            ..Default::default()
        };
        let config = SimulatorConfig { hosts: 5, faults, ..Default::default() };
        let password = config.password.clone();
        let (_simulator, client) = client_of(config, &password).await;
        let started = client.request_export(&request(50)).await.expect("waited out the limit");
        assert!(started.export_uuid.starts_with("hosts-w"));
    }

    #[tokio::test]
    async fn a_wrong_password_or_a_blocked_account_is_a_credential_error_that_never_shows_the_login() {
        let (_simulator, client) = client_of(SimulatorConfig::default(), "wrong-password").await;
        let error = client.check_access().await.expect_err("refused");
        assert_eq!(error.error_name(), "Vulnflow.CredentialError");
        assert!(!format!("{error:?}").contains("wrong-password"), "{error:?}");

        let faults = Faults { credential_error: Some(CredentialError::SecureIdRequired), ..Default::default() };
        let config = SimulatorConfig { faults, ..Default::default() };
        let password = config.password.clone();
        let (_simulator, client) = client_of(config, &password).await;
        let error = client.request_export(&request(50)).await.expect_err("SecureID");
        assert_eq!(error.error_name(), "Vulnflow.CredentialError");
    }

    #[test]
    fn the_widest_bucket_holding_few_enough_hosts_is_chosen() {
        assert_eq!(bucket_width(&[], 50), 1 << 40, "no host: one bucket for everything");
        assert_eq!(bucket_width(&[1, 2, 3], 3), 1 << 40);
        // 0..=7 in buckets of 4 hold 4 each; of 8, all 8.
        assert_eq!(bucket_width(&(0..8).collect::<Vec<_>>(), 4), 4);
        assert_eq!(bucket_width(&[5, 1_000_000, 1_000_001], 1), 1);
        assert_eq!(bucket_width(&[u64::from(u32::MAX) * 3], 1), 1 << 40, "one host, however large its id");
    }

    #[test]
    fn a_plan_reads_back_from_its_id() {
        let plan = HostPlan { width: 4096, since: 1_700_000_000, include_fixed: true, severities: vec![4, 5] };
        assert_eq!(plan.id(), "hosts-w4096-s1700000000-f1-v4.5");
        assert_eq!(HostPlan::parse(&plan.id()).expect("reads"), plan);
        let everything = HostPlan { width: 1, since: 0, include_fixed: false, severities: vec![] };
        assert_eq!(HostPlan::parse("hosts-w1-s0-f0-v").expect("reads"), everything);
        assert_eq!(plan.hosts(3), (12_288, 16_383));
        for bad in ["", "hosts-w0-s0-f0-v", "export-1234", "hosts-wx-s0-f0-v"] {
            assert!(HostPlan::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_and_ranges_name_their_hosts() {
        assert_eq!(IdEntry::One("1234".into()).hosts(), Some(1234..=1234));
        let range = IdEntry::Range(" 1200-1202 ".into()).hosts().map(Iterator::collect::<Vec<_>>);
        assert_eq!(range, Some(vec![1200, 1201, 1202]));
        assert_eq!(IdEntry::Range("9-1".into()).hosts(), None);
        assert_eq!(IdEntry::One("x".into()).hosts(), None);
    }
}
