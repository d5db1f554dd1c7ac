//! Tenable Vulnerability Management: the records of a vulns export chunk
//! (`GET /vulns/export/{uuid}/chunks/{id}`) and of an assets export chunk
//! (`GET /assets/export/{uuid}/chunks/{id}`), both JSON arrays, mapped onto the model.
//!
//! A host appears in both: as the `asset` object of every vuln record and as an asset
//! record. The two name its attributes differently (`asset.hostname` and `hostnames`,
//! `asset.device_type` and `system_types`...), so both are read into [`HostFacts`] and
//! turned into an [`Asset`] by the same rules: a sync that stores assets from both
//! sources must store the same asset, not flip between two versions of it.

use std::net::IpAddr;

use serde_json::Value;

use crate::model::{Asset, Finding, FindingState, NormalizedRecord, OsCategory, ScannerKind, Severity};
use crate::normalize::fields::{Fields, first};
use crate::normalize::wanted::{Wanted, part, whole};
use crate::normalize::{
    ChunkError, NormalizedAsset, RecordError, each_record, normalize_chunk, os_category, parse_timestamp,
    protocol_name, sanitize_output,
};
use crate::scanners::ChunkNormalizer;

/// Normalizes a whole vulns export chunk, failing on its first unusable record so a
/// chunk is stored entirely or not at all.
pub fn normalize_vulns_chunk(bytes: &[u8]) -> Result<Vec<NormalizedRecord>, ChunkError> {
    normalize_chunk(bytes, VULN_FIELDS, normalize_vuln)
}

/// Normalizes a whole assets export chunk, failing on its first unusable record so a
/// chunk is stored entirely or not at all.
pub fn normalize_assets_chunk(bytes: &[u8]) -> Result<Vec<NormalizedAsset>, ChunkError> {
    normalize_chunk(bytes, ASSET_FIELDS, normalize_asset)
}

/// The fields of a vuln record [`normalize_vuln`] reads: the rest is skipped unread.
const VULN_FIELDS: &[Wanted] = &[
    part(
        "asset",
        &[
            whole("uuid"),
            whole("hostname"),
            whole("netbios_name"),
            whole("fqdn"),
            whole("ipv4"),
            whole("operating_system"),
            whole("device_type"),
        ],
    ),
    part(
        "plugin",
        &[
            whole("id"),
            whole("name"),
            whole("family"),
            whole("cve"),
            whole("cvss3_base_score"),
            part("vpr", &[whole("score")]),
            whole("synopsis"),
            whole("solution"),
        ],
    ),
    part("port", &[whole("port"), whole("protocol"), whole("service")]),
    whole("severity"),
    whole("severity_id"),
    whole("state"),
    whole("first_found"),
    whole("last_found"),
    whole("last_fixed"),
    whole("output"),
];

/// The fields of an asset record [`normalize_asset`] reads.
const ASSET_FIELDS: &[Wanted] = &[
    whole("id"),
    whole("last_seen"),
    whole("terminated_at"),
    whole("deleted_at"),
    whole("hostnames"),
    whole("netbios_names"),
    whole("fqdns"),
    whole("ipv4s"),
    whole("operating_systems"),
    whole("system_types"),
    whole("tags"),
];

/// Tenable's chunks: JSON arrays of export records, read one record at a time.
pub struct TenableNormalizer;

impl ChunkNormalizer for TenableNormalizer {
    /// A Tenable chunk refers to nothing outside it.
    fn findings(
        &self,
        raw: &[u8],
        _reference: Option<&[u8]>,
        keep: &mut dyn FnMut(NormalizedRecord) -> Result<(), ChunkError>,
    ) -> Result<u64, ChunkError> {
        each_record(raw, VULN_FIELDS, normalize_vuln, keep)
    }

    fn assets(
        &self,
        raw: &[u8],
        keep: &mut dyn FnMut(NormalizedAsset) -> Result<(), ChunkError>,
    ) -> Result<u64, ChunkError> {
        each_record(raw, ASSET_FIELDS, normalize_asset, keep)
    }
}

/// Normalizes one vuln record; `index` is its position in the chunk, for errors.
pub fn normalize_vuln(record: &Value, index: usize) -> Result<NormalizedRecord, RecordError> {
    let fields = Fields::new(record, index);

    let asset_id = fields.id("asset.uuid")?;
    // A number or a numeric string: both give the same id ("0042" too).
    let plugin_id = fields.required("plugin.id", WHOLE_NUMBER, whole_number)?.to_string();
    let severity = read_severity(&fields)?;
    let state = fields.required("state", STATES, finding_state)?;
    let first_seen = fields.required("first_found", TIMESTAMP, parse_timestamp)?;
    let last_seen = fields.required("last_found", TIMESTAMP, parse_timestamp)?;
    let last_fixed = fields.parse("last_fixed", TIMESTAMP, parse_timestamp)?;

    // A finding without a port is host-level: port 0.
    let port =
        fields.parse("port.port", PORT, |value| whole_number(value).and_then(|number| u16::try_from(number).ok()))?;
    let port = port.unwrap_or(0);
    // Tenable sends upper case; ids use lower case. Without a protocol, a service port
    // is taken as TCP (what Tenable's port scanners probe) and a host-level finding
    // gets "none", so it cannot merge with a real TCP finding on port 0.
    let protocol =
        match fields.parse("port.protocol", PROTOCOL, |value| value.as_str().and_then(protocol_name))?.flatten() {
            Some(protocol) => protocol,
            None if port == 0 => "none".to_owned(),
            None => "tcp".to_owned(),
        };

    let asset = HostFacts::of_vuln(&fields)?.into_asset(asset_id);
    let output = fields
        .parse("output", "a string", |value| value.as_str().map(sanitize_output))?
        .filter(|(text, _)| !text.is_empty());
    let (output, output_truncated) = match output {
        Some((text, truncated)) => (Some(text), truncated),
        None => (None, false),
    };
    let title = fields.text("plugin.name")?.unwrap_or_else(|| format!("Plugin {plugin_id}"));

    let finding = Finding {
        finding_id: Finding::key(ScannerKind::Tenable, &asset.asset_id, &plugin_id, port, &protocol),
        source: ScannerKind::Tenable,
        asset_id: asset.asset_id.clone(),
        plugin_id,
        port,
        protocol,
        service: fields.text("port.service")?,
        severity,
        state,
        title,
        family: fields.text("plugin.family")?,
        cves: fields.texts("plugin.cve")?,
        cvss3_base_score: fields.parse("plugin.cvss3_base_score", SCORE, score)?,
        vpr_score: fields.parse("plugin.vpr.score", SCORE, score)?,
        synopsis: fields.text("plugin.synopsis")?,
        solution: fields.text("plugin.solution")?,
        output,
        output_truncated,
        first_seen,
        last_seen,
        last_fixed,
        hostname: asset.hostname.clone(),
        ipv4: asset.ipv4.clone(),
        os_category: asset.os_category,
    };
    Ok(NormalizedRecord { finding, asset })
}

/// Normalizes one asset export record; `index` is its position in the chunk, for errors.
pub fn normalize_asset(record: &Value, index: usize) -> Result<NormalizedAsset, RecordError> {
    let fields = Fields::new(record, index);

    let asset_id = fields.id("id")?;
    let asset = HostFacts::of_asset(&fields)?.into_asset(asset_id);
    let last_seen = fields.parse("last_seen", TIMESTAMP, parse_timestamp)?;
    // Null until Tenable terminates (an agent or cloud host gone) or deletes the host.
    let terminated_at = fields.parse("terminated_at", TIMESTAMP, parse_timestamp)?;
    let deleted_at = fields.parse("deleted_at", TIMESTAMP, parse_timestamp)?;
    let tags = read_tags(&fields)?;

    Ok(NormalizedAsset { asset, last_seen, tags, deleted: terminated_at.is_some() || deleted_at.is_some() })
}

// What each field accepts, as error messages say it.
const WHOLE_NUMBER: &str = "a whole number or a numeric string";
const PORT: &str = "a port number from 0 to 65535 (a number or a numeric string)";
const PROTOCOL: &str = "a protocol name such as TCP, UDP or ICMP";
const STATES: &str = "one of OPEN, REOPENED, FIXED";
const SEVERITIES: &str = "one of info, low, medium, high, critical";
const SEVERITY_IDS: &str = "a number from 0 (info) to 4 (critical)";
const TIMESTAMP: &str = "an RFC 3339 or ISO 8601 time, or unix seconds";
const SCORE: &str = "a score from 0 to 10";
const TAGS: &str = "an array of tags ({\"key\": ..., \"value\": ...})";

/// The severity from `severity` when present (Tenable's name for it), else from
/// `severity_id`. A present but unusable `severity` is an error, not a fallback.
fn read_severity(fields: &Fields) -> Result<Severity, RecordError> {
    if let Some(severity) = fields.parse("severity", SEVERITIES, |value| value.as_str().and_then(severity_named))? {
        return Ok(severity);
    }
    fields
        .parse("severity_id", SEVERITY_IDS, |value| whole_number(value).and_then(severity_numbered))?
        .ok_or_else(|| fields.error("severity", "is missing (and so is `severity_id`)"))
}

/// What a Tenable record says about a host, each list in Tenable's order, trimmed,
/// blanks dropped.
struct HostFacts {
    hostnames: Vec<String>,
    netbios_names: Vec<String>,
    fqdns: Vec<String>,
    ipv4s: Vec<String>,
    operating_systems: Vec<String>,
    device_types: Vec<String>,
}

impl HostFacts {
    /// From a vuln record's `asset` object, which holds one value of most attributes
    /// (string or array, Tenable sends either).
    fn of_vuln(fields: &Fields) -> Result<Self, RecordError> {
        Ok(Self {
            hostnames: fields.text("asset.hostname")?.into_iter().collect(),
            netbios_names: fields.texts("asset.netbios_name")?,
            fqdns: fields.texts("asset.fqdn")?,
            ipv4s: fields.texts("asset.ipv4")?,
            operating_systems: fields.texts("asset.operating_system")?,
            device_types: fields.text("asset.device_type")?.into_iter().collect(),
        })
    }

    /// From an asset export record, which holds lists (`[]` when empty).
    fn of_asset(fields: &Fields) -> Result<Self, RecordError> {
        Ok(Self {
            hostnames: fields.texts("hostnames")?,
            netbios_names: fields.texts("netbios_names")?,
            fqdns: fields.texts("fqdns")?,
            ipv4s: fields.texts("ipv4s")?,
            operating_systems: fields.texts("operating_systems")?,
            device_types: fields.texts("system_types")?,
        })
    }

    /// The rules, one place for both sources: each attribute is the first of its list.
    fn into_asset(self, asset_id: String) -> Asset {
        // Tenable fills a vuln record's `asset.hostname` with an IP address when it knows
        // no name for the host, while the asset record's `hostnames` stays empty: an IP
        // address is never taken as a hostname, so both give the NetBIOS name or none.
        let hostname =
            self.hostnames.into_iter().chain(self.netbios_names).find(|name| name.parse::<IpAddr>().is_err());
        let operating_system = first(self.operating_systems);
        // Tenable's device types name network gear ("router", "switch", "firewall") with
        // words the OS rules know; they decide only when the OS string says nothing.
        let os_category = match operating_system.as_deref().map(os_category) {
            Some(category) if category != OsCategory::Other => category,
            _ => self.device_types.first().map_or(OsCategory::Other, |device_type| os_category(device_type)),
        };
        Asset {
            asset_id,
            source: ScannerKind::Tenable,
            hostname,
            fqdn: first(self.fqdns),
            ipv4: first(self.ipv4s),
            operating_system,
            os_category,
        }
    }
}

/// An asset record's tags as (category, value). A tag without a key or a value (absent
/// or blank) can match no scope and is dropped, like a blank item of a list; a tag
/// that is not an object, or whose key or value is not a string, is an error.
fn read_tags(fields: &Fields) -> Result<Vec<(String, String)>, RecordError> {
    let mut tags = Vec::new();
    for tag in fields.items("tags", TAGS)? {
        if let (Some(key), Some(value)) = (tag.text("key")?, tag.text("value")?) {
            tags.push((key, value));
        }
    }
    Ok(tags)
}

/// A number or a numeric string holding a non-negative whole number.
fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn score(value: &Value) -> Option<f64> {
    let score = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }?;
    (0.0..=10.0).contains(&score).then_some(score)
}

fn severity_named(name: &str) -> Option<Severity> {
    match name.trim().to_ascii_lowercase().as_str() {
        "info" | "informational" => Some(Severity::Info),
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

fn severity_numbered(id: u64) -> Option<Severity> {
    match id {
        0 => Some(Severity::Info),
        1 => Some(Severity::Low),
        2 => Some(Severity::Medium),
        3 => Some(Severity::High),
        4 => Some(Severity::Critical),
        _ => None,
    }
}

/// Tenable's states, plus the names other scanners and older exports use for them.
fn finding_state(value: &Value) -> Option<FindingState> {
    match value.as_str()?.trim().to_ascii_uppercase().as_str() {
        "OPEN" | "ACTIVE" | "NEW" => Some(FindingState::Open),
        "REOPENED" | "RE-OPENED" | "RESURFACED" => Some(FindingState::Reopened),
        "FIXED" => Some(FindingState::Fixed),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
