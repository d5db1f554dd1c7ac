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

/// The Qualys wire format's sample pages, which the normalizer's own tests read too.
fn qualys_page(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/src/scanners/qualys/testdata")
        .join(name)
        .display()
        .to_string()
}

fn normalize_qualys(extra: &[&str], input: &str, stdin: &[u8]) -> Output {
    let args = [&["normalize", "--source", "qualys", "--input", input][..], extra].concat();
    vulnflow(&args, stdin)
}

#[test]
fn a_qualys_page_becomes_one_finding_per_detection_and_says_where_the_next_page_is() {
    let path = qualys_page("host-list-detection.xml");
    let output = normalize_qualys(&[], &path, b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "normalized 2 findings on 1 asset from {path} (severity: 0 critical, 0 high, 1 medium, 1 low, 0 info; \
             state: 1 open, 0 reopened, 1 fixed)\n\
             the page was truncated: the next one is https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/\
             ?action=list&truncation_limit=1000&id_min=1234568\n"
        )
    );
    let findings = findings(&output);
    assert_eq!(findings.len(), 2, "the WARNING is no finding");
    assert_eq!(
        findings[0],
        json!({
            "finding_id": "qualys/1234567/38170/443/tcp",
            "source": "qualys",
            "asset_id": "1234567",
            "plugin_id": "38170",
            "port": 443,
            "protocol": "tcp",
            "severity": "medium",
            "state": "open",
            "title": "QID 38170",
            "output": "Certificate #0 CN=web01 &#39;quoted&#39; &amp;apos;raw&amp;apos; &lt;b&gt;x&lt;/b&gt;",
            "output_truncated": false,
            "first_seen": "2023-01-01T00:00:00Z",
            "last_seen": "2024-04-30T22:00:00Z",
            "hostname": "web01",
            "ipv4": "10.0.0.5",
            "os_category": "windows_server"
        })
    );
    // Host-level (no PORT), potential, fixed.
    assert_eq!(findings[1]["finding_id"], "qualys/1234567/105943/0/none");
    assert_eq!((&findings[1]["severity"], &findings[1]["state"]), (&json!("low"), &json!("fixed")));
    assert_eq!(findings[1]["last_fixed"], "2024-04-30T22:00:00Z");
}

#[test]
fn a_knowledge_base_page_gives_qualys_findings_their_titles() {
    let knowledge_base = qualys_page("knowledge-base.xml");
    let output = normalize_qualys(&["--knowledge-base", &knowledge_base], &qualys_page("host-list-detection.xml"), b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let findings = findings(&output);
    let described = &findings[0];
    assert_eq!(described["title"], "SSL Certificate - Subject Common Name Does Not Match Server FQDN");
    assert_eq!(described["family"], "General remote services");
    assert_eq!(described["cves"], json!(["CVE-2021-1234"]));
    assert_eq!(described["cvss3_base_score"], 5.3);
    assert_eq!(described["solution"], "Get a certificate whose CN matches the FQDN.");
    assert_eq!(findings[1]["title"], "QID 105943", "a QID the KnowledgeBase page does not hold");
}

#[test]
fn a_qualys_page_from_stdin_prints_its_hosts_as_assets() {
    let page = std::fs::read(qualys_page("host-list-detection.xml")).expect("the sample page exists");
    let output = normalize_qualys(&["--kind", "assets"], "-", &page);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "normalized 1 asset from stdin (os: 1 windows_server, 0 windows_workstation, 0 linux, 0 macos, \
         0 network_device, 0 other; 0 deleted)\n"
    );
    assert_eq!(
        findings(&output),
        [json!({
            "asset_id": "1234567",
            "source": "qualys",
            "hostname": "web01",
            "fqdn": "web01.corp.example",
            "ipv4": "10.0.0.5",
            "operating_system": "Windows Server 2019 Standard 1809",
            "os_category": "windows_server"
        })]
    );
}

#[test]
fn a_bad_qualys_detection_names_its_host_qid_and_field_and_writes_nothing() {
    let page = std::fs::read_to_string(qualys_page("host-list-detection.xml")).expect("the sample page exists");
    let bad = page.replacen("<STATUS>Active</STATUS>", "<STATUS>Closed</STATUS>", 1);
    let output = normalize_qualys(&[], "-", bad.as_bytes());
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no half-written page");
    assert_eq!(
        stderr(&output),
        "error: cannot normalize stdin: record 0: field `HOST[ID=1234567].DETECTION[QID=38170].STATUS` must be \
         one of New, Active, Re-Opened, Fixed, found \"Closed\"; fix the record or fetch the page again\n"
    );
    let no_id = page.replacen("<ID>1234567</ID>", "", 1);
    let output = normalize_qualys(&["--kind", "assets"], "-", no_id.as_bytes());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: cannot normalize stdin: record 0: field `HOST[0].ID` is missing; fix the record or fetch the page \
         again\n"
    );
}

#[test]
fn an_error_answer_or_a_tenable_chunk_is_not_a_qualys_page() {
    let simple_return = std::fs::read(qualys_page("simple-return.xml")).expect("the sample answer exists");
    let tenable_chunk = std::fs::read(fixture("tenable-vulns-chunk.json")).expect("the fixture exists");
    for (input, expected) in [
        (
            simple_return,
            "error: cannot normalize stdin: the page is a SIMPLE_RETURN error (code 1965: This API cannot be run \
             again for another 30 seconds.), not a Host List Detection page (HOST_LIST_VM_DETECTION_OUTPUT); \
             pass one Host List Detection page, as the API returns it\n",
        ),
        (
            tenable_chunk,
            "error: cannot normalize stdin: the page is not well-formed XML: it has text outside its root element: ",
        ),
    ] {
        let output = normalize_qualys(&[], "-", &input);
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stdout.is_empty());
        assert!(stderr(&output).starts_with(expected), "{}", stderr(&output));
    }
}

#[test]
fn the_knowledge_base_goes_with_qualys_findings_only() {
    let knowledge_base = qualys_page("knowledge-base.xml");
    let page = qualys_page("host-list-detection.xml");
    let with_tenable = vulnflow(
        &[
            "normalize",
            "--source",
            "tenable",
            "--input",
            &fixture("tenable-vulns-chunk.json"),
            "--knowledge-base",
            &knowledge_base,
        ],
        b"",
    );
    let with_assets = normalize_qualys(&["--kind", "assets", "--knowledge-base", &knowledge_base], &page, b"");
    for output in [with_tenable, with_assets] {
        assert_eq!(output.status.code(), Some(2));
        assert_eq!(
            stderr(&output),
            "error: --knowledge-base describes Qualys findings: it goes with --source qualys --kind vulns\n"
        );
    }
    let missing = normalize_qualys(&["--knowledge-base", "/nonexistent/kb.xml"], &page, b"");
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).starts_with("error: cannot read /nonexistent/kb.xml: "), "{}", stderr(&missing));

    let not_a_knowledge_base = normalize_qualys(&["--knowledge-base", &page], &page, b"");
    assert_eq!(not_a_knowledge_base.status.code(), Some(1));
    assert_eq!(
        stderr(&not_a_knowledge_base),
        format!(
            "error: cannot read the KnowledgeBase {page}: the page is a <HOST_LIST_VM_DETECTION_OUTPUT> document, \
             not a KnowledgeBase page (KNOWLEDGE_BASE_VULN_LIST_OUTPUT); pass one KnowledgeBase page, as the API \
             returns it\n"
        )
    );
}
