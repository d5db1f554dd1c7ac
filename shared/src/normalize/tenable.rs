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

use super::fields::{Fields, first};
use super::{ChunkError, NormalizedAsset, RecordError, normalize_chunk, os_category, parse_timestamp, sanitize_output};
use crate::model::{Asset, Finding, FindingState, NormalizedRecord, OsCategory, ScannerKind, Severity};

/// Normalizes a whole vulns export chunk, failing on its first unusable record so a
/// chunk is stored entirely or not at all.
pub fn normalize_vulns_chunk(bytes: &[u8]) -> Result<Vec<NormalizedRecord>, ChunkError> {
    normalize_chunk(bytes, normalize_vuln)
}

/// Normalizes a whole assets export chunk, failing on its first unusable record so a
/// chunk is stored entirely or not at all.
pub fn normalize_assets_chunk(bytes: &[u8]) -> Result<Vec<NormalizedAsset>, ChunkError> {
    normalize_chunk(bytes, normalize_asset)
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
    let protocol = match fields.parse("port.protocol", PROTOCOL, protocol_name)?.flatten() {
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

/// A protocol name in lower case; `Some(None)` for a blank one. Letters and digits
/// only, since the protocol is part of the finding id.
fn protocol_name(value: &Value) -> Option<Option<String>> {
    let name = value.as_str()?.trim();
    if name.is_empty() {
        Some(None)
    } else if name.chars().all(|character| character.is_ascii_alphanumeric()) {
        Some(Some(name.to_ascii_lowercase()))
    } else {
        None
    }
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
mod tests {
    use super::*;
    use crate::normalize::DISPLAY_OUTPUT_LIMIT;
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    const ASSET_UUID: &str = "cf165808-6a31-48e1-9cf3-c6c3174df51d";

    /// A vuln record as the export API sends it, with every field product.md lists.
    fn full_record() -> Value {
        json!({
            "asset": {
                "device_type": "general-purpose",
                "fqdn": "web-01.corp.example.com",
                "hostname": "web-01",
                "uuid": ASSET_UUID,
                "ipv4": "192.0.2.10",
                "mac_address": "00:50:56:a1:b2:c3",
                "netbios_name": "WEB-01",
                "network_id": "00000000-0000-0000-0000-000000000000",
                "operating_system": ["Microsoft Windows Server 2019 Standard"],
                "tracked": true
            },
            "output": "Medium strength ciphers:\n  DES-CBC3-SHA <3DES>\n",
            "plugin": {
                "cve": ["CVE-2016-2183", "CVE-2016-6329"],
                "cvss3_base_score": 7.5,
                "cvss_base_score": 5.0,
                "description": "The remote host supports the use of SSL ciphers that offer medium strength encryption.",
                "family": "General",
                "family_id": 30,
                "has_patch": false,
                "id": 42873,
                "name": "SSL Medium Strength Cipher Suites Supported (SWEET32)",
                "risk_factor": "Medium",
                "solution": "Reconfigure the affected application if possible to avoid use of medium strength ciphers.",
                "synopsis": "The remote service supports the use of medium strength SSL ciphers.",
                "type": "remote",
                "version": "1.24",
                "vpr": { "score": 6.1, "drivers": { "exploit_code_maturity": "UNPROVEN" } }
            },
            "port": { "port": 443, "protocol": "TCP", "service": "www" },
            "scan": {
                "completed_at": "2024-01-05T10:40:00.000Z",
                "schedule_uuid": "template-9a2c1b2e-6f0e-4c3e-8b5c-1f2d3e4a5b6c",
                "started_at": "2024-01-05T10:00:00.000Z",
                "uuid": "7d5f8a42-1c3b-4e6d-9f0a-2b4c6d8e0f12"
            },
            "severity": "medium",
            "severity_id": 2,
            "severity_default_id": 2,
            "severity_modification_type": "NONE",
            "first_found": "2023-11-20T08:15:30.123Z",
            "last_found": "2024-01-05T10:11:12.000Z",
            "last_fixed": "2023-12-01T00:00:00Z",
            "state": "OPEN",
            "indexed": "2024-01-05T10:45:00.000Z"
        })
    }

    /// Only the required fields.
    fn minimal_record() -> Value {
        json!({
            "asset": { "uuid": ASSET_UUID },
            "plugin": { "id": 19506 },
            "severity_id": 0,
            "state": "OPEN",
            "first_found": "2024-01-01T00:00:00Z",
            "last_found": "2024-01-05T10:11:12Z"
        })
    }

    fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, hour, minute, second).single().expect("a valid test time")
    }

    fn normalized(record: &Value) -> NormalizedRecord {
        normalize_vuln(record, 0).expect("the record normalizes")
    }

    fn with(mut record: Value, pointer: &str, value: Value) -> Value {
        if let Some(slot) = record.pointer_mut(pointer) {
            *slot = value;
        }
        record
    }

    fn without(mut record: Value, pointer: &str) -> Value {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        if let Some(Value::Object(object)) = record.pointer_mut(parent) {
            object.remove(key);
        }
        record
    }

    fn error_of(record: &Value, index: usize) -> RecordError {
        normalize_vuln(record, index).expect_err("the record is rejected")
    }

    #[test]
    fn a_full_record_maps_every_field() {
        let NormalizedRecord { finding, asset } = normalized(&full_record());
        assert_eq!(
            asset,
            Asset {
                asset_id: ASSET_UUID.to_owned(),
                source: ScannerKind::Tenable,
                hostname: Some("web-01".to_owned()),
                fqdn: Some("web-01.corp.example.com".to_owned()),
                ipv4: Some("192.0.2.10".to_owned()),
                operating_system: Some("Microsoft Windows Server 2019 Standard".to_owned()),
                os_category: OsCategory::WindowsServer,
            }
        );
        assert_eq!(
            finding,
            Finding {
                finding_id: format!("tenable/{ASSET_UUID}/42873/443/tcp"),
                source: ScannerKind::Tenable,
                asset_id: ASSET_UUID.to_owned(),
                plugin_id: "42873".to_owned(),
                port: 443,
                protocol: "tcp".to_owned(),
                service: Some("www".to_owned()),
                severity: Severity::Medium,
                state: FindingState::Open,
                title: "SSL Medium Strength Cipher Suites Supported (SWEET32)".to_owned(),
                family: Some("General".to_owned()),
                cves: vec!["CVE-2016-2183".to_owned(), "CVE-2016-6329".to_owned()],
                cvss3_base_score: Some(7.5),
                vpr_score: Some(6.1),
                synopsis: Some("The remote service supports the use of medium strength SSL ciphers.".to_owned()),
                solution: Some(
                    "Reconfigure the affected application if possible to avoid use of medium strength ciphers."
                        .to_owned()
                ),
                output: Some("Medium strength ciphers:\n  DES-CBC3-SHA &lt;3DES&gt;\n".to_owned()),
                output_truncated: false,
                first_seen: utc(2023, 11, 20, 8, 15, 30) + chrono::Duration::milliseconds(123),
                last_seen: utc(2024, 1, 5, 10, 11, 12),
                last_fixed: Some(utc(2023, 12, 1, 0, 0, 0)),
                hostname: Some("web-01".to_owned()),
                ipv4: Some("192.0.2.10".to_owned()),
                os_category: OsCategory::WindowsServer,
            }
        );
    }

    #[test]
    fn missing_optional_fields_stay_empty() {
        let NormalizedRecord { finding, asset } = normalized(&minimal_record());
        assert_eq!(finding.title, "Plugin 19506");
        assert_eq!((finding.port, finding.protocol.as_str()), (0, "none"));
        assert_eq!(finding.finding_id, format!("tenable/{ASSET_UUID}/19506/0/none"));
        assert_eq!(finding.severity, Severity::Info);
        assert!(finding.cves.is_empty());
        assert_eq!(
            (&finding.service, &finding.family, &finding.synopsis, &finding.solution, &finding.output),
            (&None, &None, &None, &None, &None)
        );
        assert_eq!((finding.cvss3_base_score, finding.vpr_score, finding.last_fixed), (None, None, None));
        assert!(!finding.output_truncated);
        assert_eq!((&asset.hostname, &asset.fqdn, &asset.ipv4, &asset.operating_system), (&None, &None, &None, &None));
        assert_eq!((asset.os_category, finding.os_category), (OsCategory::Other, OsCategory::Other));
    }

    #[test]
    fn nulls_and_blanks_count_as_absent() {
        let record = with(with(full_record(), "/plugin/name", Value::Null), "/asset/hostname", json!("  "));
        let NormalizedRecord { finding, asset } = normalized(&record);
        assert_eq!(finding.title, "Plugin 42873");
        assert_eq!(asset.hostname.as_deref(), Some("WEB-01"), "falls back to the NetBIOS name");
    }

    #[test]
    fn an_ip_address_is_not_a_hostname() {
        // Tenable's own example vuln record has `"hostname": "192.0.2.225"`.
        for address in ["192.0.2.225", "192.0.2.10", "2001:db8::1"] {
            let record = with(full_record(), "/asset/hostname", json!(address));
            assert_eq!(normalized(&record).finding.hostname.as_deref(), Some("WEB-01"), "{address}");
            let no_netbios = without(record, "/asset/netbios_name");
            let NormalizedRecord { finding, asset } = normalized(&no_netbios);
            assert_eq!((finding.hostname, asset.hostname), (None, None), "{address}");
        }
    }

    #[test]
    fn list_fields_take_a_string_or_the_first_of_an_array() {
        let record = with(full_record(), "/asset/ipv4", json!(["192.0.2.20", "192.0.2.21"]));
        let record = with(record, "/asset/operating_system", json!("Ubuntu 22.04"));
        let record = with(record, "/asset/netbios_name", json!(["WEB-20"]));
        let record = without(record, "/asset/hostname");
        let asset = normalized(&record).asset;
        assert_eq!(asset.ipv4.as_deref(), Some("192.0.2.20"));
        assert_eq!(asset.operating_system.as_deref(), Some("Ubuntu 22.04"));
        assert_eq!(asset.os_category, OsCategory::Linux);
        assert_eq!(asset.hostname.as_deref(), Some("WEB-20"));
    }

    #[test]
    fn the_device_type_decides_only_when_the_os_says_nothing() {
        let router = with(full_record(), "/asset/device_type", json!("router"));
        let unknown_os = with(router.clone(), "/asset/operating_system", json!(["VxWorks 6"]));
        assert_eq!(normalized(&unknown_os).finding.os_category, OsCategory::NetworkDevice);
        let no_os = without(router.clone(), "/asset/operating_system");
        assert_eq!(normalized(&no_os).asset.os_category, OsCategory::NetworkDevice);
        assert_eq!(normalized(&router).asset.os_category, OsCategory::WindowsServer);
    }

    #[test]
    fn every_os_category_reaches_the_finding() {
        let cases = [
            ("Microsoft Windows Server 2022 Datacenter", OsCategory::WindowsServer),
            ("Microsoft Windows 10 Enterprise", OsCategory::WindowsWorkstation),
            ("Linux Kernel 5.15 on Red Hat Enterprise Linux 9", OsCategory::Linux),
            ("Mac OS X 10.15", OsCategory::Macos),
            ("Cisco IOS XE Software, Version 17.03.04a", OsCategory::NetworkDevice),
            ("Apple iOS 17", OsCategory::Other),
        ];
        for (operating_system, expected) in cases {
            let record = with(full_record(), "/asset/operating_system", json!([operating_system]));
            assert_eq!(normalized(&record).finding.os_category, expected, "{operating_system}");
        }
    }

    #[test]
    fn times_are_stored_in_utc() {
        let cases = [
            (json!("2024-01-05T10:11:12Z"), utc(2024, 1, 5, 10, 11, 12)),
            (json!("2024-01-05T12:11:12+02:00"), utc(2024, 1, 5, 10, 11, 12)),
            (json!("2024-01-05T10:11:12"), utc(2024, 1, 5, 10, 11, 12)),
            (json!("2024-01-05 10:11:12"), utc(2024, 1, 5, 10, 11, 12)),
            (json!(1_704_449_472), utc(2024, 1, 5, 10, 11, 12)),
            (json!("1704449472"), utc(2024, 1, 5, 10, 11, 12)),
            (json!(1_704_449_472_000_i64), utc(2024, 1, 5, 10, 11, 12)),
        ];
        for (value, expected) in cases {
            let record = with(with(full_record(), "/last_found", value.clone()), "/first_found", value.clone());
            let finding = normalized(&record).finding;
            assert_eq!((finding.first_seen, finding.last_seen), (expected, expected), "{value}");
        }
        let serialized = serde_json::to_value(normalized(&full_record()).finding).expect("serializes");
        assert_eq!(serialized["last_seen"], json!("2024-01-05T10:11:12Z"));
    }

    #[test]
    fn severity_comes_from_its_name_or_its_id() {
        for (name, expected) in [
            ("info", Severity::Info),
            ("Informational", Severity::Info),
            ("LOW", Severity::Low),
            ("medium", Severity::Medium),
            ("High", Severity::High),
            ("critical", Severity::Critical),
        ] {
            let record = with(minimal_record(), "/severity_id", Value::Null);
            let record = with_field(record, "severity", json!(name));
            assert_eq!(normalized(&record).finding.severity, expected, "{name}");
        }
        for (id, expected) in [
            (json!(0), Severity::Info),
            (json!(1), Severity::Low),
            (json!(2), Severity::Medium),
            (json!(3), Severity::High),
            (json!("4"), Severity::Critical),
        ] {
            let record = with(minimal_record(), "/severity_id", id.clone());
            assert_eq!(normalized(&record).finding.severity, expected, "{id}");
        }
    }

    fn with_field(mut record: Value, key: &str, value: Value) -> Value {
        if let Value::Object(object) = &mut record {
            object.insert(key.to_owned(), value);
        }
        record
    }

    #[test]
    fn states_are_read_case_insensitively_with_their_synonyms() {
        for (name, expected) in [
            ("OPEN", FindingState::Open),
            ("open", FindingState::Open),
            ("ACTIVE", FindingState::Open),
            ("New", FindingState::Open),
            ("REOPENED", FindingState::Reopened),
            ("Re-Opened", FindingState::Reopened),
            ("RESURFACED", FindingState::Reopened),
            ("FIXED", FindingState::Fixed),
        ] {
            let record = with(minimal_record(), "/state", json!(name));
            assert_eq!(normalized(&record).finding.state, expected, "{name}");
        }
    }

    #[test]
    fn ports_come_as_numbers_or_strings() {
        let as_string = with(full_record(), "/port/port", json!("443"));
        assert_eq!(normalized(&as_string).finding, normalized(&full_record()).finding);

        let udp = with(full_record(), "/port", json!({ "port": "161", "protocol": "UDP" }));
        let finding = normalized(&udp).finding;
        assert_eq!((finding.port, finding.protocol.as_str(), finding.service), (161, "udp", None));

        let no_protocol = with(full_record(), "/port", json!({ "port": 8443 }));
        assert_eq!(normalized(&no_protocol).finding.protocol, "tcp");

        let host_level = without(full_record(), "/port");
        let finding = normalized(&host_level).finding;
        assert_eq!((finding.port, finding.protocol.as_str()), (0, "none"));
    }

    #[test]
    fn one_plugin_on_two_ports_or_protocols_gives_distinct_findings() {
        let on_443 = normalized(&full_record()).finding.finding_id;
        let on_8443 = normalized(&with(full_record(), "/port/port", json!(8443))).finding.finding_id;
        let on_udp_443 = normalized(&with(full_record(), "/port/protocol", json!("UDP"))).finding.finding_id;
        assert_eq!(on_8443, format!("tenable/{ASSET_UUID}/42873/8443/tcp"));
        assert_ne!(on_443, on_8443);
        assert_ne!(on_443, on_udp_443);
    }

    #[test]
    fn plugin_ids_as_numbers_and_strings_give_the_same_finding() {
        let as_string = with(full_record(), "/plugin/id", json!("42873"));
        assert_eq!(normalized(&as_string).finding.finding_id, normalized(&full_record()).finding.finding_id);
    }

    #[test]
    fn a_megabyte_of_output_is_escaped_and_truncated() {
        let huge = "<b>x</b>".repeat(128 * 1024);
        let record = with(full_record(), "/output", json!(huge));
        let started = std::time::Instant::now();
        let finding = normalized(&record).finding;
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
        let output = finding.output.expect("an output");
        assert!(finding.output_truncated);
        assert!(!output.contains('<'));
        assert_eq!(output, "&lt;b&gt;x&lt;/b&gt;".repeat(DISPLAY_OUTPUT_LIMIT / 8));
    }

    #[test]
    fn script_tags_in_output_are_escaped() {
        let record = with(full_record(), "/output", json!("<script>alert(\"owned\")</script>"));
        assert_eq!(
            normalized(&record).finding.output.as_deref(),
            Some("&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;")
        );
    }

    #[test]
    fn errors_name_the_record_and_the_field() {
        let cases = [
            (without(full_record(), "/asset/uuid"), "asset.uuid", "is missing"),
            (
                with(full_record(), "/asset/uuid", json!(" ")),
                "asset.uuid",
                "must be a non-empty string, found a string (\" \")",
            ),
            (without(full_record(), "/asset"), "asset.uuid", "is missing"),
            (without(full_record(), "/plugin/id"), "plugin.id", "is missing"),
            (
                with(full_record(), "/plugin/id", json!(-5)),
                "plugin.id",
                "must be a whole number or a numeric string, found a number (-5)",
            ),
            (
                without(without(full_record(), "/severity"), "/severity_id"),
                "severity",
                "is missing (and so is `severity_id`)",
            ),
            (
                with(full_record(), "/severity", json!("urgent")),
                "severity",
                "must be one of info, low, medium, high, critical, found a string (\"urgent\")",
            ),
            (
                with(without(full_record(), "/severity"), "/severity_id", json!(5)),
                "severity_id",
                "must be a number from 0 (info) to 4 (critical), found a number (5)",
            ),
            (without(full_record(), "/state"), "state", "is missing"),
            (
                with(full_record(), "/state", json!("DISMISSED")),
                "state",
                "must be one of OPEN, REOPENED, FIXED, found a string (\"DISMISSED\")",
            ),
            (without(full_record(), "/first_found"), "first_found", "is missing"),
            (
                with(full_record(), "/last_found", json!("last tuesday")),
                "last_found",
                "must be an RFC 3339 or ISO 8601 time, or unix seconds, found a string (\"last tuesday\")",
            ),
            (
                with(full_record(), "/last_fixed", json!(true)),
                "last_fixed",
                "must be an RFC 3339 or ISO 8601 time, or unix seconds, found a boolean (true)",
            ),
            (
                with(full_record(), "/port/port", json!(70000)),
                "port.port",
                "must be a port number from 0 to 65535 (a number or a numeric string), found a number (70000)",
            ),
            (with(full_record(), "/port", json!("443")), "port", "must be an object, found a string (\"443\")"),
            (
                with(full_record(), "/port/protocol", json!("tcp/ip")),
                "port.protocol",
                "must be a protocol name such as TCP, UDP or ICMP, found a string (\"tcp/ip\")",
            ),
            (
                with(full_record(), "/plugin/cve", json!(["CVE-2016-2183", 7])),
                "plugin.cve[1]",
                "must be a string, found a number (7)",
            ),
            (
                with(full_record(), "/plugin/vpr/score", json!(11)),
                "plugin.vpr.score",
                "must be a score from 0 to 10, found a number (11)",
            ),
            (
                with(full_record(), "/asset/operating_system", json!({})),
                "asset.operating_system",
                "must be a string or an array of strings, found an object with 0 fields",
            ),
            (json!([1, 2]), "record", "must be an object, found an array of 2 items"),
        ];
        for (record, field, reason) in cases {
            assert_eq!(
                error_of(&record, 3),
                RecordError { index: 3, field: field.to_owned(), reason: reason.to_owned() }
            );
        }
        let message = error_of(&without(full_record(), "/plugin/id"), 3).to_string();
        assert_eq!(message, "record 3: field `plugin.id` is missing");
    }

    #[test]
    fn error_excerpts_never_dump_a_whole_value() {
        let record = with(full_record(), "/plugin/id", json!("9".repeat(1_000_000) + "x"));
        let message = error_of(&record, 0).to_string();
        assert!(message.len() < 250, "{} bytes", message.len());
    }

    #[test]
    fn a_chunk_is_an_array_of_records() {
        let chunk = serde_json::to_vec(&json!([full_record(), minimal_record()])).expect("serializes");
        let records = normalize_vulns_chunk(&chunk).expect("the chunk normalizes");
        assert_eq!(records.len(), 2);
        assert_eq!(normalize_vulns_chunk(b"[]"), Ok(Vec::new()));
    }

    #[test]
    fn a_chunk_fails_on_its_first_bad_record() {
        let bad = without(full_record(), "/state");
        let chunk =
            serde_json::to_vec(&json!([full_record(), minimal_record(), bad, without(full_record(), "/asset")]))
                .expect("serializes");
        let error = normalize_vulns_chunk(&chunk).expect_err("the chunk is rejected");
        assert_eq!(error.to_string(), "record 2: field `state` is missing");
        assert!(matches!(error, ChunkError::Record(RecordError { index: 2, .. })));
    }

    #[test]
    fn a_chunk_that_is_not_a_json_array_is_rejected() {
        assert!(matches!(normalize_vulns_chunk(b"[{\"asset\":"), Err(ChunkError::NotJson(_))));
        assert!(matches!(normalize_vulns_chunk(b""), Err(ChunkError::NotJson(_))));
        assert_eq!(
            normalize_vulns_chunk(br#"{"error": "export expired"}"#),
            Err(ChunkError::NotArray("an object with 1 field".to_owned()))
        );
        assert_eq!(
            normalize_vulns_chunk(b"null").map_err(|error| error.to_string()),
            Err("the chunk is not a JSON array of records (found null)".to_owned())
        );
    }

    /// Arbitrary JSON, with keys and strings biased towards what the normalizers read
    /// so that deep paths get exercised.
    fn json_value() -> impl Strategy<Value = Value> {
        let known_text = prop::sample::select(vec![
            "OPEN",
            "fixed",
            "critical",
            "Info",
            "443",
            "TCP",
            "",
            " ",
            "2024-01-05T10:11:12Z",
            "2024-01-05 10:11:12",
            "1704449472",
            "Cisco IOS",
            "router",
            "192.0.2.10",
            "::1",
            "<script>",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (0_u64..70_000).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            known_text.prop_map(Value::from),
        ];
        let key = prop_oneof![
            prop::sample::select(vec![
                "asset",
                "uuid",
                "plugin",
                "id",
                "port",
                "protocol",
                "severity",
                "severity_id",
                "state",
                "first_found",
                "last_found",
                "last_fixed",
                "output",
                "cve",
                "vpr",
                "score",
                "operating_system",
                "hostname",
                "netbios_name",
                "ipv4",
                "name",
                "hostnames",
                "netbios_names",
                "fqdns",
                "ipv4s",
                "operating_systems",
                "system_types",
                "last_seen",
                "terminated_at",
                "deleted_at",
                "tags",
                "key",
                "value",
            ])
            .prop_map(str::to_owned),
            ".{0,8}",
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    const FIELD_PATHS: &[&str] = &[
        "asset",
        "asset.uuid",
        "asset.hostname",
        "asset.netbios_name",
        "asset.fqdn",
        "asset.ipv4",
        "asset.operating_system",
        "asset.device_type",
        "plugin",
        "plugin.id",
        "plugin.name",
        "plugin.family",
        "plugin.cve",
        "plugin.cvss3_base_score",
        "plugin.vpr",
        "plugin.vpr.score",
        "plugin.synopsis",
        "plugin.solution",
        "port",
        "port.port",
        "port.protocol",
        "port.service",
        "severity",
        "severity_id",
        "state",
        "first_found",
        "last_found",
        "last_fixed",
        "output",
    ];

    /// Sets (or with `None` removes) the field or array item at a dotted path
    /// (`tags.0.key`), when its parent exists.
    fn mutate(record: &mut Value, path: &str, replacement: Option<Value>) {
        let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
        let pointer = if parent.is_empty() { String::new() } else { format!("/{}", parent.replace('.', "/")) };
        match (record.pointer_mut(&pointer), key.parse::<usize>()) {
            (Some(Value::Object(object)), _) => {
                match replacement {
                    Some(value) => object.insert(key.to_owned(), value),
                    None => object.remove(key),
                };
            }
            (Some(Value::Array(items)), Ok(position)) if position < items.len() => match replacement {
                Some(value) => items[position] = value,
                None => {
                    items.remove(position);
                }
            },
            _ => {}
        }
    }

    /// A record either normalizes into something that holds `holds`, or fails with an
    /// error naming its index and a field.
    fn check_record<T>(
        normalize: fn(&Value, usize) -> Result<T, RecordError>,
        record: &Value,
        index: usize,
        holds: fn(T) -> Result<(), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        match normalize(record, index) {
            Ok(normalized) => holds(normalized),
            Err(error) => {
                prop_assert!(!error.field.is_empty());
                prop_assert_eq!(error.index, index);
                Ok(())
            }
        }
    }

    /// `full` with each mutation applied in turn.
    fn mutated(mut full: Value, mutations: Vec<(&str, Option<Value>)>) -> Value {
        for (path, replacement) in mutations {
            mutate(&mut full, path, replacement);
        }
        full
    }

    /// Any bytes give a result or an error, never a panic; a good record followed by
    /// `value` gives two records or an error naming the second.
    fn check_chunk<T>(
        normalize_chunk: fn(&[u8]) -> Result<Vec<T>, ChunkError>,
        bytes: &[u8],
        good: Value,
        value: Value,
    ) -> Result<(), TestCaseError> {
        let _ = normalize_chunk(bytes);
        let chunk = serde_json::to_vec(&json!([good, value])).unwrap_or_default();
        match normalize_chunk(&chunk) {
            Ok(records) => prop_assert_eq!(records.len(), 2),
            Err(ChunkError::Record(error)) => prop_assert_eq!(error.index, 1),
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
        Ok(())
    }

    fn check_outcome(record: &Value, index: usize) -> Result<(), TestCaseError> {
        check_record(normalize_vuln, record, index, |NormalizedRecord { finding, asset }| {
            prop_assert_eq!(&finding.asset_id, &asset.asset_id);
            prop_assert_eq!(
                finding.finding_id.clone(),
                Finding::key(
                    ScannerKind::Tenable,
                    &finding.asset_id,
                    &finding.plugin_id,
                    finding.port,
                    &finding.protocol
                )
            );
            prop_assert!(!finding.output.unwrap_or_default().contains('<'));
            Ok(())
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in json_value(), index in 0_usize..10_000) {
            check_outcome(&value, index)?;
            let as_record = json!({ "asset": value.clone(), "plugin": value.clone(), "port": value });
            check_outcome(&as_record, index)?;
        }

        #[test]
        fn mutated_records_never_panic(
            mutations in prop::collection::vec(
                (prop::sample::select(FIELD_PATHS), prop::option::of(json_value())),
                1..5,
            ),
        ) {
            check_outcome(&mutated(full_record(), mutations), 7)?;
        }

        #[test]
        fn arbitrary_chunks_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value()) {
            check_chunk(normalize_vulns_chunk, &bytes, full_record(), value)?;
        }
    }

    // ---- Asset export records ----

    const ROUTER_ID: &str = "a91f04d2-7c3e-4b58-9e1d-60f2b8c4d735";

    /// An asset record as the export API sends it: lists always present, `[]` when
    /// empty, nulls for what never happened.
    fn full_asset_record() -> Value {
        json!({
            "id": ASSET_UUID,
            "has_agent": false,
            "has_plugin_results": true,
            "created_at": "2023-11-20T08:15:30.123Z",
            "terminated_at": null,
            "terminated_by": null,
            "updated_at": "2024-01-05T10:45:00.000Z",
            "deleted_at": null,
            "deleted_by": null,
            "first_seen": "2023-11-20T08:15:30.123Z",
            "last_seen": "2024-01-05T10:11:12.000Z",
            "last_scan_time": "2024-01-05T10:11:12.000Z",
            "agent_uuid": null,
            "network_id": "00000000-0000-0000-0000-000000000000",
            "network_name": "Default",
            "ipv4s": ["192.0.2.10", "198.51.100.10"],
            "ipv6s": [],
            "fqdns": ["web-01.corp.example.com"],
            "mac_addresses": ["00:50:56:a1:b2:c3"],
            "hostnames": ["web-01"],
            "netbios_names": ["WEB-01"],
            "operating_systems": ["Microsoft Windows Server 2019 Standard"],
            "system_types": ["general-purpose"],
            "installed_software": ["cpe:/a:microsoft:iis:10.0"],
            "sources": [
                { "name": "NESSUS_SCAN", "first_seen": "2023-11-20T08:15:30.123Z", "last_seen": "2024-01-05T10:11:12.000Z" }
            ],
            "tags": [
                {
                    "uuid": "47e7f5f6-1013-4401-a705-479bfadc7826",
                    "key": "env",
                    "value": "prod",
                    "added_by": "ac2e7ef6-fac9-47bf-9170-617331322885",
                    "added_at": "2023-12-31T14:53:13.817Z"
                },
                { "key": "Location", "value": "Fort Worth" }
            ],
            "acr_score": "3",
            "exposure_score": "721"
        })
    }

    fn normalized_asset(record: &Value) -> NormalizedAsset {
        normalize_asset(record, 0).expect("the asset record normalizes")
    }

    fn asset_error_of(record: &Value, index: usize) -> RecordError {
        normalize_asset(record, index).expect_err("the asset record is rejected")
    }

    #[test]
    fn a_full_asset_record_maps_every_field() {
        assert_eq!(
            normalized_asset(&full_asset_record()),
            NormalizedAsset {
                asset: Asset {
                    asset_id: ASSET_UUID.to_owned(),
                    source: ScannerKind::Tenable,
                    hostname: Some("web-01".to_owned()),
                    fqdn: Some("web-01.corp.example.com".to_owned()),
                    ipv4: Some("192.0.2.10".to_owned()),
                    operating_system: Some("Microsoft Windows Server 2019 Standard".to_owned()),
                    os_category: OsCategory::WindowsServer,
                },
                last_seen: Some(utc(2024, 1, 5, 10, 11, 12)),
                tags: vec![("env".to_owned(), "prod".to_owned()), ("Location".to_owned(), "Fort Worth".to_owned()),],
                deleted: false,
            }
        );
    }

    #[test]
    fn the_asset_of_an_asset_record_equals_the_asset_of_its_vuln_records() {
        assert_eq!(normalized_asset(&full_asset_record()).asset, normalized(&full_record()).asset);
    }

    #[test]
    fn an_asset_record_with_only_an_id_has_an_empty_asset() {
        let normalized = normalized_asset(&json!({ "id": ROUTER_ID }));
        assert_eq!(
            normalized,
            NormalizedAsset {
                asset: Asset {
                    asset_id: ROUTER_ID.to_owned(),
                    source: ScannerKind::Tenable,
                    hostname: None,
                    fqdn: None,
                    ipv4: None,
                    operating_system: None,
                    os_category: OsCategory::Other,
                },
                last_seen: None,
                tags: Vec::new(),
                deleted: false,
            }
        );
        let empty_lists = json!({
            "id": ROUTER_ID, "hostnames": [], "netbios_names": [], "fqdns": [], "ipv4s": [],
            "operating_systems": [], "system_types": [], "tags": [], "last_seen": null,
            "terminated_at": null, "deleted_at": null
        });
        assert_eq!(normalized_asset(&empty_lists), normalized);
    }

    #[test]
    fn the_hostname_is_the_first_name_else_the_first_netbios_name() {
        let record = with(full_asset_record(), "/hostnames", json!([" ", null, "web-01b", "web-01c"]));
        assert_eq!(normalized_asset(&record).asset.hostname.as_deref(), Some("web-01b"));
        let record = with(full_asset_record(), "/hostnames", json!([]));
        assert_eq!(normalized_asset(&record).asset.hostname.as_deref(), Some("WEB-01"));
        // An IP address is never a hostname, in either source.
        let record = with(record, "/hostnames", json!(["192.0.2.10"]));
        assert_eq!(normalized_asset(&record).asset.hostname.as_deref(), Some("WEB-01"));
        let record = with(record, "/netbios_names", json!([]));
        assert_eq!(normalized_asset(&record).asset.hostname, None);
    }

    #[test]
    fn the_system_type_decides_only_when_the_os_says_nothing() {
        let router = with(full_asset_record(), "/system_types", json!(["router"]));
        assert_eq!(normalized_asset(&router).asset.os_category, OsCategory::WindowsServer);
        let unknown_os = with(router.clone(), "/operating_systems", json!(["VxWorks 6"]));
        assert_eq!(normalized_asset(&unknown_os).asset.os_category, OsCategory::NetworkDevice);
        let no_os = with(router, "/operating_systems", json!([]));
        let asset = normalized_asset(&no_os).asset;
        assert_eq!((asset.operating_system, asset.os_category), (None, OsCategory::NetworkDevice));
        let os_list = with(
            full_asset_record(),
            "/operating_systems",
            json!(["Linux Kernel 5.15 on Ubuntu 22.04", "Microsoft Windows 10"]),
        );
        assert_eq!(normalized_asset(&os_list).asset.os_category, OsCategory::Linux, "the first OS decides");
    }

    #[test]
    fn a_terminated_or_deleted_asset_is_marked_deleted() {
        for field in ["/terminated_at", "/deleted_at"] {
            let record = with(full_asset_record(), field, json!("2024-01-06T00:00:00Z"));
            assert!(normalized_asset(&record).deleted, "{field}");
            let record = with(full_asset_record(), field, json!(1_704_499_200));
            assert!(normalized_asset(&record).deleted, "{field}");
        }
        assert!(!normalized_asset(&without(full_asset_record(), "/deleted_at")).deleted);
    }

    #[test]
    fn asset_times_are_stored_in_utc() {
        for value in [json!("2024-01-05T12:11:12+02:00"), json!("2024-01-05 10:11:12"), json!(1_704_449_472)] {
            let record = with(full_asset_record(), "/last_seen", value.clone());
            assert_eq!(normalized_asset(&record).last_seen, Some(utc(2024, 1, 5, 10, 11, 12)), "{value}");
        }
    }

    #[test]
    fn tags_without_a_key_or_a_value_are_dropped() {
        let record = with(
            full_asset_record(),
            "/tags",
            json!([
                null,
                { "key": "env", "value": " staging " },
                { "key": "owner" },
                { "key": " ", "value": "x" },
                { "value": "orphan" },
                { "key": "owner", "value": "platform-team" }
            ]),
        );
        assert_eq!(
            normalized_asset(&record).tags,
            vec![("env".to_owned(), "staging".to_owned()), ("owner".to_owned(), "platform-team".to_owned()),]
        );
    }

    #[test]
    fn asset_errors_name_the_record_and_the_field() {
        let cases = [
            (without(full_asset_record(), "/id"), "id", "is missing"),
            (with(full_asset_record(), "/id", json!("")), "id", "must be a non-empty string, found a string (\"\")"),
            (with(full_asset_record(), "/id", json!(42)), "id", "must be a non-empty string, found a number (42)"),
            (
                with(full_asset_record(), "/last_seen", json!("last tuesday")),
                "last_seen",
                "must be an RFC 3339 or ISO 8601 time, or unix seconds, found a string (\"last tuesday\")",
            ),
            (
                with(full_asset_record(), "/terminated_at", json!(true)),
                "terminated_at",
                "must be an RFC 3339 or ISO 8601 time, or unix seconds, found a boolean (true)",
            ),
            (
                with(full_asset_record(), "/deleted_at", json!("soon")),
                "deleted_at",
                "must be an RFC 3339 or ISO 8601 time, or unix seconds, found a string (\"soon\")",
            ),
            (
                with(full_asset_record(), "/hostnames", json!(["web-01", 7])),
                "hostnames[1]",
                "must be a string, found a number (7)",
            ),
            (
                with(full_asset_record(), "/ipv4s", json!({ "0": "192.0.2.10" })),
                "ipv4s",
                "must be a string or an array of strings, found an object with 1 field",
            ),
            (
                with(full_asset_record(), "/system_types", json!(3)),
                "system_types",
                "must be a string or an array of strings, found a number (3)",
            ),
            (
                with(full_asset_record(), "/tags", json!("env:prod")),
                "tags",
                "must be an array of tags ({\"key\": ..., \"value\": ...}), found a string (\"env:prod\")",
            ),
            (
                with(full_asset_record(), "/tags/1", json!("env:prod")),
                "tags[1]",
                "must be an object, found a string (\"env:prod\")",
            ),
            (
                with(full_asset_record(), "/tags/1/value", json!(["Austin"])),
                "tags[1].value",
                "must be a string, found an array of 1 item",
            ),
            (json!("cf165808"), "record", "must be an object, found a string (\"cf165808\")"),
        ];
        for (record, field, reason) in cases {
            assert_eq!(
                asset_error_of(&record, 5),
                RecordError { index: 5, field: field.to_owned(), reason: reason.to_owned() }
            );
        }
        let message = asset_error_of(&without(full_asset_record(), "/id"), 5).to_string();
        assert_eq!(message, "record 5: field `id` is missing");
        let huge = with(full_asset_record(), "/last_seen", json!("x".repeat(1_000_000)));
        assert!(asset_error_of(&huge, 0).to_string().len() < 250);
    }

    #[test]
    fn an_assets_chunk_is_an_array_of_asset_records() {
        let chunk = serde_json::to_vec(&json!([full_asset_record(), { "id": ROUTER_ID }])).expect("serializes");
        let assets = normalize_assets_chunk(&chunk).expect("the chunk normalizes");
        let ids: Vec<&str> = assets.iter().map(|a| a.asset.asset_id.as_str()).collect();
        assert_eq!(ids, [ASSET_UUID, ROUTER_ID]);
        assert_eq!(normalize_assets_chunk(b"[]"), Ok(Vec::new()));

        let bad = serde_json::to_vec(&json!([full_asset_record(), without(full_asset_record(), "/id"), json!(null)]))
            .expect("serializes");
        assert_eq!(
            normalize_assets_chunk(&bad).map_err(|error| error.to_string()),
            Err("record 1: field `id` is missing".to_owned())
        );
        assert!(matches!(normalize_assets_chunk(b"[{\"id\":"), Err(ChunkError::NotJson(_))));
        assert_eq!(
            normalize_assets_chunk(br#"{"error": "export expired"}"#),
            Err(ChunkError::NotArray("an object with 1 field".to_owned()))
        );
    }

    #[test]
    fn a_normalized_asset_round_trips_through_json() {
        let normalized = normalized_asset(&full_asset_record());
        let json = serde_json::to_value(&normalized).expect("serializes");
        assert_eq!(json["tags"], json!([["env", "prod"], ["Location", "Fort Worth"]]));
        assert_eq!(json["last_seen"], json!("2024-01-05T10:11:12Z"));
        let back: NormalizedAsset = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, normalized);
    }

    /// 2024-06-15T13:14:15Z.
    const SIMULATOR_ANCHOR: i64 = 1_718_457_255;

    /// What a sync stores: the asset of every vuln record equals the asset of the asset
    /// record with its id, so storing both never flips an asset between two versions.
    #[test]
    fn simulator_vuln_and_asset_records_give_equal_assets() {
        use std::collections::{BTreeSet, HashMap};

        let dataset = tenable_simulator::Dataset::generate(11, 80, 3, SIMULATOR_ANCHOR);
        let chunk = serde_json::to_vec(dataset.assets()).expect("serializes");
        let assets: HashMap<String, NormalizedAsset> = normalize_assets_chunk(&chunk)
            .expect("the simulator's assets normalize")
            .into_iter()
            .map(|normalized| (normalized.asset.asset_id.clone(), normalized))
            .collect();
        assert_eq!(assets.len(), 80);

        let chunk = serde_json::to_vec(dataset.vulns()).expect("serializes");
        let records = normalize_vulns_chunk(&chunk).expect("the simulator's vulns normalize");
        assert_eq!(records.len(), 240);
        let mut categories = BTreeSet::new();
        let mut without_fqdn = 0;
        for record in &records {
            let from_assets = &assets[&record.asset.asset_id];
            assert_eq!(record.asset, from_assets.asset);
            assert!(from_assets.last_seen >= Some(record.finding.last_seen));
            categories.insert(format!("{:?}", record.asset.os_category));
            without_fqdn += usize::from(record.asset.fqdn.is_none());
        }
        // The comparison covered every kind of host the simulator makes.
        assert_eq!(categories.len(), 6, "{categories:?}");
        assert!(without_fqdn > 0);
        for normalized in assets.values() {
            assert!(!normalized.deleted);
            assert_eq!(normalized.tags.first().map(|(key, _)| key.as_str()), Some("env"));
        }
    }

    #[test]
    fn an_ip_address_hostname_in_a_vuln_record_agrees_with_an_asset_record_without_names() {
        let vuln = with(full_record(), "/asset/hostname", json!("192.0.2.225"));
        let asset_record = with(full_asset_record(), "/hostnames", json!([]));
        assert_eq!(normalized(&vuln).asset, normalized_asset(&asset_record).asset);
        let vuln = without(vuln, "/asset/netbios_name");
        let asset_record = with(asset_record, "/netbios_names", json!([]));
        assert_eq!(normalized(&vuln).asset, normalized_asset(&asset_record).asset);
        assert_eq!(normalized(&vuln).asset.hostname, None);
    }

    /// The same host facts, written the way each export writes them.
    fn host_records(
        hostname: Option<&str>,
        netbios_name: Option<&str>,
        fqdn: Option<&str>,
        ipv4: Option<&str>,
        operating_system: Option<&str>,
        device_type: Option<&str>,
    ) -> (Value, Value) {
        let mut vuln = minimal_record();
        let mut embedded = serde_json::Map::new();
        embedded.insert("uuid".into(), json!(ASSET_UUID));
        let optional = [
            ("hostname", hostname),
            ("netbios_name", netbios_name),
            ("fqdn", fqdn),
            ("ipv4", ipv4),
            ("device_type", device_type),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                embedded.insert(key.into(), json!(value));
            }
        }
        if let Some(operating_system) = operating_system {
            embedded.insert("operating_system".into(), json!([operating_system]));
        }
        vuln["asset"] = Value::Object(embedded);
        let list = |value: Option<&str>| json!(value.into_iter().collect::<Vec<_>>());
        let asset = json!({
            "id": ASSET_UUID,
            "hostnames": list(hostname),
            "netbios_names": list(netbios_name),
            "fqdns": list(fqdn),
            "ipv4s": list(ipv4),
            "operating_systems": list(operating_system),
            "system_types": list(device_type),
        });
        (vuln, asset)
    }

    const ASSET_FIELD_PATHS: &[&str] = &[
        "id",
        "hostnames",
        "netbios_names",
        "fqdns",
        "ipv4s",
        "operating_systems",
        "system_types",
        "last_seen",
        "terminated_at",
        "deleted_at",
        "tags",
        "tags.0",
        "tags.0.key",
        "tags.1.value",
    ];

    fn check_asset_outcome(record: &Value, index: usize) -> Result<(), TestCaseError> {
        check_record(normalize_asset, record, index, |NormalizedAsset { asset, tags, .. }| {
            prop_assert!(!asset.asset_id.is_empty());
            prop_assert!(asset.hostname.is_none_or(|name| !name.is_empty() && name.parse::<IpAddr>().is_err()));
            prop_assert!(tags.iter().all(|(key, value)| !key.is_empty() && !value.is_empty()));
            Ok(())
        })
    }

    proptest! {
        #[test]
        fn both_sources_agree_on_any_host(
            hostname in prop::option::of(prop::sample::select(vec!["web-01", " web-01 ", "192.0.2.9", "", "WEB-01"])),
            netbios_name in prop::option::of(prop::sample::select(vec!["WEB-01", "fe80::1", " "])),
            fqdn in prop::option::of(prop::sample::select(vec!["web-01.corp.example", " "])),
            ipv4 in prop::option::of(prop::sample::select(vec!["192.0.2.9", ""])),
            operating_system in prop::option::of(prop::sample::select(vec![
                "Microsoft Windows Server 2019 Standard",
                "Microsoft Windows 11 Enterprise",
                "Linux Kernel 5.15 on Ubuntu 22.04",
                "Mac OS X 14.2",
                "Cisco IOS 15.2(4)M11",
                "VxWorks 6",
                "",
            ])),
            device_type in prop::option::of(prop::sample::select(vec!["general-purpose", "router", "firewall", " "])),
        ) {
            let (vuln, asset) = host_records(hostname, netbios_name, fqdn, ipv4, operating_system, device_type);
            let from_vuln = normalize_vuln(&vuln, 0).map(|record| record.asset);
            let from_asset = normalize_asset(&asset, 0).map(|normalized| normalized.asset);
            prop_assert!(from_vuln.is_ok(), "{from_vuln:?}");
            prop_assert_eq!(from_vuln, from_asset);
        }

        #[test]
        fn arbitrary_json_never_panics_as_an_asset(value in json_value(), index in 0_usize..10_000) {
            check_asset_outcome(&value, index)?;
            let as_record = json!({ "id": "x", "hostnames": value.clone(), "tags": value.clone(), "last_seen": value });
            check_asset_outcome(&as_record, index)?;
        }

        #[test]
        fn mutated_asset_records_never_panic(
            mutations in prop::collection::vec(
                (prop::sample::select(ASSET_FIELD_PATHS), prop::option::of(json_value())),
                1..5,
            ),
        ) {
            check_asset_outcome(&mutated(full_asset_record(), mutations), 7)?;
        }

        #[test]
        fn arbitrary_assets_chunks_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value()) {
            check_chunk(normalize_assets_chunk, &bytes, full_asset_record(), value)?;
        }
    }
}
