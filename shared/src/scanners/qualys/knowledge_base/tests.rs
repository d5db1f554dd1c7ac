//! The KnowledgeBase reader against the wire format's sample page
//! (`testdata/knowledge-base.xml`) and variations of it.

use chrono::TimeZone;

use super::*;

const PAGE: &str = include_str!("../testdata/knowledge-base.xml");
const SIMPLE_RETURN: &str = include_str!("../testdata/simple-return.xml");

fn entries(page: &str) -> Result<Vec<KnowledgeEntry>, ChunkError> {
    let mut entries = Vec::new();
    let count = each_entry(page.as_bytes(), |entry| entries.push(entry))?;
    assert_eq!(count, entries.len() as u64, "the count is the entries handed on");
    Ok(entries)
}

fn sample_with(old: &str, new: &str) -> String {
    assert!(PAGE.contains(old), "the sample page holds {old:?}");
    PAGE.replacen(old, new, 1)
}

fn certificate_entry() -> KnowledgeEntry {
    KnowledgeEntry {
        qid: 38170,
        title: Some("SSL Certificate - Subject Common Name Does Not Match Server FQDN".to_owned()),
        category: Some("General remote services".to_owned()),
        cves: vec!["CVE-2021-1234".to_owned()],
        cvss3_base: Some(5.3),
        solution: Some("Get a certificate whose CN matches the FQDN.".to_owned()),
        last_modified: Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).single(),
    }
}

#[test]
fn the_sample_page_gives_its_entry() {
    assert_eq!(entries(PAGE), Ok(vec![certificate_entry()]));
}

#[test]
fn entries_read_as_real_pages_give_them() {
    let second_vuln = "<VULN><QID>105943</QID><VULN_TYPE>Potential Vulnerability</VULN_TYPE>\
        <TITLE><![CDATA[Server&apos;s Banner Reveals 'Version']]></TITLE>\
        <CATEGORY>Web server</CATEGORY>\
        <CVE_LIST><CVE><ID><![CDATA[CVE-2020-0001]]></ID></CVE><CVE><ID><![CDATA[ CVE-2020-0002 ]]></ID></CVE></CVE_LIST>\
        <CVSS_V3><BASE source=\"service\">9.8</BASE></CVSS_V3></VULN>";
    let two = sample_with("</VULN_LIST>", &format!("{second_vuln}</VULN_LIST>"));
    let banner = KnowledgeEntry {
        qid: 105943,
        // CDATA keeps `&apos;` as written.
        title: Some("Server&apos;s Banner Reveals 'Version'".to_owned()),
        category: Some("Web server".to_owned()),
        cves: vec!["CVE-2020-0001".to_owned(), "CVE-2020-0002".to_owned()],
        cvss3_base: Some(9.8),
        solution: None,
        last_modified: None,
    };
    let bare = KnowledgeEntry::unknown(90001);
    let cases = [
        (two, vec![certificate_entry(), banner]),
        (
            sample_with("<!DOCTYPE", "<!-- before -->\n<!DOCTYPE").replacen(
                "<QID>38170</QID>",
                "<QID\n>38170</QID\n>",
                1,
            ),
            vec![certificate_entry()],
        ),
        (
            sample_with("</VULN_LIST>", "<VULN><QID>90001</QID><CVSS_V3><BASE/></CVSS_V3></VULN></VULN_LIST>"),
            vec![certificate_entry(), bare],
        ),
        (
            sample_with("<![CDATA[SSL Certificate - Subject Common Name Does Not Match Server FQDN]]>", "  "),
            vec![KnowledgeEntry { title: None, ..certificate_entry() }],
        ),
    ];
    for (page, expected) in cases {
        assert_eq!(entries(&page), Ok(expected), "{page}");
    }
    let start = PAGE.find("<VULN_LIST>").unwrap_or_default();
    let end = PAGE.find("</RESPONSE>").unwrap_or_default();
    assert_eq!(entries(&format!("{}{}", &PAGE[..start], &PAGE[end..])), Ok(Vec::new()));
}

#[test]
fn a_bad_vuln_names_its_qid_and_field() {
    let cases = [
        (
            sample_with("<BASE>5.3</BASE>", "<BASE>11</BASE>"),
            (0, "VULN[QID=38170].CVSS_V3.BASE", r#"must be a score from 0 to 10, found "11""#),
        ),
        (
            sample_with("<BASE>5.3</BASE>", "<BASE>high</BASE>"),
            (0, "VULN[QID=38170].CVSS_V3.BASE", r#"must be a score from 0 to 10, found "high""#),
        ),
        (sample_with("<QID>38170</QID>", ""), (0, "VULN[0].QID", "is missing")),
        (
            sample_with("2023-06-01T00:00:00Z", "June 2023"),
            (
                0,
                "VULN[QID=38170].LAST_SERVICE_MODIFICATION_DATETIME",
                r#"must be a UTC time such as 2024-04-30T22:00:00Z, found "June 2023""#,
            ),
        ),
        (
            sample_with("<TITLE>", "<TITLE>one</TITLE><TITLE>"),
            (0, "VULN[QID=38170]", "cannot be read: duplicate field `TITLE`"),
        ),
    ];
    for (page, (index, field, reason)) in cases {
        let expected = RecordError { index, field: field.to_owned(), reason: reason.to_owned() };
        assert_eq!(entries(&page), Err(ChunkError::Record(expected)), "{field}");
    }
    // 5,000 CVEs of 17 bytes: 85,000 bytes, over the 64 KB a stored record may hold.
    let cves: String = (0..5000).map(|n| format!("<CVE><ID>CVE-2024-{n:08}</ID></CVE>")).collect();
    let many = sample_with("<CVE_LIST>", &format!("<CVE_LIST>{cves}")).replacen(
        "<CVE>\n            <ID><![CDATA[CVE-2021-1234]]></ID>\n            <URL><![CDATA[https://nvd.nist.gov/vuln/detail/CVE-2021-1234]]></URL>\n          </CVE>",
        "",
        1,
    );
    let expected = RecordError {
        index: 0,
        field: "VULN[QID=38170].CVE_LIST".to_owned(),
        reason: "holds 5000 items of 85000 bytes in all, more than the 65536 a stored record may hold".to_owned(),
    };
    assert_eq!(entries(&many), Err(ChunkError::Record(expected)));
}

#[test]
fn a_page_that_is_not_a_knowledge_base_page_says_what_it_is() {
    let expected = "a KnowledgeBase page (KNOWLEDGE_BASE_VULN_LIST_OUTPUT)";
    assert_eq!(
        entries(SIMPLE_RETURN),
        Err(ChunkError::WrongAnswer {
            expected,
            found: "a SIMPLE_RETURN error (code 1965: This API cannot be run again for another 30 seconds.)".to_owned()
        })
    );
    let cut = &PAGE[..PAGE.find("</VULN_LIST>").unwrap_or_default()];
    assert_eq!(entries(cut), Err(ChunkError::NotXml("it ends inside <VULN_LIST>: the page was cut short".to_owned())));
}

#[test]
fn an_entry_is_cached_as_json_and_looked_up_by_qid() {
    let json = serde_json::to_value(certificate_entry()).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "qid": 38170,
            "title": "SSL Certificate - Subject Common Name Does Not Match Server FQDN",
            "category": "General remote services",
            "cves": ["CVE-2021-1234"],
            "cvss3_base": 5.3,
            "solution": "Get a certificate whose CN matches the FQDN.",
            "last_modified": "2023-06-01T00:00:00Z"
        })
    );
    assert_eq!(serde_json::from_value::<KnowledgeEntry>(json).ok(), Some(certificate_entry()));
    let cached = serde_json::from_str::<KnowledgeEntry>(r#"{"qid": 6}"#).map(|entry| entry.title);
    assert_eq!(cached.ok(), Some(None), "fields a cache lacks are empty");

    let knowledge = HashMap::from([(38170, certificate_entry())]);
    assert_eq!(knowledge.entry(38170), Some(&certificate_entry()));
    assert_eq!(knowledge.entry(105943), None);
}
