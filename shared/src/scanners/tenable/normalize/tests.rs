//! Tests of the Tenable normalizers. Where the vulns and the assets exports share a rule
//! (the host facts, times, record errors, chunks), one table of cases runs against both
//! ([`EXPORTS`]), each export writing a case's values its own way; what only one export
//! has is tested on its own.

use super::*;
use crate::normalize::DISPLAY_OUTPUT_LIMIT;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

const ASSET_UUID: &str = "cf165808-6a31-48e1-9cf3-c6c3174df51d";
const ROUTER_ID: &str = "a91f04d2-7c3e-4b58-9e1d-60f2b8c4d735";

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

/// Only the required fields, of a host nothing else is known of.
fn minimal_record() -> Value {
    json!({
        "asset": { "uuid": ROUTER_ID },
        "plugin": { "id": 19506 },
        "severity_id": 0,
        "state": "OPEN",
        "first_found": "2024-01-01T00:00:00Z",
        "last_found": "2024-01-05T10:11:12Z"
    })
}

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

fn minimal_asset_record() -> Value {
    json!({ "id": ROUTER_ID })
}

/// The host both full records describe.
fn web_01() -> Asset {
    Asset {
        asset_id: ASSET_UUID.to_owned(),
        source: ScannerKind::Tenable,
        hostname: Some("web-01".to_owned()),
        fqdn: Some("web-01.corp.example.com".to_owned()),
        ipv4: Some("192.0.2.10".to_owned()),
        operating_system: Some("Microsoft Windows Server 2019 Standard".to_owned()),
        os_category: OsCategory::WindowsServer,
    }
}

/// The host both minimal records describe: nothing is known of it but its id.
fn unknown_router() -> Asset {
    Asset {
        asset_id: ROUTER_ID.to_owned(),
        source: ScannerKind::Tenable,
        hostname: None,
        fqdn: None,
        ipv4: None,
        operating_system: None,
        os_category: OsCategory::Other,
    }
}

fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, second).single().expect("a valid test time")
}

fn normalized(record: &Value) -> NormalizedRecord {
    normalize_vuln(record, 0).expect("the record normalizes")
}

fn normalized_asset(record: &Value) -> NormalizedAsset {
    normalize_asset(record, 0).expect("the asset record normalizes")
}

/// `record` with the field or array item at `pointer` set to `value`; its parent must
/// exist, so that a mistyped pointer fails the test instead of testing nothing.
fn with(mut record: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    match record.pointer_mut(parent) {
        Some(Value::Object(object)) => {
            object.insert(key.to_owned(), value);
        }
        Some(Value::Array(items)) => items[key.parse::<usize>().expect("an array index")] = value,
        _ => panic!("the record has no object or array at {parent:?}"),
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

// ---- The two exports, for the cases they share ----

/// One of Tenable's exports, each a normalizer of its own records.
#[derive(Debug, Clone, Copy)]
enum Export {
    Vulns,
    Assets,
}

const EXPORTS: [Export; 2] = [Export::Vulns, Export::Assets];

/// A host attribute both exports hold, each in a field of its own (a dotted path, as
/// errors name it).
#[derive(Debug, Clone, Copy)]
struct Attribute {
    vulns: &'static str,
    assets: &'static str,
}

const ID: Attribute = Attribute { vulns: "asset.uuid", assets: "id" };
const HOSTNAME: Attribute = Attribute { vulns: "asset.hostname", assets: "hostnames" };
const NETBIOS_NAME: Attribute = Attribute { vulns: "asset.netbios_name", assets: "netbios_names" };
const FQDN: Attribute = Attribute { vulns: "asset.fqdn", assets: "fqdns" };
const IPV4: Attribute = Attribute { vulns: "asset.ipv4", assets: "ipv4s" };
const OPERATING_SYSTEM: Attribute = Attribute { vulns: "asset.operating_system", assets: "operating_systems" };
const DEVICE_TYPE: Attribute = Attribute { vulns: "asset.device_type", assets: "system_types" };
const LAST_SEEN: Attribute = Attribute { vulns: "last_found", assets: "last_seen" };

/// What a case writes into an attribute's field.
#[derive(Debug, Clone)]
enum Fact {
    /// One value, written as the export's full record writes that field: alone, or as
    /// a list of one.
    One(&'static str),
    /// The export's way of saying it knows none: vuln records leave the field out,
    /// asset records send `[]`.
    Nothing,
    /// The field left out.
    Missing,
    /// This JSON, whatever the export.
    Json(Value),
}

impl Export {
    fn full_record(self) -> Value {
        match self {
            Export::Vulns => full_record(),
            Export::Assets => full_asset_record(),
        }
    }

    fn minimal_record(self) -> Value {
        match self {
            Export::Vulns => minimal_record(),
            Export::Assets => minimal_asset_record(),
        }
    }

    fn field(self, attribute: Attribute) -> &'static str {
        match self {
            Export::Vulns => attribute.vulns,
            Export::Assets => attribute.assets,
        }
    }

    /// `record` with `fact` written into the field of `attribute`.
    fn with(self, record: Value, attribute: Attribute, fact: Fact) -> Value {
        let pointer = format!("/{}", self.field(attribute).replace('.', "/"));
        match (fact, self) {
            (Fact::One(text), _) if self.full_record().pointer(&pointer).is_some_and(Value::is_array) => {
                with(record, &pointer, json!([text]))
            }
            (Fact::One(text), _) => with(record, &pointer, json!(text)),
            (Fact::Nothing, Export::Assets) => with(record, &pointer, json!([])),
            (Fact::Nothing, Export::Vulns) | (Fact::Missing, _) => without(record, &pointer),
            (Fact::Json(value), _) => with(record, &pointer, value),
        }
    }

    /// The host a record describes, or why the record is refused.
    fn asset_of(self, record: &Value, index: usize) -> Result<Asset, RecordError> {
        match self {
            Export::Vulns => normalize_vuln(record, index).map(|NormalizedRecord { finding, asset }| {
                // A finding carries copies of its host's attributes.
                assert_eq!(
                    (&finding.asset_id, &finding.hostname, &finding.ipv4, finding.os_category),
                    (&asset.asset_id, &asset.hostname, &asset.ipv4, asset.os_category),
                    "the finding agrees with its asset"
                );
                asset
            }),
            Export::Assets => normalize_asset(record, index).map(|normalized| normalized.asset),
        }
    }

    /// The asset id of each record of a chunk, in order, or why the chunk is refused.
    fn chunk_asset_ids(self, chunk: &[u8]) -> Result<Vec<String>, ChunkError> {
        match self {
            Export::Vulns => normalize_vulns_chunk(chunk)
                .map(|records| records.into_iter().map(|record| record.asset.asset_id).collect()),
            Export::Assets => normalize_assets_chunk(chunk)
                .map(|assets| assets.into_iter().map(|normalized| normalized.asset.asset_id).collect()),
        }
    }
}

/// The full record of each of `exports`, with a case's facts written in, describes the
/// case's host.
fn assert_hosts(exports: &[Export], cases: &[(Vec<(Attribute, Fact)>, Asset)]) {
    for &export in exports {
        for (facts, expected) in cases {
            let record = facts
                .iter()
                .cloned()
                .fold(export.full_record(), |record, (attribute, fact)| export.with(record, attribute, fact));
            assert_eq!(export.asset_of(&record, 0).as_ref(), Ok(expected), "{export:?} with {facts:?}");
        }
    }
}

/// The record is refused as record 3 of its chunk, naming `field` and saying why.
fn assert_refused(export: Export, record: &Value, field: &str, reason: &str) {
    let error = export.asset_of(record, 3).expect_err("the record is refused");
    assert_eq!(error.to_string(), format!("record 3: field `{field}` {reason}"), "{export:?}");
    assert_eq!(error, RecordError { index: 3, field: field.to_owned(), reason: reason.to_owned() });
}

// ---- Rules both exports share ----

#[test]
fn the_hostname_is_the_first_name_else_the_first_netbios_name() {
    let netbios_name = || Asset { hostname: Some("WEB-01".to_owned()), ..web_01() };
    let no_name = || Asset { hostname: None, ..web_01() };
    let mut cases = vec![
        (vec![(HOSTNAME, Fact::One("  "))], netbios_name()),
        (vec![(HOSTNAME, Fact::Json(Value::Null))], netbios_name()),
        (vec![(HOSTNAME, Fact::Nothing)], netbios_name()),
        (vec![(HOSTNAME, Fact::Nothing), (NETBIOS_NAME, Fact::Nothing)], no_name()),
    ];
    // An IP address is never a hostname: Tenable fills a vuln record's hostname with one
    // when it knows no name (its own example record has `"hostname": "192.0.2.225"`).
    for address in ["192.0.2.225", "192.0.2.10", "2001:db8::1"] {
        cases.push((vec![(HOSTNAME, Fact::One(address))], netbios_name()));
        cases.push((vec![(HOSTNAME, Fact::One(address)), (NETBIOS_NAME, Fact::Nothing)], no_name()));
    }
    assert_hosts(&EXPORTS, &cases);
    // Only asset records send a list of hostnames.
    let names = vec![(HOSTNAME, Fact::Json(json!([" ", null, "web-01b", "web-01c"])))];
    let web_01b = Asset { hostname: Some("web-01b".to_owned()), ..web_01() };
    assert_hosts(&[Export::Assets], &[(names, web_01b)]);
}

#[test]
fn list_fields_take_a_string_or_the_first_of_an_array() {
    let lists = vec![
        (IPV4, Fact::Json(json!(["192.0.2.20", "192.0.2.21"]))),
        (OPERATING_SYSTEM, Fact::Json(json!("Ubuntu 22.04"))),
        (NETBIOS_NAME, Fact::Json(json!(["WEB-20"]))),
        (HOSTNAME, Fact::Missing),
    ];
    let web_20 = Asset {
        hostname: Some("WEB-20".to_owned()),
        ipv4: Some("192.0.2.20".to_owned()),
        operating_system: Some("Ubuntu 22.04".to_owned()),
        os_category: OsCategory::Linux,
        ..web_01()
    };
    let operating_systems = json!(["Linux Kernel 5.15 on Ubuntu 22.04", "Microsoft Windows 10"]);
    let first_os_decides = Asset {
        operating_system: Some("Linux Kernel 5.15 on Ubuntu 22.04".to_owned()),
        os_category: OsCategory::Linux,
        ..web_01()
    };
    assert_hosts(
        &EXPORTS,
        &[(lists, web_20), (vec![(OPERATING_SYSTEM, Fact::Json(operating_systems))], first_os_decides)],
    );
}

#[test]
fn the_device_type_decides_only_when_the_os_says_nothing() {
    let router = (DEVICE_TYPE, Fact::One("router"));
    let cases = [
        (vec![router.clone()], web_01()),
        (
            vec![router.clone(), (OPERATING_SYSTEM, Fact::One("VxWorks 6"))],
            Asset {
                operating_system: Some("VxWorks 6".to_owned()),
                os_category: OsCategory::NetworkDevice,
                ..web_01()
            },
        ),
        (
            vec![router, (OPERATING_SYSTEM, Fact::Nothing)],
            Asset { operating_system: None, os_category: OsCategory::NetworkDevice, ..web_01() },
        ),
        // Issue 11's switch: "embedded" says nothing, the OS string says enough.
        (
            vec![
                (DEVICE_TYPE, Fact::One("embedded")),
                (OPERATING_SYSTEM, Fact::One("ExtremeXOS Network Operating System")),
            ],
            Asset {
                operating_system: Some("ExtremeXOS Network Operating System".to_owned()),
                os_category: OsCategory::NetworkDevice,
                ..web_01()
            },
        ),
    ];
    assert_hosts(&EXPORTS, &cases);
}

#[test]
fn times_are_stored_in_utc() {
    let cases = [
        json!("2024-01-05T10:11:12Z"),
        json!("2024-01-05T12:11:12+02:00"),
        json!("2024-01-05T10:11:12"),
        json!("2024-01-05 10:11:12"),
        json!(1_704_449_472),
        json!("1704449472"),
        json!(1_704_449_472_000_i64),
    ];
    let expected = utc(2024, 1, 5, 10, 11, 12);
    for value in cases {
        let record = with(with(full_record(), "/last_found", value.clone()), "/first_found", value.clone());
        let finding = normalized(&record).finding;
        assert_eq!((finding.first_seen, finding.last_seen), (expected, expected), "{value}");
        let record = with(full_asset_record(), "/last_seen", value.clone());
        assert_eq!(normalized_asset(&record).last_seen, Some(expected), "{value}");
    }
    let serialized = serde_json::to_value(normalized(&full_record()).finding).expect("serializes");
    assert_eq!(serialized["last_seen"], json!("2024-01-05T10:11:12Z"));
}

#[test]
fn errors_name_the_record_and_the_field() {
    let cases = [
        (ID, Fact::Missing, "is missing"),
        (ID, Fact::Json(json!(" ")), "must be a non-empty string, found a string (\" \")"),
        (ID, Fact::Json(json!("")), "must be a non-empty string, found a string (\"\")"),
        (ID, Fact::Json(json!(42)), "must be a non-empty string, found a number (42)"),
        (
            LAST_SEEN,
            Fact::Json(json!("last tuesday")),
            "must be an RFC 3339 or ISO 8601 time, or unix seconds, found a string (\"last tuesday\")",
        ),
        (
            IPV4,
            Fact::Json(json!({ "0": "192.0.2.10" })),
            "must be a string or an array of strings, found an object with 1 field",
        ),
        (
            OPERATING_SYSTEM,
            Fact::Json(json!({})),
            "must be a string or an array of strings, found an object with 0 fields",
        ),
    ];
    let not_objects = [
        (json!([1, 2]), "must be an object, found an array of 2 items"),
        (json!("cf165808"), "must be an object, found a string (\"cf165808\")"),
    ];
    for export in EXPORTS {
        for (attribute, fact, reason) in &cases {
            let record = export.with(export.full_record(), *attribute, fact.clone());
            assert_refused(export, &record, export.field(*attribute), reason);
        }
        for (record, reason) in &not_objects {
            assert_refused(export, record, "record", reason);
        }
    }
}

#[test]
fn errors_name_fields_that_only_one_export_has() {
    let vuln_refusals = vec![
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
    ];
    let asset_refusals = vec![
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
    ];
    for (export, refusals) in [(Export::Vulns, vuln_refusals), (Export::Assets, asset_refusals)] {
        for (record, field, reason) in refusals {
            assert_refused(export, &record, field, reason);
        }
    }
}

#[test]
fn error_excerpts_never_dump_a_whole_value() {
    let cases = [
        (Export::Vulns, with(full_record(), "/plugin/id", json!("9".repeat(1_000_000) + "x"))),
        (Export::Assets, with(full_asset_record(), "/last_seen", json!("x".repeat(1_000_000)))),
    ];
    for (export, record) in cases {
        let message = export.asset_of(&record, 0).expect_err("the record is refused").to_string();
        assert!(message.len() < 250, "{export:?}: {} bytes", message.len());
    }
}

#[test]
fn a_chunk_is_an_array_of_records() {
    for export in EXPORTS {
        let chunk = serde_json::to_vec(&json!([export.full_record(), export.minimal_record()])).expect("serializes");
        assert_eq!(export.chunk_asset_ids(&chunk), Ok(vec![ASSET_UUID.to_owned(), ROUTER_ID.to_owned()]));
        assert_eq!(export.chunk_asset_ids(b"[]"), Ok(Vec::new()), "{export:?}");
    }
}

#[test]
fn a_chunk_fails_on_its_first_bad_record() {
    for export in EXPORTS {
        let bad = export.with(export.full_record(), ID, Fact::Missing);
        let chunk =
            serde_json::to_vec(&json!([export.full_record(), export.minimal_record(), bad, null])).expect("serializes");
        let error = export.chunk_asset_ids(&chunk).expect_err("the chunk is rejected");
        let field = export.field(ID);
        assert_eq!(error.to_string(), format!("record 2: field `{field}` is missing"));
        assert_eq!(
            error,
            ChunkError::Record(RecordError { index: 2, field: field.to_owned(), reason: "is missing".to_owned() })
        );
    }
}

#[test]
fn a_chunk_that_is_not_a_json_array_is_rejected() {
    for export in EXPORTS {
        for cut_short in [&b"[{\"asset\":"[..], b"[{\"id\":", b""] {
            let refused = export.chunk_asset_ids(cut_short);
            assert!(matches!(refused, Err(ChunkError::NotJson(_))), "{export:?}: {refused:?}");
        }
        assert_eq!(
            export.chunk_asset_ids(br#"{"error": "export expired"}"#),
            Err(ChunkError::NotArray("an object with 1 field".to_owned()))
        );
        assert_eq!(
            export.chunk_asset_ids(b"null").map_err(|error| error.to_string()),
            Err("the chunk is not a JSON array of records (found null)".to_owned())
        );
    }
}

// ---- Vuln export records ----

#[test]
fn a_full_record_maps_every_field() {
    let NormalizedRecord { finding, asset } = normalized(&full_record());
    assert_eq!(asset, web_01());
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
                "Reconfigure the affected application if possible to avoid use of medium strength ciphers.".to_owned()
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
    assert_eq!(asset, unknown_router());
    assert_eq!(finding.title, "Plugin 19506");
    assert_eq!((finding.port, finding.protocol.as_str()), (0, "none"));
    assert_eq!(finding.finding_id, format!("tenable/{ROUTER_ID}/19506/0/none"));
    assert_eq!(finding.severity, Severity::Info);
    assert!(finding.cves.is_empty());
    assert_eq!(
        (&finding.service, &finding.family, &finding.synopsis, &finding.solution, &finding.output),
        (&None, &None, &None, &None, &None)
    );
    assert_eq!((finding.cvss3_base_score, finding.vpr_score, finding.last_fixed), (None, None, None));
    assert!(!finding.output_truncated);
    assert_eq!(finding.os_category, OsCategory::Other);
}

#[test]
fn nulls_and_blanks_count_as_absent() {
    for absent in [Value::Null, json!("  ")] {
        let record = with(full_record(), "/plugin/name", absent.clone());
        assert_eq!(normalized(&record).finding.title, "Plugin 42873", "{absent}");
    }
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
    let cases = cases.map(|(operating_system, expected)| (json!([operating_system]), expected));
    assert_findings(full_record(), "/asset/operating_system", cases, |finding| finding.os_category);
}

#[test]
fn severity_comes_from_its_name_or_its_id() {
    let names = [
        (json!("info"), Severity::Info),
        (json!("Informational"), Severity::Info),
        (json!("LOW"), Severity::Low),
        (json!("medium"), Severity::Medium),
        (json!("High"), Severity::High),
        (json!("critical"), Severity::Critical),
    ];
    let without_id = with(minimal_record(), "/severity_id", Value::Null);
    assert_findings(without_id, "/severity", names, |finding| finding.severity);
    let ids = [
        (json!(0), Severity::Info),
        (json!(1), Severity::Low),
        (json!(2), Severity::Medium),
        (json!(3), Severity::High),
        (json!("4"), Severity::Critical),
    ];
    assert_findings(minimal_record(), "/severity_id", ids, |finding| finding.severity);
}

#[test]
fn states_are_read_case_insensitively_with_their_synonyms() {
    let states = [
        (json!("OPEN"), FindingState::Open),
        (json!("open"), FindingState::Open),
        (json!("ACTIVE"), FindingState::Open),
        (json!("New"), FindingState::Open),
        (json!("REOPENED"), FindingState::Reopened),
        (json!("Re-Opened"), FindingState::Reopened),
        (json!("RESURFACED"), FindingState::Reopened),
        (json!("FIXED"), FindingState::Fixed),
    ];
    assert_findings(minimal_record(), "/state", states, |finding| finding.state);
}

/// Each value, written at `pointer` of `record`, gives a finding that `read` says is as expected.
fn assert_findings<T: PartialEq + std::fmt::Debug>(
    record: Value,
    pointer: &str,
    cases: impl IntoIterator<Item = (Value, T)>,
    read: fn(&Finding) -> T,
) {
    for (value, expected) in cases {
        let finding = normalized(&with(record.clone(), pointer, value.clone())).finding;
        assert_eq!(read(&finding), expected, "{pointer}: {value}");
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

// ---- Asset export records ----

#[test]
fn a_full_asset_record_maps_every_field() {
    assert_eq!(
        normalized_asset(&full_asset_record()),
        NormalizedAsset {
            asset: web_01(),
            last_seen: Some(utc(2024, 1, 5, 10, 11, 12)),
            tags: vec![("env".to_owned(), "prod".to_owned()), ("Location".to_owned(), "Fort Worth".to_owned())],
            deleted: false,
        }
    );
}

#[test]
fn an_asset_record_with_only_an_id_has_an_empty_asset() {
    let normalized = normalized_asset(&minimal_asset_record());
    assert_eq!(
        normalized,
        NormalizedAsset { asset: unknown_router(), last_seen: None, tags: Vec::new(), deleted: false }
    );
    let empty_lists = json!({
        "id": ROUTER_ID, "hostnames": [], "netbios_names": [], "fqdns": [], "ipv4s": [],
        "operating_systems": [], "system_types": [], "tags": [], "last_seen": null,
        "terminated_at": null, "deleted_at": null
    });
    assert_eq!(normalized_asset(&empty_lists), normalized);
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
        vec![("env".to_owned(), "staging".to_owned()), ("owner".to_owned(), "platform-team".to_owned())]
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

// ---- Properties ----

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

/// The fields of a vuln record that mutations pick from.
const VULN_FIELD_PATHS: &[&str] = &[
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

/// The fields of an asset record that mutations pick from.
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

/// `full` with each mutation applied in turn.
fn mutated(mut full: Value, mutations: Vec<(&str, Option<Value>)>) -> Value {
    for (path, replacement) in mutations {
        mutate(&mut full, path, replacement);
    }
    full
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

/// What the properties need of each export.
impl Export {
    fn field_paths(self) -> &'static [&'static str] {
        match self {
            Export::Vulns => VULN_FIELD_PATHS,
            Export::Assets => ASSET_FIELD_PATHS,
        }
    }

    /// A record holding `value` in several of its fields at once.
    fn holding_everywhere(self, value: Value) -> Value {
        match self {
            Export::Vulns => json!({ "asset": value.clone(), "plugin": value.clone(), "port": value }),
            Export::Assets => {
                json!({ "id": "x", "hostnames": value.clone(), "tags": value.clone(), "last_seen": value })
            }
        }
    }

    /// A record either normalizes into something sound or fails naming its index and a field.
    fn check_outcome(self, record: &Value, index: usize) -> Result<(), TestCaseError> {
        match self {
            Export::Vulns => check_record(normalize_vuln, record, index, |NormalizedRecord { finding, asset }| {
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
            }),
            Export::Assets => {
                check_record(normalize_asset, record, index, |NormalizedAsset { asset, tags, .. }| {
                    prop_assert!(!asset.asset_id.is_empty());
                    prop_assert!(asset.hostname.is_none_or(|name| !name.is_empty() && name.parse::<IpAddr>().is_err()));
                    prop_assert!(tags.iter().all(|(key, value)| !key.is_empty() && !value.is_empty()));
                    Ok(())
                })
            }
        }
    }

    /// Any bytes give a result or an error, never a panic; a full record followed by
    /// `value` gives two records or an error naming the second.
    fn check_chunk(self, bytes: &[u8], value: Value) -> Result<(), TestCaseError> {
        let _ = self.chunk_asset_ids(bytes);
        let chunk = serde_json::to_vec(&json!([self.full_record(), value])).unwrap_or_default();
        match self.chunk_asset_ids(&chunk) {
            Ok(ids) => prop_assert_eq!(ids.len(), 2),
            Err(ChunkError::Record(error)) => prop_assert_eq!(error.index, 1),
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
        Ok(())
    }
}

/// The same host facts, written the way each export writes them into its minimal record.
fn host_records(facts: [(Attribute, Option<&'static str>); 6]) -> (Value, Value) {
    let [vuln, asset] = EXPORTS.map(|export| {
        facts.iter().fold(export.minimal_record(), |record, &(attribute, fact)| {
            export.with(record, attribute, fact.map_or(Fact::Nothing, Fact::One))
        })
    });
    (vuln, asset)
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics(value in json_value(), index in 0_usize..10_000) {
        for export in EXPORTS {
            export.check_outcome(&value, index)?;
            export.check_outcome(&export.holding_everywhere(value.clone()), index)?;
        }
    }

    #[test]
    fn mutated_records_never_panic(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(json_value())), 1..5),
    ) {
        // The same values go into the records of both exports, each at a field of its own.
        for export in EXPORTS {
            let mutations =
                mutations.iter().map(|(field, value)| (*field.get(export.field_paths()), value.clone())).collect();
            export.check_outcome(&mutated(export.full_record(), mutations), 7)?;
        }
    }

    #[test]
    fn arbitrary_chunks_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value()) {
        for export in EXPORTS {
            export.check_chunk(&bytes, value.clone())?;
        }
    }

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
        let (vuln, asset) = host_records([
            (HOSTNAME, hostname),
            (NETBIOS_NAME, netbios_name),
            (FQDN, fqdn),
            (IPV4, ipv4),
            (OPERATING_SYSTEM, operating_system),
            (DEVICE_TYPE, device_type),
        ]);
        let from_vuln = normalize_vuln(&vuln, 0).map(|record| record.asset);
        let from_asset = normalize_asset(&asset, 0).map(|normalized| normalized.asset);
        prop_assert!(from_vuln.is_ok(), "{from_vuln:?}");
        prop_assert_eq!(from_vuln, from_asset);
    }
}

/// Reading a chunk skips the fields the normalizer does not read ([`VULN_FIELDS`],
/// [`ASSET_FIELDS`]): records with every field give what their whole JSON gives, so a
/// field the normalizer reads cannot be missing from those lists.
#[test]
fn records_read_from_a_chunk_with_only_the_wanted_fields_normalize_as_whole_ones() {
    let dataset = tenable_simulator::Dataset::generate(5, 40, 4, SIMULATOR_ANCHOR);
    let mut vulns = dataset.vulns().to_vec();
    vulns.push(full_record());
    let whole: Vec<NormalizedRecord> =
        vulns.iter().enumerate().map(|(index, record)| normalize_vuln(record, index).expect("normalizes")).collect();
    let chunk = serde_json::to_vec(&vulns).expect("serializes");
    assert_eq!(normalize_vulns_chunk(&chunk).expect("normalizes"), whole);

    let mut assets = dataset.assets().to_vec();
    assets.push(full_asset_record());
    let whole: Vec<NormalizedAsset> =
        assets.iter().enumerate().map(|(index, record)| normalize_asset(record, index).expect("normalizes")).collect();
    let chunk = serde_json::to_vec(&assets).expect("serializes");
    assert_eq!(normalize_assets_chunk(&chunk).expect("normalizes"), whole);
}
