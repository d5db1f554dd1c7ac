//! `vulnflow normalize`, run as a user runs it: the built binary on fixture chunks.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).display().to_string()
}

fn vulnflow(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vulnflow"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vulnflow starts");
    if let Some(mut input) = child.stdin.take() {
        // A run that rejects its arguments exits before reading stdin.
        match input.write_all(stdin) {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
            result => result.expect("stdin accepts the chunk"),
        }
    }
    child.wait_with_output().expect("vulnflow finishes")
}

fn normalize(input: &str, stdin: &[u8]) -> Output {
    vulnflow(&["normalize", "--source", "tenable", "--input", input], stdin)
}

fn findings(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON finding"))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const WEB: &str = "cf165808-6a31-48e1-9cf3-c6c3174df51d";

#[test]
fn a_chunk_becomes_one_finding_per_line_and_a_summary() {
    let path = fixture("tenable-vulns-chunk.json");
    let output = normalize(&path, b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "normalized 4 findings on 3 assets from {path} (severity: 1 critical, 0 high, 2 medium, 0 low, 1 info; \
             state: 2 open, 1 reopened, 1 fixed)\n"
        )
    );

    let findings = findings(&output);
    assert_eq!(findings.len(), 4);
    let [on_443, on_8443, fixed, no_zone] = &findings[..] else { unreachable!("four findings") };

    // The same plugin on two ports of one asset stays two findings.
    assert_eq!(on_443["finding_id"], json!(format!("tenable/{WEB}/42873/443/tcp")));
    assert_eq!(on_8443["finding_id"], json!(format!("tenable/{WEB}/42873/8443/tcp")));
    assert_eq!(on_443["severity"], "medium");
    assert_eq!(on_443["cves"], json!(["CVE-2016-2183", "CVE-2016-6329"]));
    assert_eq!(on_443["os_category"], "windows_server");
    assert_eq!(on_443["first_seen"], "2023-11-20T08:15:30.123Z");
    assert!(on_443["output"].as_str().is_some_and(|output| output.contains("(&gt; 64-bit and &lt; 112-bit key")));
    // +02:00 on the wire, UTC in the record.
    assert_eq!(on_8443["port"], 8443);
    assert_eq!(on_8443["state"], "reopened");
    assert_eq!(on_8443["last_seen"], "2024-01-05T10:11:12Z");

    assert_eq!(fixed["state"], "fixed");
    assert_eq!(fixed["severity"], "critical");
    assert_eq!(fixed["last_fixed"], "2022-01-12T09:00:00Z");
    assert_eq!(fixed["os_category"], "linux");
    assert_eq!(fixed["vpr_score"], 9.9);

    // Timestamps without a zone are taken as UTC; no port means a host-level finding.
    assert_eq!(no_zone["first_seen"], "2024-01-04T22:00:00Z");
    assert_eq!(no_zone["last_seen"], "2024-01-05T10:11:12.250Z");
    assert_eq!(no_zone["finding_id"], "tenable/a91f04d2-7c3e-4b58-9e1d-60f2b8c4d735/19506/0/none");
    assert_eq!(no_zone["severity"], "info");
    assert_eq!(no_zone["os_category"], "network_device");
    assert_eq!(no_zone["output_truncated"], false);
    assert!(no_zone.get("cves").is_none(), "empty lists are omitted");
}

#[test]
fn a_chunk_can_come_from_stdin() {
    let path = fixture("tenable-vulns-chunk.json");
    let chunk = std::fs::read(&path).expect("the fixture exists");
    let from_stdin = normalize("-", &chunk);
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
    assert_eq!(from_stdin.stdout, normalize(&path, b"").stdout);
    assert!(stderr(&from_stdin).starts_with("normalized 4 findings on 3 assets from stdin ("));
}

#[test]
fn a_bad_record_names_its_index_and_field_and_writes_nothing() {
    let path = fixture("tenable-vulns-chunk-missing-plugin-id.json");
    let output = normalize(&path, b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no half-written chunk");
    assert_eq!(
        stderr(&output),
        format!(
            "error: cannot normalize {path}: record 3: field `plugin.id` is missing; \
             fix the record or re-export the chunk\n"
        )
    );
}

#[test]
fn input_that_is_not_a_chunk_is_bad_data() {
    for (input, expected) in [
        (&b"<html>502 Bad Gateway</html>"[..], "error: cannot normalize stdin: the chunk is not valid JSON: "),
        (
            &br#"{"error": "chunk expired"}"#[..],
            "error: cannot normalize stdin: the chunk is not a JSON array of records (found an object with 1 field)",
        ),
    ] {
        let output = normalize("-", input);
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stdout.is_empty());
        assert!(stderr(&output).starts_with(expected), "{}", stderr(&output));
    }
}

#[test]
fn an_unreadable_file_or_bad_usage_exits_with_2() {
    let missing = normalize("/nonexistent/chunk.json", b"");
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).starts_with("error: cannot read /nonexistent/chunk.json: "));

    let unknown_source = vulnflow(&["normalize", "--source", "nessus", "--input", "-"], b"[]");
    assert_eq!(unknown_source.status.code(), Some(2));
}

fn normalize_assets(input: &str, stdin: &[u8]) -> Output {
    vulnflow(&["normalize", "--source", "tenable", "--kind", "assets", "--input", input], stdin)
}

#[test]
fn an_assets_chunk_becomes_one_asset_per_line_and_a_summary() {
    let path = fixture("tenable-assets-chunk.json");
    let output = normalize_assets(&path, b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "normalized 6 assets from {path} (os: 1 windows_server, 1 windows_workstation, 1 linux, \
             1 macos, 1 network_device, 1 other; 2 deleted)\n"
        )
    );

    let assets = findings(&output);
    assert_eq!(assets.len(), 6);
    assert_eq!(
        assets[0],
        json!({
            "asset_id": WEB,
            "source": "tenable",
            "hostname": "web-01",
            "fqdn": "web-01.corp.example.com",
            "ipv4": "192.0.2.10",
            "operating_system": "Microsoft Windows Server 2019 Standard",
            "os_category": "windows_server"
        })
    );
    // The first of each list: two addresses, the first one kept.
    assert_eq!(assets[1]["ipv4"], "192.0.2.20");
    // No hostname: none is printed, and the system type is not needed (the OS says it).
    assert!(assets[2].get("hostname").is_none());
    assert_eq!(assets[2]["os_category"], "network_device");
    // An IP address in `hostnames` is not a name: the NetBIOS name is used.
    assert_eq!(assets[4]["hostname"], "LEGACY-07");
    assert_eq!(assets[4]["os_category"], "windows_workstation");
    // Empty lists leave the attributes out.
    assert_eq!(
        assets[5],
        json!({
            "asset_id": "0a2b4c6d-8e0f-4a1b-9c3d-5e7f9a1b3c5d",
            "source": "tenable",
            "ipv4": "192.0.2.99",
            "os_category": "other"
        })
    );
}

#[test]
fn assets_and_findings_of_the_same_hosts_agree() {
    let assets = findings(&normalize_assets(&fixture("tenable-assets-chunk.json"), b""));
    let findings = findings(&normalize(&fixture("tenable-vulns-chunk.json"), b""));
    assert_eq!(findings.len(), 4);
    for finding in &findings {
        let asset = assets
            .iter()
            .find(|asset| asset["asset_id"] == finding["asset_id"])
            .expect("every finding's asset is in the assets chunk");
        for field in ["hostname", "ipv4", "os_category"] {
            assert_eq!(asset.get(field), finding.get(field), "{field} of {}", finding["asset_id"]);
        }
    }
}

#[test]
fn an_assets_chunk_can_come_from_stdin() {
    let path = fixture("tenable-assets-chunk.json");
    let chunk = std::fs::read(&path).expect("the fixture exists");
    let from_stdin = normalize_assets("-", &chunk);
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
    assert_eq!(from_stdin.stdout, normalize_assets(&path, b"").stdout);
    assert!(stderr(&from_stdin).starts_with("normalized 6 assets from stdin (os: "));

    let one: Vec<Value> = serde_json::from_slice(&chunk).expect("an array");
    let single = serde_json::to_vec(&one[..1]).expect("serializes");
    assert!(
        stderr(&normalize_assets("-", &single)).starts_with("normalized 1 asset from stdin (os: 1 windows_server, ")
    );
}

#[test]
fn a_bad_asset_record_names_its_index_and_field_and_writes_nothing() {
    let chunk = std::fs::read(fixture("tenable-assets-chunk.json")).expect("the fixture exists");
    let mut records: Vec<Value> = serde_json::from_slice(&chunk).expect("an array");
    if let Some(record) = records[2].as_object_mut() {
        record.remove("id");
    }
    records[4]["last_seen"] = json!("yesterday");
    let output = normalize_assets("-", &serde_json::to_vec(&records).expect("serializes"));
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no half-written chunk");
    assert_eq!(
        stderr(&output),
        "error: cannot normalize stdin: record 2: field `id` is missing; \
         fix the record or re-export the chunk\n"
    );

    records[2]["id"] = json!("a91f04d2-7c3e-4b58-9e1d-60f2b8c4d735");
    let output = normalize_assets("-", &serde_json::to_vec(&records).expect("serializes"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: cannot normalize stdin: record 4: field `last_seen` must be an RFC 3339 or ISO 8601 \
         time, or unix seconds, found a string (\"yesterday\"); fix the record or re-export the chunk\n"
    );
}

#[test]
fn input_that_is_not_an_assets_chunk_is_bad_data() {
    let output = normalize_assets("-", br#"{"error": "chunk expired"}"#);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        stderr(&output),
        "error: cannot normalize stdin: the chunk is not a JSON array of records (found an object with 1 field); \
         pass one chunk of an assets export, as the export API returns it\n"
    );
    let missing = normalize_assets("/nonexistent/assets.json", b"");
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).starts_with("error: cannot read /nonexistent/assets.json: "));
}

#[test]
fn the_kind_defaults_to_vulns_and_must_be_known() {
    let path = fixture("tenable-vulns-chunk.json");
    let explicit = vulnflow(&["normalize", "--source", "tenable", "--kind", "vulns", "--input", &path], b"");
    assert_eq!(explicit.status.code(), Some(0), "{}", stderr(&explicit));
    assert_eq!(explicit.stdout, normalize(&path, b"").stdout);

    // A vulns chunk read as assets fails on its first record, which has no `id`.
    let mismatched = normalize_assets(&path, b"");
    assert_eq!(mismatched.status.code(), Some(1));
    assert!(stderr(&mismatched).contains("record 0: field `id` is missing"));

    let unknown = vulnflow(&["normalize", "--source", "tenable", "--kind", "scans", "--input", "-"], b"[]");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("invalid value 'scans' for '--kind <KIND>'"), "{}", stderr(&unknown));
}
