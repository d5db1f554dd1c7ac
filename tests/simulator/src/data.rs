//! The deterministic dataset: assets and their findings, as the export API sends them.
//!
//! Everything derives from (seed, assets, findings_per_asset) and an anchor day. Timestamps are
//! offsets back from the anchor (the simulator uses the current UTC day at midnight), so the
//! 30-day default window of Tenable stays meaningful against the real clock while the data is
//! identical for every run on the same day. Recent findings are 2 to 25 days old and stale ones
//! 45 to 400 days old: no record sits near the window's edge, whatever the time of day.
//! Changes applied later (see [`changes`]) stamp the records they touch with their own time.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use simulator_kit::catalog::Transport;
use simulator_kit::{SplitMix64, host_ipv4, pick_findings};
use uuid::Uuid;

use crate::catalog::{OS_PROFILES, OsProfile, PLUGINS, Placement, Platform, Plugin, SYN_SCANNER};
use crate::filters::{AssetFilters, Severity, VulnFilters, VulnState};

mod changes;

pub use changes::{ChangeReport, Changes, FindingKey};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// Streams of the generator not tied to an asset, kept apart from asset indexes.
const SCAN_STREAM: u64 = 1 << 40;
const TAG_STREAM: u64 = 2 << 40;
/// First port of the Windows dynamic RPC range: where padding findings go when an asset needs
/// more findings than its services offer.
const DYNAMIC_PORTS_START: u16 = 49664;

const TAG_CATEGORIES: &[(&str, &[&str])] = &[
    ("env", &["prod", "staging", "dev"]),
    ("location", &["us-east-1", "eu-west-1", "on-prem-paris"]),
    ("owner", &["platform-team", "it-workplace", "network-ops"]),
];

/// What the generator knows about an asset, for filtering without re-reading JSON and for
/// growing it new findings later.
#[derive(Clone)]
pub(crate) struct AssetFacts {
    pub created_ms: i64,
    pub updated_ms: i64,
    pub last_seen_ms: i64,
    pub tags: Vec<AssetTag>,
    host: Host,
}

#[derive(Clone)]
pub(crate) struct AssetTag {
    pub key: &'static str,
    pub value: &'static str,
    pub uuid: Uuid,
}

/// What the generator knows about a finding, for filtering without re-reading JSON.
#[derive(Clone)]
pub(crate) struct VulnFacts {
    pub asset_index: usize,
    pub plugin_id: u32,
    pub port: u16,
    pub protocol: &'static str,
    pub severity: Severity,
    pub lifecycle: Lifecycle,
}

/// A finding's state and when it was found and fixed.
#[derive(Clone, Copy)]
pub(crate) struct Lifecycle {
    pub state: VulnState,
    pub first_found_ms: i64,
    pub last_found_ms: i64,
    pub last_fixed_ms: Option<i64>,
}

impl Lifecycle {
    /// When the finding last changed: fixed, or found.
    pub(crate) fn changed_ms(&self) -> i64 {
        self.last_fixed_ms.unwrap_or(self.last_found_ms)
    }
}

/// The records the simulator serves. Vuln records are grouped by asset, in asset order.
#[derive(Clone)]
pub struct Dataset {
    seed: u64,
    anchor_ms: i64,
    /// How many batches of changes were applied since generation.
    revision: u64,
    assets: Vec<Value>,
    asset_facts: Vec<AssetFacts>,
    vulns: Vec<Value>,
    vuln_facts: Vec<VulnFacts>,
}

impl Dataset {
    /// `anchor_unix_secs` is truncated to its UTC day; every timestamp lies before that day.
    pub fn generate(seed: u64, assets: u32, findings_per_asset: u32, anchor_unix_secs: i64) -> Dataset {
        let anchor_ms = anchor_unix_secs.div_euclid(86_400) * DAY_MS;
        let mut dataset = Dataset {
            seed,
            anchor_ms,
            revision: 0,
            assets: Vec::new(),
            asset_facts: Vec::new(),
            vulns: Vec::new(),
            vuln_facts: Vec::new(),
        };
        for index in 0..assets as usize {
            AssetGenerator::new(seed, index, anchor_ms).generate(findings_per_asset, &mut dataset);
        }
        dataset
    }

    /// The start (UTC midnight, unix seconds) of the day the data is anchored to.
    pub fn anchor_unix_secs(&self) -> i64 {
        self.anchor_ms / 1000
    }

    /// Asset export records. Unlike vuln records, their list attributes are always present,
    /// empty ones as `[]`, as Tenable's asset export sends them.
    pub fn assets(&self) -> &[Value] {
        &self.assets
    }

    /// Every vuln record, whatever its state or age. Empty attributes are omitted.
    pub fn vulns(&self) -> &[Value] {
        &self.vulns
    }

    /// The vuln records an export with these filters returns, now.
    pub fn vulns_matching(&self, filters: &VulnFilters) -> Vec<&Value> {
        self.matching_vuln_indexes(filters, Utc::now().timestamp_millis())
            .into_iter()
            .map(|index| &self.vulns[index])
            .collect()
    }

    pub fn assets_matching(&self, filters: &AssetFilters) -> Vec<&Value> {
        self.matching_asset_indexes(filters).into_iter().map(|index| &self.assets[index]).collect()
    }

    /// The matching vuln records, `assets_per_chunk` assets per chunk: all the findings of an
    /// asset stay in one chunk, as on Tenable.
    pub(crate) fn vuln_chunks(&self, filters: &VulnFilters, now_ms: i64, assets_per_chunk: usize) -> Vec<Vec<usize>> {
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        let mut previous_asset = None;
        let mut assets_in_chunk = 0;
        for index in self.matching_vuln_indexes(filters, now_ms) {
            let asset = self.vuln_facts[index].asset_index;
            if previous_asset != Some(asset) {
                if chunks.is_empty() || assets_in_chunk == assets_per_chunk {
                    chunks.push(Vec::new());
                    assets_in_chunk = 0;
                }
                assets_in_chunk += 1;
                previous_asset = Some(asset);
            }
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(index);
            }
        }
        chunks
    }

    pub(crate) fn asset_chunks(&self, filters: &AssetFilters, assets_per_chunk: usize) -> Vec<Vec<usize>> {
        self.matching_asset_indexes(filters).chunks(assets_per_chunk).map(<[usize]>::to_vec).collect()
    }

    fn matching_vuln_indexes(&self, filters: &VulnFilters, now_ms: i64) -> Vec<usize> {
        (0..self.vulns.len())
            .filter(|&index| {
                let vuln = &self.vuln_facts[index];
                filters.matches(vuln, &self.asset_facts[vuln.asset_index], now_ms)
            })
            .collect()
    }

    fn matching_asset_indexes(&self, filters: &AssetFilters) -> Vec<usize> {
        (0..self.assets.len()).filter(|&index| filters.matches(&self.asset_facts[index])).collect()
    }

    pub(crate) fn vuln(&self, index: usize) -> &Value {
        &self.vulns[index]
    }

    pub(crate) fn asset(&self, index: usize) -> &Value {
        &self.assets[index]
    }
}

/// A place a plugin reports on: port 0 for host-level findings.
#[derive(Clone, Copy)]
struct Location {
    port: u16,
    protocol: &'static str,
    service: &'static str,
}

struct Candidate {
    plugin: &'static Plugin,
    location: Location,
}

#[derive(Clone)]
struct Identity {
    uuid: Uuid,
    hostname: String,
    fqdn: Option<String>,
    ipv4: String,
    netbios_name: Option<String>,
}

struct AssetGenerator {
    seed: u64,
    index: usize,
    anchor_ms: i64,
    rng: SplitMix64,
    profile: &'static OsProfile,
    identity: Identity,
    first_seen_ms: i64,
}

impl AssetGenerator {
    fn new(seed: u64, index: usize, anchor_ms: i64) -> Self {
        let mut rng = SplitMix64::for_stream(seed, index as u64);
        let profile = rng.pick_weighted(OS_PROFILES, |profile| profile.weight);
        let hostname = format!("{}-{:03}", profile.hostname_prefix, index + 1);
        let fqdn_chance = if profile.platform == Platform::Unknown { 40 } else { 85 };
        let identity = Identity {
            uuid: rng.uuid(),
            fqdn: rng.percent(fqdn_chance).then(|| format!("{hostname}.corp.example")),
            ipv4: host_ipv4(index),
            netbios_name: matches!(profile.platform, Platform::WindowsServer | Platform::WindowsDesktop)
                .then(|| hostname.to_uppercase()),
            hostname,
        };
        let first_seen_ms = anchor_ms - rng.between(420, 720) * DAY_MS + rng.between(0, DAY_MS - 1);
        Self { seed, index, anchor_ms, rng, profile, identity, first_seen_ms }
    }

    fn generate(mut self, findings_per_asset: u32, dataset: &mut Dataset) {
        let has_agent = self.profile.platform != Platform::CiscoIos
            && self.profile.platform != Platform::Unknown
            && self.rng.percent(50);
        let tags = self.pick_tags();
        let banner = *self.rng.pick(self.profile.http_banners);
        let host = Host { identity: self.identity.clone(), profile: self.profile, banner };
        let asset_index = dataset.assets.len();

        let mut last_seen_ms = self.first_seen_ms;
        for candidate in self.pick_findings(findings_per_asset as usize) {
            let sighting = self.sighting();
            let port_as_text = self.rng.percent(20);
            let (record, facts) = host.finding(asset_index, &candidate, port_as_text, &sighting);
            last_seen_ms = last_seen_ms.max(facts.lifecycle.changed_ms());
            dataset.vulns.push(record);
            dataset.vuln_facts.push(facts);
        }

        let facts = AssetFacts { created_ms: self.first_seen_ms, updated_ms: last_seen_ms, last_seen_ms, tags, host };
        dataset.assets.push(self.asset_record(has_agent, &facts));
        dataset.asset_facts.push(facts);
    }

    fn pick_tags(&mut self) -> Vec<AssetTag> {
        let mut tags = Vec::new();
        for (category, (key, values)) in TAG_CATEGORIES.iter().enumerate() {
            // Every asset has an environment; other tags are only sometimes set.
            if category == 0 || self.rng.percent(60) {
                let value = self.rng.below(values.len() as u64) as usize;
                let tag_stream = TAG_STREAM + ((category << 8) | value) as u64;
                let uuid = SplitMix64::for_stream(self.seed, tag_stream).uuid();
                tags.push(AssetTag { key, value: values[value], uuid });
            }
        }
        tags
    }

    /// Exactly `count` distinct (plugin, port, protocol) findings. One asset in three gets the
    /// same plugin on two ports or protocols first, the trap for keys of asset + plugin alone.
    fn pick_findings(&mut self, count: usize) -> Vec<Candidate> {
        let padding = (DYNAMIC_PORTS_START..).map(|port| Candidate {
            plugin: &SYN_SCANNER,
            location: Location { port, protocol: "TCP", service: "unknown" },
        });
        let twin = self.index.is_multiple_of(3);
        let finding = |candidate: &Candidate| (candidate.plugin.id, candidate.plugin.severity);
        pick_findings(&mut self.rng, candidates_for(self.profile), count, twin, finding, padding)
    }

    /// When a finding was first and last found, by which scan, and whether it is fixed.
    fn sighting(&mut self) -> Sighting {
        let state = match self.rng.below(100) {
            0..62 => VulnState::Open,
            62..78 => VulnState::Reopened,
            _ => VulnState::Fixed,
        };
        let last_found_day = self.days_ago();
        let scan_day = match state {
            // The scan that found it fixed came after the last one that saw it.
            VulnState::Fixed => last_found_day - self.rng.between(1, (last_found_day - 1).min(14)),
            VulnState::Open | VulnState::Reopened => last_found_day,
        };
        let (scan_uuid, scan_start_ms) = self.scan_of_day(scan_day);
        let seen_after_start_ms = self.rng.between(MINUTE_MS, 2 * HOUR_MS) + self.rng.between(0, 999);
        let last_found_ms = self.scan_of_day(last_found_day).1 + seen_after_start_ms;
        let last_fixed_ms = (state == VulnState::Fixed).then_some(scan_start_ms + seen_after_start_ms);
        let first_found_ms = self.rng.between(self.first_seen_ms, last_found_ms);
        let indexed_ms = last_fixed_ms.unwrap_or(last_found_ms) + self.rng.between(5, 90) * MINUTE_MS;
        Sighting {
            lifecycle: Lifecycle { state, first_found_ms, last_found_ms, last_fixed_ms },
            indexed_ms,
            scan_uuid,
            scan_start_ms,
        }
    }

    /// Days before the anchor a finding was last found: three in four are recent (2..=25 days,
    /// leaving a day for the scan that found a fixed one fixed), the rest stale (45..=400 days).
    fn days_ago(&mut self) -> i64 {
        if self.rng.percent(75) { self.rng.between(2, 25) } else { self.rng.between(45, 400) }
    }

    /// Every asset seen on a given day was seen by the same scan: one uuid and start time per day.
    fn scan_of_day(&self, days_ago: i64) -> (Uuid, i64) {
        let mut rng = SplitMix64::for_stream(self.seed, SCAN_STREAM + days_ago as u64);
        let start_ms = self.anchor_ms - days_ago * DAY_MS + rng.between(0, 11) * HOUR_MS;
        (rng.uuid(), start_ms)
    }

    fn asset_record(&mut self, has_agent: bool, facts: &AssetFacts) -> Value {
        let identity = &self.identity;
        let first_seen = iso_millis(self.first_seen_ms);
        let last_seen = iso_millis(facts.last_seen_ms);
        let mut sources = vec![json!({"name": "NESSUS_SCAN", "first_seen": first_seen, "last_seen": last_seen})];
        if has_agent {
            sources.push(json!({"name": "NESSUS_AGENT", "first_seen": first_seen, "last_seen": last_seen}));
        }
        let tags: Vec<Value> = facts
            .tags
            .iter()
            .map(|tag| {
                json!({
                    "uuid": tag.uuid,
                    "key": tag.key,
                    "value": tag.value,
                    "added_by": "00000000-0000-4000-8000-00000000ad01",
                    "added_at": first_seen,
                })
            })
            .collect();
        let mut asset = json!({
            "id": identity.uuid,
            "has_agent": has_agent,
            "has_plugin_results": true,
            "created_at": first_seen,
            "updated_at": last_seen,
            "first_seen": first_seen,
            "last_seen": last_seen,
            "last_scan_time": last_seen,
            "network_id": Uuid::nil(),
            "network_name": "Default",
            "ipv4s": [identity.ipv4],
            "ipv6s": [],
            "fqdns": identity.fqdn.iter().collect::<Vec<_>>(),
            "hostnames": [identity.hostname],
            "netbios_names": identity.netbios_name.iter().collect::<Vec<_>>(),
            "operating_systems": self.profile.operating_system.iter().collect::<Vec<_>>(),
            "system_types": self.profile.device_type.iter().collect::<Vec<_>>(),
            "sources": sources,
            "tags": tags,
        });
        if has_agent {
            asset["agent_uuid"] = json!(self.rng.uuid().simple().to_string());
        }
        asset
    }
}

/// Who an asset is, as each of its vuln records describes it.
#[derive(Clone)]
struct Host {
    identity: Identity,
    profile: &'static OsProfile,
    banner: &'static str,
}

impl Host {
    /// A vuln record of this asset and its facts; `port_as_text` sends `port.port` as a string.
    fn finding(
        &self,
        asset_index: usize,
        candidate: &Candidate,
        port_as_text: bool,
        sighting: &Sighting,
    ) -> (Value, VulnFacts) {
        let plugin = candidate.plugin;
        let location = candidate.location;
        // Tenable sends `port.port` as a number or as a string; clients must accept both.
        let port = if port_as_text { json!(location.port.to_string()) } else { json!(location.port) };
        let severity = Severity::from_id(plugin.severity);
        let mut record = Map::new();
        record.insert("asset".into(), self.vuln_asset_object());
        let output = plugin
            .output
            .replace("{host}", &self.identity.hostname)
            .replace("{port}", &location.port.to_string())
            .replace("{service}", location.service)
            .replace("{os}", self.profile.operating_system.unwrap_or("unknown"))
            .replace("{banner}", self.banner)
            .replace("{scan_start}", &iso_millis(sighting.scan_start_ms));
        if !output.is_empty() {
            record.insert("output".into(), json!(output));
        }
        record.insert("plugin".into(), plugin_object(plugin));
        record.insert("port".into(), json!({"port": port, "protocol": location.protocol, "service": location.service}));
        record.insert("severity".into(), json!(severity.as_str()));
        record.insert("severity_id".into(), json!(severity.id()));
        record.insert("severity_default_id".into(), json!(severity.id()));
        record.insert("severity_modification_type".into(), json!("NONE"));

        sighting.write(&mut record);
        let facts = VulnFacts {
            asset_index,
            plugin_id: plugin.id,
            port: location.port,
            protocol: location.protocol,
            severity,
            lifecycle: sighting.lifecycle,
        };
        (Value::Object(record), facts)
    }

    fn vuln_asset_object(&self) -> Value {
        let identity = &self.identity;
        let mut asset = Map::new();
        asset.insert("uuid".into(), json!(identity.uuid));
        asset.insert("hostname".into(), json!(identity.hostname));
        if let Some(fqdn) = &identity.fqdn {
            asset.insert("fqdn".into(), json!(fqdn));
        }
        asset.insert("ipv4".into(), json!(identity.ipv4));
        if let Some(netbios_name) = &identity.netbios_name {
            asset.insert("netbios_name".into(), json!(netbios_name));
        }
        if let Some(operating_system) = self.profile.operating_system {
            asset.insert("operating_system".into(), json!([operating_system]));
        }
        if let Some(device_type) = self.profile.device_type {
            asset.insert("device_type".into(), json!(device_type));
        }
        asset.insert("network_id".into(), json!(Uuid::nil()));
        asset.insert("tracked".into(), json!(true));
        Value::Object(asset)
    }
}

/// When and by which scan a finding was seen, and in what state that left it.
struct Sighting {
    lifecycle: Lifecycle,
    indexed_ms: i64,
    scan_uuid: Uuid,
    scan_start_ms: i64,
}

impl Sighting {
    /// Writes the sighting over the scan, state and timestamps of a vuln record.
    fn write(&self, record: &mut Map<String, Value>) {
        let lifecycle = &self.lifecycle;
        record.insert("scan".into(), json!({"uuid": self.scan_uuid, "started_at": iso_millis(self.scan_start_ms)}));
        record.insert("state".into(), json!(lifecycle.state.as_str()));
        record.insert("first_found".into(), json!(iso_millis(lifecycle.first_found_ms)));
        record.insert("last_found".into(), json!(iso_millis(lifecycle.last_found_ms)));
        match lifecycle.last_fixed_ms {
            Some(last_fixed_ms) => {
                record.insert("last_fixed".into(), json!(iso_millis(last_fixed_ms)));
            }
            None => {
                record.remove("last_fixed");
            }
        }
        record.insert("indexed".into(), json!(iso_millis(self.indexed_ms)));
    }
}

/// Every (plugin, location) the profile's services can produce, in catalog order.
fn candidates_for(profile: &'static OsProfile) -> Vec<Candidate> {
    let host_level = |protocol| Location { port: 0, protocol, service: "general" };
    let mut candidates = Vec::new();
    for plugin in PLUGINS.iter().filter(|plugin| plugin.applies_to(profile.platform)) {
        let services = profile.services.iter().filter(|service| match plugin.placement {
            Placement::Host { .. } => false,
            Placement::Services(names) => names.contains(&service.name),
            Placement::TlsServices => service.tls,
            Placement::EveryTcpPort => service.transport == Transport::Tcp,
        });
        let mut locations: Vec<Location> = services
            .map(|service| Location { port: service.port, protocol: service.transport.upper(), service: service.name })
            .collect();
        if let Placement::Host { protocol } = plugin.placement {
            locations.push(host_level(protocol));
        }
        candidates.extend(locations.into_iter().map(|location| Candidate { plugin, location }));
    }
    candidates
}

fn plugin_object(plugin: &Plugin) -> Value {
    let severity = Severity::from_id(plugin.severity);
    let mut object = Map::new();
    object.insert("id".into(), json!(plugin.id));
    object.insert("name".into(), json!(plugin.name));
    object.insert("family".into(), json!(plugin.family));
    if !plugin.cves.is_empty() {
        object.insert("cve".into(), json!(plugin.cves));
    }
    if let Some(score) = plugin.cvss3 {
        object.insert("cvss3_base_score".into(), json!(score));
    }
    if let Some(score) = plugin.vpr {
        object.insert("vpr".into(), json!({"score": score}));
    }
    object.insert("risk_factor".into(), json!(risk_factor(severity)));
    object.insert("solution".into(), json!(plugin.solution));
    object.insert("synopsis".into(), json!(plugin.synopsis));
    object.insert("description".into(), json!(plugin.description));
    object.insert("type".into(), json!(plugin.check_type));
    Value::Object(object)
}

fn risk_factor(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "None",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// ISO 8601 in UTC with milliseconds, as Tenable writes timestamps.
pub(crate) fn iso_millis(unix_ms: i64) -> String {
    (DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(unix_ms)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// 2024-06-15T13:14:15Z: any time of day, the anchor is that day's midnight.
    const ANCHOR: i64 = 1_718_457_255;

    fn dataset() -> Dataset {
        Dataset::generate(7, 120, 9, ANCHOR)
    }

    fn key_of(vuln: &Value) -> (String, u64, String, String) {
        let port = &vuln["port"]["port"];
        let port_text = port.as_str().map_or_else(|| port.to_string(), str::to_owned);
        (
            vuln["asset"]["uuid"].as_str().unwrap_or_default().to_owned(),
            vuln["plugin"]["id"].as_u64().unwrap_or_default(),
            port_text,
            vuln["port"]["protocol"].as_str().unwrap_or_default().to_owned(),
        )
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let first = dataset();
        let second = dataset();
        assert_eq!(first.vulns(), second.vulns());
        assert_eq!(first.assets(), second.assets());
        assert_ne!(first.vulns(), Dataset::generate(8, 120, 9, ANCHOR).vulns());
        assert_eq!(first.anchor_unix_secs(), 1_718_409_600);
    }

    #[test]
    fn findings_per_asset_is_exact_even_beyond_what_services_offer() {
        for per_asset in [0, 1, 9, 60] {
            let dataset = Dataset::generate(3, 25, per_asset, ANCHOR);
            assert_eq!(dataset.vulns().len(), 25 * per_asset as usize);
            assert_eq!(dataset.assets().len(), 25);
            let keys: HashSet<_> = dataset.vulns().iter().map(key_of).collect();
            assert_eq!(keys.len(), dataset.vulns().len(), "duplicate (asset, plugin, port, protocol)");
        }
    }

    #[test]
    fn same_plugin_on_two_locations_of_one_asset_exists() {
        let dataset = dataset();
        let pairs: Vec<(String, u64)> =
            dataset.vulns().iter().map(key_of).map(|(asset, plugin, _, _)| (asset, plugin)).collect();
        let distinct: HashSet<_> = pairs.iter().collect();
        assert!(pairs.len() - distinct.len() >= 40, "asset + plugin must not identify a finding");
    }

    #[test]
    fn records_have_varied_realistic_values() {
        let dataset = dataset();
        let vulns = dataset.vulns();
        let values = |pointer: &str| -> HashSet<String> {
            vulns.iter().filter_map(|vuln| vuln.pointer(pointer)).map(Value::to_string).collect()
        };
        assert_eq!(values("/severity").len(), 5);
        assert_eq!(values("/state").len(), 3);
        assert!(values("/asset/operating_system").len() >= 8);
        for vuln in vulns {
            let severity = Severity::ALL
                .into_iter()
                .find(|severity| vuln["severity"] == severity.as_str())
                .expect("known severity");
            assert_eq!(vuln["severity_id"], severity.id());
            assert_eq!(vuln.get("last_fixed").is_some(), vuln["state"] == "FIXED");
            assert!(vuln["last_found"].as_str().is_some_and(|time| time.ends_with('Z') && time.len() == 24));
            assert!(!vuln.to_string().contains("null"), "empty attributes are omitted, never null");
            if let Some(cves) = vuln["plugin"].get("cve") {
                assert!(cves.as_array().is_some_and(|cves| !cves.is_empty()));
            }
        }
        let ports: Vec<&Value> = vulns.iter().map(|vuln| &vuln["port"]["port"]).collect();
        assert!(ports.iter().any(|port| port.is_string()) && ports.iter().any(|port| port.is_number()));
        assert!(ports.iter().any(|port| **port == 0 || **port == "0"), "host-level findings use port 0");
        assert!(vulns.iter().any(|vuln| vuln["asset"].get("fqdn").is_none()));
        assert!(vulns.iter().any(|vuln| vuln["asset"].get("operating_system").is_none()));
        assert!(vulns.iter().any(|vuln| vuln["plugin"].get("cve").is_none()));
        assert!(vulns.iter().any(|vuln| vuln["port"]["protocol"] == "UDP"));
    }

    #[test]
    fn timestamps_stay_clear_of_the_30_day_edge_and_before_the_anchor() {
        let dataset = dataset();
        let anchor_ms = dataset.anchor_ms;
        let mut stale = 0;
        for facts in dataset.vuln_facts.iter().map(|facts| facts.lifecycle) {
            let age_days = (anchor_ms - facts.last_found_ms) / DAY_MS;
            assert!((1..25).contains(&age_days) || (44..=400).contains(&age_days), "{age_days}");
            stale += usize::from(age_days >= 44);
            let fixed_ms = facts.last_fixed_ms.unwrap_or(facts.last_found_ms);
            assert!(facts.first_found_ms <= facts.last_found_ms && facts.last_found_ms <= fixed_ms);
            assert!(fixed_ms < anchor_ms);
        }
        let share = stale as f64 / dataset.vuln_facts.len() as f64;
        assert!((0.15..0.35).contains(&share), "stale share {share}");
    }

    #[test]
    fn asset_records_agree_with_the_assets_inside_vuln_records() {
        let dataset = dataset();
        let assets: HashMap<&str, &Value> =
            dataset.assets().iter().map(|asset| (asset["id"].as_str().unwrap_or_default(), asset)).collect();
        for vuln in dataset.vulns() {
            let embedded = &vuln["asset"];
            let asset = assets[embedded["uuid"].as_str().unwrap_or_default()];
            assert_eq!(asset["hostnames"], json!([embedded["hostname"]]));
            assert_eq!(asset["ipv4s"], json!([embedded["ipv4"]]));
            let fqdns: Vec<&Value> = embedded.get("fqdn").into_iter().collect();
            assert_eq!(asset["fqdns"], json!(fqdns));
            let operating_systems = embedded.get("operating_system").cloned().unwrap_or_else(|| json!([]));
            assert_eq!(asset["operating_systems"], operating_systems);
            assert!(asset["last_seen"].as_str() >= vuln["last_found"].as_str());
        }
        assert!(dataset.assets().iter().all(|asset| asset["tags"][0]["key"] == "env"));
    }

    #[test]
    fn default_filters_keep_recent_open_findings_only() {
        let dataset = dataset();
        let now_ms = dataset.anchor_ms + 23 * HOUR_MS;
        let exported = dataset.matching_vuln_indexes(&VulnFilters::default(), now_ms);
        let everything = dataset.matching_vuln_indexes(&VulnFilters::everything(), now_ms);
        assert_eq!(everything.len(), dataset.vulns().len());
        assert!(!exported.is_empty() && exported.len() < everything.len() * 3 / 4);
        for index in exported {
            let facts = dataset.vuln_facts[index].lifecycle;
            assert_ne!(facts.state, VulnState::Fixed);
            assert!(facts.last_found_ms >= now_ms - 30 * DAY_MS);
        }
    }

    #[test]
    fn vuln_chunks_keep_each_asset_in_one_chunk() {
        let dataset = dataset();
        let chunks = dataset.vuln_chunks(&VulnFilters::everything(), dataset.anchor_ms, 50);
        assert_eq!(chunks.len(), 3);
        let mut chunk_of_asset = HashMap::new();
        for (chunk_id, chunk) in chunks.iter().enumerate() {
            let assets: HashSet<usize> = chunk.iter().map(|&index| dataset.vuln_facts[index].asset_index).collect();
            assert!(assets.len() <= 50);
            for asset in assets {
                assert_eq!(*chunk_of_asset.entry(asset).or_insert(chunk_id), chunk_id);
            }
        }
    }
}
