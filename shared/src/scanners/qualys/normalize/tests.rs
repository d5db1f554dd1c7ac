//! The Host List Detection normalizer against pages as the API returns them: the wire
//! format's sample page (`testdata/host-list-detection.xml`), its real-world variations,
//! each value of each field, and pages that are not detection pages.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::scanners::qualys::knowledge_base::{KnowledgeEntry, each_entry};

/// The sample page of the wire format, as the API returns it: a DOCTYPE, CDATA, a
/// comment after the root, and a WARNING (truncated page).
const PAGE: &str = include_str!("../testdata/host-list-detection.xml");
const SIMPLE_RETURN: &str = include_str!("../testdata/simple-return.xml");
const KNOWLEDGE_BASE_PAGE: &str = include_str!("../testdata/knowledge-base.xml");

fn utc(year: i32, month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, 0, 0).single().unwrap_or_default()
}

fn no_knowledge() -> HashMap<u64, KnowledgeEntry> {
    HashMap::new()
}

fn findings_with(page: &str, knowledge: &dyn KnowledgeLookup) -> Result<Vec<NormalizedRecord>, ChunkError> {
    let mut records = Vec::new();
    let count = each_detection(page.as_bytes(), knowledge, |record| {
        records.push(record);
        Ok(())
    })?;
    assert_eq!(count, records.len() as u64, "the count is the records handed on");
    Ok(records)
}

fn findings(page: &str) -> Result<Vec<NormalizedRecord>, ChunkError> {
    findings_with(page, &no_knowledge())
}

fn hosts(page: &str) -> Result<Vec<NormalizedAsset>, ChunkError> {
    let mut assets = Vec::new();
    let count = each_host(page.as_bytes(), |asset| {
        assets.push(asset);
        Ok(())
    })?;
    assert_eq!(count, assets.len() as u64, "the count is the assets handed on");
    Ok(assets)
}

/// The sample page's `old` replaced by `new`, which must be there.
fn sample_with(old: &str, new: &str) -> String {
    assert!(PAGE.contains(old), "the sample page holds {old:?}");
    PAGE.replacen(old, new, 1)
}

/// A page of one host (the sample's facts) with `detections` as its DETECTION_LIST.
fn page_with_detections(detections: &str) -> String {
    let start = PAGE.find("<DETECTION_LIST>").unwrap_or_default();
    let end = PAGE.find("</DETECTION_LIST>").unwrap_or_default();
    format!("{}<DETECTION_LIST>{detections}{}", &PAGE[..start], &PAGE[end..])
}

/// A page whose one host has `host` as its facts (and the sample's detections).
fn page_with_host(host: &str) -> String {
    let start = PAGE.find("<ID>1234567</ID>").unwrap_or_default();
    let end = PAGE.find("<DETECTION_LIST>").unwrap_or_default();
    format!("{}{host}{}", &PAGE[..start], &PAGE[end..])
}

/// A detection of QID 38170 with the sample's times and `fields` (TYPE, SEVERITY,
/// STATUS, PORT, PROTOCOL... as XML).
fn detection(fields: &str) -> String {
    format!(
        "<DETECTION><QID>38170</QID>{fields}<FIRST_FOUND_DATETIME>2023-01-01T00:00:00Z</FIRST_FOUND_DATETIME>\
         <LAST_FOUND_DATETIME>2024-04-30T22:00:00Z</LAST_FOUND_DATETIME></DETECTION>"
    )
}

fn web01() -> Asset {
    Asset {
        asset_id: "1234567".to_owned(),
        source: ScannerKind::Qualys,
        hostname: Some("web01".to_owned()),
        fqdn: Some("web01.corp.example".to_owned()),
        ipv4: Some("10.0.0.5".to_owned()),
        operating_system: Some("Windows Server 2019 Standard 1809".to_owned()),
        os_category: OsCategory::WindowsServer,
    }
}

/// The sample's first detection, QID 38170 on 443/tcp, without a KnowledgeBase.
fn certificate_finding() -> Finding {
    Finding {
        finding_id: "qualys/1234567/38170/443/tcp".to_owned(),
        source: ScannerKind::Qualys,
        asset_id: "1234567".to_owned(),
        plugin_id: "38170".to_owned(),
        port: 443,
        protocol: "tcp".to_owned(),
        service: None,
        severity: Severity::Medium,
        state: FindingState::Open,
        title: "QID 38170".to_owned(),
        family: None,
        cves: Vec::new(),
        cvss3_base_score: None,
        vpr_score: None,
        synopsis: None,
        solution: None,
        // In CDATA `&apos;` is text, not an entity: kept, then escaped as any `&`.
        output: Some(
            "Certificate #0 CN=web01 &#39;quoted&#39; &amp;apos;raw&amp;apos; &lt;b&gt;x&lt;/b&gt;".to_owned(),
        ),
        output_truncated: false,
        first_seen: utc(2023, 1, 1, 0),
        last_seen: utc(2024, 4, 30, 22),
        last_fixed: None,
        hostname: Some("web01".to_owned()),
        ipv4: Some("10.0.0.5".to_owned()),
        os_category: OsCategory::WindowsServer,
    }
}

/// The sample's second detection: QID 105943, potential, host-level, fixed.
fn fixed_finding() -> Finding {
    Finding {
        finding_id: "qualys/1234567/105943/0/none".to_owned(),
        plugin_id: "105943".to_owned(),
        port: 0,
        protocol: "none".to_owned(),
        severity: Severity::Low,
        state: FindingState::Fixed,
        title: "QID 105943".to_owned(),
        output: None,
        first_seen: utc(2023, 1, 1, 0),
        last_seen: utc(2024, 3, 1, 0),
        last_fixed: Some(utc(2024, 4, 30, 22)),
        ..certificate_finding()
    }
}

fn sample_records() -> Vec<NormalizedRecord> {
    vec![
        NormalizedRecord { finding: certificate_finding(), asset: web01() },
        NormalizedRecord { finding: fixed_finding(), asset: web01() },
    ]
}

#[test]
fn the_sample_page_gives_two_findings_and_its_warning_is_paging() {
    assert_eq!(findings(PAGE), Ok(sample_records()));
    assert_eq!(
        next_page(PAGE.as_bytes()).as_deref(),
        Some(
            "https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&truncation_limit=1000\
             &id_min=1234568"
        )
    );
}

#[test]
fn a_knowledge_base_entry_gives_the_finding_its_title_cves_score_solution_and_family() {
    let mut knowledge = HashMap::new();
    let entries = each_entry(KNOWLEDGE_BASE_PAGE.as_bytes(), |entry| {
        knowledge.insert(entry.qid, entry);
    });
    assert_eq!(entries, Ok(1), "the KnowledgeBase page holds QID 38170");
    let described = Finding {
        title: "SSL Certificate - Subject Common Name Does Not Match Server FQDN".to_owned(),
        family: Some("General remote services".to_owned()),
        cves: vec!["CVE-2021-1234".to_owned()],
        cvss3_base_score: Some(5.3),
        solution: Some("Get a certificate whose CN matches the FQDN.".to_owned()),
        ..certificate_finding()
    };
    let records = findings_with(PAGE, &knowledge).expect("the sample page");
    let found: Vec<&Finding> = records.iter().map(|record| &record.finding).collect();
    // QID 105943 has no entry: its title stays `QID 105943`.
    assert_eq!(found, [&described, &fixed_finding()]);
}

#[test]
fn pages_as_real_answers_shape_them_read_as_the_sample() {
    let cases = [
        (
            "comments before and after the root",
            sample_with(
                "<HOST_LIST_VM_DETECTION_OUTPUT>",
                "<!-- generated 2024-05-01 -->\n<HOST_LIST_VM_DETECTION_OUTPUT>\n<!-- hosts follow -->",
            ),
        ),
        (
            "line breaks inside tags",
            sample_with("<QID>38170</QID>", "<QID\n>38170</QID\n            >").replacen(
                "<STATUS>Fixed</STATUS>",
                "<STATUS\r\n  >Fixed</STATUS\r\n>",
                1,
            ),
        ),
        (
            "line breaks around values",
            sample_with("<QID>38170</QID>", "<QID>\n  38170\n</QID>").replacen(
                "<SEVERITY>3</SEVERITY>",
                "<SEVERITY>\n3\n</SEVERITY>",
                1,
            ),
        ),
        ("CRLF line ends", PAGE.replace('\n', "\r\n")),
        (
            "entities outside CDATA",
            sample_with(
                "<OS><![CDATA[Windows Server 2019 Standard 1809]]></OS>",
                "<OS>Windows&#32;Server 2019 Standard 1809</OS>",
            ),
        ),
        ("no UNIQUE_VULN_ID (older answers)", sample_with("<UNIQUE_VULN_ID>11111111</UNIQUE_VULN_ID>", "")),
        (
            "no declaration, no DOCTYPE",
            PAGE[PAGE.find("<HOST_LIST_VM_DETECTION_OUTPUT>").unwrap_or_default()..].to_owned(),
        ),
        (
            "elements vulnflow does not read",
            sample_with(
                "<SSL>1</SSL>",
                "<SSL>1</SSL><QDS severity=\"LOW\">35</QDS>\
            <QDS_FACTORS><QDS_FACTOR name=\"CVSS\"><![CDATA[5.3]]></QDS_FACTOR></QDS_FACTORS>",
            ),
        ),
        ("an empty element where a value may be left out", sample_with("<SSL>1</SSL>", "<SSL>1</SSL><FQDN/>")),
    ];
    for (shape, page) in cases {
        assert_eq!(findings(&page), Ok(sample_records()), "{shape}");
    }
}

#[test]
fn each_detection_value_maps_onto_the_finding() {
    use FindingState::*;
    use Severity::*;
    let confirmed = "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><PORT>443</PORT><PROTOCOL>tcp</PROTOCOL>";
    // (the detection's TYPE, SEVERITY, STATUS, PORT, PROTOCOL) → (finding id, severity, state)
    let cases = [
        (format!("{confirmed}<STATUS>New</STATUS>"), ("qualys/1234567/38170/443/tcp", Medium, Open)),
        (format!("{confirmed}<STATUS>Active</STATUS>"), ("qualys/1234567/38170/443/tcp", Medium, Open)),
        (format!("{confirmed}<STATUS>Re-Opened</STATUS>"), ("qualys/1234567/38170/443/tcp", Medium, Reopened)),
        (format!("{confirmed}<STATUS>Fixed</STATUS>"), ("qualys/1234567/38170/443/tcp", Medium, Fixed)),
        (format!("{confirmed}<STATUS>RE-OPENED</STATUS>"), ("qualys/1234567/38170/443/tcp", Medium, Reopened)),
        (format!("{confirmed}<STATUS> active </STATUS>"), ("qualys/1234567/38170/443/tcp", Medium, Open)),
        // SEVERITY 1 to 5.
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>1</SEVERITY><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Info, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>2</SEVERITY><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Low, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Medium, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>4</SEVERITY><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", High, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>5</SEVERITY><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Critical, Open),
        ),
        // TYPE: a potential vulnerability is a finding at its severity; information
        // gathered is info whatever its severity, and open when it has no STATUS.
        (
            "<TYPE>Potential</TYPE><SEVERITY>4</SEVERITY><STATUS>Active</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", High, Open),
        ),
        (
            "<TYPE>potential</TYPE><SEVERITY>5</SEVERITY><STATUS>Fixed</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Critical, Fixed),
        ),
        (
            "<TYPE>Info</TYPE><SEVERITY>5</SEVERITY><STATUS>Active</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Info, Open),
        ),
        (
            "<TYPE>Info</TYPE><SEVERITY>3</SEVERITY><STATUS>Fixed</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Info, Fixed),
        ),
        ("<TYPE>Info</TYPE><SEVERITY>2</SEVERITY>".to_owned(), ("qualys/1234567/38170/0/none", Info, Open)),
        // PORT and PROTOCOL: none is host-level; the protocol in lower case.
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><PORT>53</PORT><PROTOCOL>UDP</PROTOCOL><STATUS>New</STATUS>"
                .to_owned(),
            ("qualys/1234567/38170/53/udp", Medium, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><PORT>8443</PORT><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/8443/tcp", Medium, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><PORT></PORT><PROTOCOL>tcp</PROTOCOL><STATUS>New</STATUS>"
                .to_owned(),
            ("qualys/1234567/38170/0/none", Medium, Open),
        ),
        (
            "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><PROTOCOL>tcp</PROTOCOL><STATUS>New</STATUS>".to_owned(),
            ("qualys/1234567/38170/0/none", Medium, Open),
        ),
    ];
    for (fields, (finding_id, severity, state)) in cases {
        let records = findings(&page_with_detections(&detection(&fields))).expect(&fields);
        let [record] = &records[..] else { panic!("one finding of {fields}: {records:?}") };
        let finding = &record.finding;
        assert_eq!(
            (finding.finding_id.as_str(), finding.severity, finding.state),
            (finding_id, severity, state),
            "{fields}"
        );
    }
}

#[test]
fn a_bad_detection_names_its_index_host_qid_and_field() {
    let good = detection("<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><STATUS>New</STATUS>");
    let bad = |fields: &str| page_with_detections(&format!("{good}{}", detection(fields)));
    let cases = [
        (
            bad("<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><STATUS>Closed</STATUS>"),
            (
                1,
                "HOST[ID=1234567].DETECTION[QID=38170].STATUS",
                r#"must be one of New, Active, Re-Opened, Fixed, found "Closed""#,
            ),
        ),
        (
            bad("<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY>"),
            (1, "HOST[ID=1234567].DETECTION[QID=38170].STATUS", "is missing"),
        ),
        (
            bad("<TYPE>Confirmed</TYPE><SEVERITY>6</SEVERITY><STATUS>New</STATUS>"),
            (1, "HOST[ID=1234567].DETECTION[QID=38170].SEVERITY", r#"must be a severity level from 1 to 5, found "6""#),
        ),
        (
            bad("<TYPE>Confirmed</TYPE><SEVERITY>high</SEVERITY><STATUS>New</STATUS>"),
            (
                1,
                "HOST[ID=1234567].DETECTION[QID=38170].SEVERITY",
                r#"must be a severity level from 1 to 5, found "high""#,
            ),
        ),
        (
            bad("<TYPE>Confirmed</TYPE><STATUS>New</STATUS>"),
            (1, "HOST[ID=1234567].DETECTION[QID=38170].SEVERITY", "is missing"),
        ),
        (
            bad("<TYPE>Vulnerable</TYPE><SEVERITY>3</SEVERITY><STATUS>New</STATUS>"),
            (
                1,
                "HOST[ID=1234567].DETECTION[QID=38170].TYPE",
                r#"must be one of Confirmed, Potential, Info, found "Vulnerable""#,
            ),
        ),
        (
            bad("<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><STATUS>New</STATUS><PORT>70000</PORT>"),
            (
                1,
                "HOST[ID=1234567].DETECTION[QID=38170].PORT",
                r#"must be a port number from 0 to 65535, found "70000""#,
            ),
        ),
        (
            bad(
                "<TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><STATUS>New</STATUS><PORT>22</PORT><PROTOCOL>tcp/ip</PROTOCOL>",
            ),
            (
                1,
                "HOST[ID=1234567].DETECTION[QID=38170].PROTOCOL",
                r#"must be a protocol name such as tcp, udp or icmp, found "tcp/ip""#,
            ),
        ),
        (
            page_with_detections(&format!(
                "{good}<DETECTION><TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><STATUS>New</STATUS></DETECTION>"
            )),
            (1, "HOST[ID=1234567].DETECTION[1].QID", "is missing"),
        ),
        (
            page_with_detections(&format!(
                "{good}<DETECTION><QID>QID-9</QID><TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY></DETECTION>"
            )),
            (1, "HOST[ID=1234567].DETECTION[1].QID", r#"must be a whole number, found "QID-9""#),
        ),
        (
            sample_with(
                "<FIRST_FOUND_DATETIME>2023-01-01T00:00:00Z</FIRST_FOUND_DATETIME>",
                "<FIRST_FOUND_DATETIME>yesterday</FIRST_FOUND_DATETIME>",
            ),
            (
                0,
                "HOST[ID=1234567].DETECTION[QID=38170].FIRST_FOUND_DATETIME",
                r#"must be a UTC time such as 2024-04-30T22:00:00Z, found "yesterday""#,
            ),
        ),
        (
            sample_with(
                "<LAST_FIXED_DATETIME>2024-04-30T22:00:00Z</LAST_FIXED_DATETIME>",
                "<LAST_FIXED_DATETIME>2024-04-31T22:00:00Z</LAST_FIXED_DATETIME>",
            ),
            (
                1,
                "HOST[ID=1234567].DETECTION[QID=105943].LAST_FIXED_DATETIME",
                r#"must be a UTC time such as 2024-04-30T22:00:00Z, found "2024-04-31T22:00:00Z""#,
            ),
        ),
        (
            sample_with("<LAST_FOUND_DATETIME>2024-03-01T00:00:00Z</LAST_FOUND_DATETIME>", ""),
            (1, "HOST[ID=1234567].DETECTION[QID=105943].LAST_FOUND_DATETIME", "is missing"),
        ),
        // The host's own errors count as its first detection's.
        (sample_with("<ID>1234567</ID>", ""), (0, "HOST[0].ID", "is missing")),
        (
            sample_with("<ID>1234567</ID>", "<ID>web01</ID>"),
            (0, "HOST[0].ID", r#"must be a whole number, found "web01""#),
        ),
        // A value of the wrong shape: where serde was in the host.
        (
            sample_with("<STATUS>Fixed</STATUS>", "<STATUS><CODE>Fixed</CODE></STATUS>"),
            (
                0,
                "HOST[ID=1234567].DETECTION_LIST.DETECTION[1].STATUS",
                "cannot be read: cannot deserialize primitive type from mixed content, found unexpected tag <CODE>",
            ),
        ),
        (sample_with("<OS>", "<OS>Windows</OS><OS>"), (0, "HOST[ID=1234567]", "cannot be read: duplicate field `OS`")),
    ];
    for (page, (index, field, reason)) in cases {
        let expected = RecordError { index, field: field.to_owned(), reason: reason.to_owned() };
        assert_eq!(findings(&page).map(|_| ()), Err(ChunkError::Record(expected)), "{field}");
    }
}

#[test]
fn a_record_error_reads_as_the_operator_sees_it() {
    let page = sample_with("<STATUS>Active</STATUS>", "<STATUS>Closed</STATUS>");
    let error = findings(&page).expect_err("a bad STATUS");
    assert_eq!(
        error.to_string(),
        "record 0: field `HOST[ID=1234567].DETECTION[QID=38170].STATUS` must be one of New, Active, Re-Opened, \
         Fixed, found \"Closed\""
    );
}

#[test]
fn the_errors_of_a_later_host_count_its_detections_from_the_page_start() {
    let second_host = "<HOST><ID>1234568</ID><IP>10.0.0.6</IP><DETECTION_LIST>\
        <DETECTION><QID>38170</QID><TYPE>Confirmed</TYPE><SEVERITY>9</SEVERITY></DETECTION>\
        </DETECTION_LIST></HOST>";
    let page = sample_with("</HOST_LIST>", &format!("{second_host}</HOST_LIST>"));
    let expected = RecordError {
        index: 2,
        field: "HOST[ID=1234568].DETECTION[QID=38170].SEVERITY".to_owned(),
        reason: r#"must be a severity level from 1 to 5, found "9""#.to_owned(),
    };
    assert_eq!(findings(&page), Err(ChunkError::Record(expected)));
    let unnamed = sample_with("</HOST_LIST>", "<HOST><IP>10.0.0.7</IP></HOST></HOST_LIST>");
    let expected = RecordError { index: 1, field: "HOST[1].ID".to_owned(), reason: "is missing".to_owned() };
    assert_eq!(hosts(&unnamed), Err(ChunkError::Record(expected)));
}

#[test]
fn pages_that_are_not_detection_pages_say_what_they_are() {
    const EXPECTED: &str = "a Host List Detection page (HOST_LIST_VM_DETECTION_OUTPUT)";
    let wrong = |found: &str| ChunkError::WrongAnswer { expected: EXPECTED, found: found.to_owned() };
    let not_xml = |reason: &str| ChunkError::NotXml(reason.to_owned());
    let cut_inside_a_host = &PAGE[..PAGE.find("<QID>105943</QID>").unwrap_or_default()];
    let cut_after_the_hosts = &PAGE[..PAGE.find("<WARNING>").unwrap_or_default()];
    let cases = [
        (
            SIMPLE_RETURN.to_owned(),
            wrong("a SIMPLE_RETURN error (code 1965: This API cannot be run again for another 30 seconds.)"),
        ),
        (KNOWLEDGE_BASE_PAGE.to_owned(), wrong("a <KNOWLEDGE_BASE_VULN_LIST_OUTPUT> document")),
        ("<html><body>502 Bad Gateway</body></html>".to_owned(), wrong("a <html> document")),
        (
            cut_inside_a_host.to_owned(),
            not_xml("at byte 301: ill-formed document: start tag not closed: `</HOST>` not found before end of input"),
        ),
        (cut_after_the_hosts.to_owned(), not_xml("it ends inside <RESPONSE>: the page was cut short")),
        (
            sample_with("</DETECTION_LIST>", "</DETECTION_LST>"),
            not_xml(
                "at byte 2402: ill-formed document: expected `</DETECTION_LIST>`, but `</DETECTION_LST>` was found",
            ),
        ),
        (String::new(), not_xml("it has no root element")),
        ("<?xml version=\"1.0\"?>\n<!-- nothing -->\n".to_owned(), not_xml("it has no root element")),
        (r#"[{"id": 1}]"#.to_owned(), not_xml(r#"it has text outside its root element: "[{\"id\": 1}]""#)),
        (format!("{PAGE}<HOST_LIST_VM_DETECTION_OUTPUT/>"), not_xml("it has a second root element")),
    ];
    for (page, expected) in cases {
        assert_eq!(findings(&page).map(|_| ()), Err(expected.clone()), "{page:.60}");
        assert_eq!(hosts(&page).map(|_| ()), Err(expected), "{page:.60}");
        assert_eq!(next_page(page.as_bytes()), None);
    }
    let latin1 = b"<HOST_LIST_VM_DETECTION_OUTPUT>caf\xe9</HOST_LIST_VM_DETECTION_OUTPUT>";
    assert_eq!(
        each_detection(latin1, &no_knowledge(), |_| Ok(())),
        Err(not_xml("it is not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 34"))
    );
}

#[test]
fn a_page_without_hosts_has_no_findings_and_no_next_page() {
    let start = PAGE.find("<HOST_LIST>").unwrap_or_default();
    let end = PAGE.find("</RESPONSE>").unwrap_or_default();
    let empty = format!("{}{}", &PAGE[..start], &PAGE[end..]);
    assert_eq!(findings(&empty), Ok(Vec::new()));
    assert_eq!(hosts(&empty), Ok(Vec::new()));
    assert_eq!(next_page(empty.as_bytes()), None);
    // A host without detections is an asset with no finding.
    let no_detections = page_with_detections("");
    assert_eq!(findings(&no_detections), Ok(Vec::new()));
    assert_eq!(hosts(&no_detections).map(|assets| assets.len()), Ok(1));
}

#[test]
fn the_next_page_is_the_url_of_a_truncation_warning_only() {
    let other_warning = sample_with("<CODE>1980</CODE>", "<CODE>1990</CODE>");
    assert_eq!(next_page(other_warning.as_bytes()), None);
    let blank_url = sample_with(
        "<URL><![CDATA[https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&truncation_limit=1000&id_min=1234568]]></URL>",
        "<URL> </URL>",
    );
    assert_eq!(next_page(blank_url.as_bytes()), None);
    let escaped = sample_with(
        "<URL><![CDATA[https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&truncation_limit=1000&id_min=1234568]]></URL>",
        "<URL>https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&amp;id_min=5</URL>",
    );
    assert_eq!(
        next_page(escaped.as_bytes()).as_deref(),
        Some("https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&id_min=5")
    );
}

#[test]
fn hosts_become_assets_by_the_same_rules_as_the_findings_asset() {
    assert_eq!(
        hosts(PAGE),
        Ok(vec![NormalizedAsset {
            asset: web01(),
            last_seen: Some(utc(2024, 4, 30, 22)),
            tags: Vec::new(),
            deleted: false
        }])
    );
    let asset = |hostname: Option<&str>, fqdn: Option<&str>, os: Option<&str>, os_category| Asset {
        hostname: hostname.map(str::to_owned),
        fqdn: fqdn.map(str::to_owned),
        operating_system: os.map(str::to_owned),
        os_category,
        ..web01()
    };
    let windows = Some("Windows Server 2019 Standard 1809");
    // The host's facts (ID and IP as the sample's) → the asset.
    let cases = [
        // DNS_DATA's names first.
        (
            "<DNS>web01.corp.example</DNS><DNS_DATA><HOSTNAME>web01a</HOSTNAME><FQDN>web01a.corp.example</FQDN></DNS_DATA>\
             <NETBIOS>WEB01B</NETBIOS>",
            asset(Some("web01a"), Some("web01a.corp.example"), None, OsCategory::Other),
        ),
        // Else NETBIOS for the hostname, DNS for the FQDN.
        (
            "<DNS>web01.corp.example</DNS><NETBIOS>WEB01B</NETBIOS>",
            asset(Some("WEB01B"), Some("web01.corp.example"), None, OsCategory::Other),
        ),
        // Else the first label of DNS.
        (
            "<DNS><![CDATA[db02.corp.example]]></DNS>",
            asset(Some("db02"), Some("db02.corp.example"), None, OsCategory::Other),
        ),
        // An IP address is no name.
        (
            "<DNS>10.0.0.5</DNS><DNS_DATA><HOSTNAME>10.0.0.5</HOSTNAME></DNS_DATA>",
            asset(None, None, None, OsCategory::Other),
        ),
        ("<DNS>10.0.0.5</DNS><NETBIOS>WEB01B</NETBIOS>", asset(Some("WEB01B"), None, None, OsCategory::Other)),
        ("<DNS> </DNS><NETBIOS/>", asset(None, None, None, OsCategory::Other)),
        // The OS category by the shared rules.
        ("<OS>Windows Server 2019 Standard 1809</OS>", asset(None, None, windows, OsCategory::WindowsServer)),
        (
            "<OS><![CDATA[ExtremeXOS Network Operating System]]></OS>",
            asset(None, None, Some("ExtremeXOS Network Operating System"), OsCategory::NetworkDevice),
        ),
        ("<OS>CentOS Linux 7.9.2009</OS>", asset(None, None, Some("CentOS Linux 7.9.2009"), OsCategory::Linux)),
    ];
    for (facts, expected) in cases {
        let page = page_with_host(&format!("<ID>1234567</ID><IP>10.0.0.5</IP>{facts}"));
        let assets = hosts(&page).expect(facts);
        assert_eq!(assets.iter().map(|normalized| &normalized.asset).collect::<Vec<_>>(), [&expected], "{facts}");
        let records = findings(&page).expect(facts);
        assert!(records.iter().all(|record| record.asset == expected && record.finding.hostname == expected.hostname));
    }
    let no_address = page_with_host("<ID>1234567</ID>");
    let bare = Asset { ipv4: None, ..asset(None, None, None, OsCategory::Other) };
    assert_eq!(
        hosts(&no_address).map(|assets| assets.into_iter().map(|normalized| normalized.asset).collect()),
        Ok(vec![bare])
    );
}

#[test]
fn long_texts_are_bounded_as_every_normalizer_bounds_them() {
    let long_os = "é".repeat(3000); // 6,000 bytes: cut at 4,096
    let long_results = format!("{}<", "x".repeat(2048)); // one character over the display limit
    let page = sample_with("<OS><![CDATA[Windows Server 2019 Standard 1809]]></OS>", &format!("<OS>{long_os}</OS>"))
        .replacen(
            "<RESULTS><![CDATA[Certificate #0 CN=web01 'quoted' &apos;raw&apos; <b>x</b>]]></RESULTS>",
            &format!("<RESULTS><![CDATA[{long_results}]]></RESULTS>"),
            1,
        );
    let records = findings(&page).expect("long texts are cut, not refused");
    let operating_system = records[0].asset.operating_system.as_deref().unwrap_or_default();
    assert_eq!((operating_system.len(), operating_system.chars().count()), (4096, 2048));
    assert_eq!(records[0].finding.output.as_deref(), Some("x".repeat(2048).as_str()));
    assert!(records[0].finding.output_truncated);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = each_detection(&bytes, &no_knowledge(), |_| Ok(()));
        let _ = each_host(&bytes, |_| Ok(()));
        let _ = next_page(&bytes);
    }

    #[test]
    fn a_mutated_page_is_read_or_refused_never_a_panic(
        at in 0..PAGE.len(),
        cut in 0usize..64,
        inserted in "[<>/!\\[\\]&;A-Z0-9 \n-]{0,8}",
    ) {
        let mut page = PAGE.as_bytes().to_vec();
        let end = (at + cut).min(page.len());
        page.splice(at..end, inserted.bytes());
        match each_detection(&page, &no_knowledge(), |_| Ok(())) {
            Ok(count) => prop_assert!(count <= 3),
            Err(ChunkError::Record(error)) => prop_assert!(error.field.starts_with("HOST["), "{error}"),
            Err(_) => {}
        }
        let _ = each_host(&page, |_| Ok(()));
        let _ = next_page(&page);
    }
}

#[test]
fn the_qids_of_a_page_are_read_without_normalizing_it() {
    assert_eq!(qids(PAGE.as_bytes()), BTreeSet::from([38170, 105943]));
    assert_eq!(qids(b"not a page"), BTreeSet::new());
}
