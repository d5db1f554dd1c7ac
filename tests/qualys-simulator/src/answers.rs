//! The XML documents the simulator answers with, in Qualys' wire format.

use std::ops::Range;

use chrono::{DateTime, Utc};

use crate::catalog::KnowledgeBaseVuln;
use crate::data::{Detection, Host};
use crate::xml::XmlWriter;

pub(crate) const XML_CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// The WARNING of a truncated page: how many records a page holds, and where the next starts.
pub(crate) struct NextPage {
    pub limit: usize,
    pub url: String,
}

/// A host of a detection page, with the detections the request asked for.
pub(crate) struct HostDetections<'a> {
    pub host: &'a Host,
    pub detections: Vec<&'a Detection>,
}

/// A detection page, and where each host's element lies in it.
pub(crate) struct DetectionPage {
    pub body: String,
    pub host_spans: Vec<(u64, Range<usize>)>,
}

/// Qualys' time format: UTC, whole seconds.
fn time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn open_response(root: &'static str, dtd_path: &str) -> XmlWriter {
    let mut writer = XmlWriter::new(root, dtd_path);
    writer.open("RESPONSE");
    writer.value("DATETIME", time(Utc::now()));
    writer
}

/// The SIMPLE_RETURN of errors, with an ITEM_LIST when `items` has some.
pub(crate) fn simple_return(code: u32, text: &str, items: &[(&str, String)]) -> String {
    let mut writer = open_response("SIMPLE_RETURN", "/api/2.0/simple_return.dtd");
    writer.value("CODE", code);
    writer.value("TEXT", text);
    if !items.is_empty() {
        writer.open("ITEM_LIST");
        for (key, value) in items {
            writer.open("ITEM");
            writer.value("KEY", key);
            writer.value("VALUE", value);
            writer.close();
        }
        writer.close();
    }
    writer.finish()
}

pub(crate) fn about() -> String {
    let mut writer = XmlWriter::new("ABOUT", "/msp/about.dtd");
    writer.empty("API-VERSION", &[("MAJOR", "2"), ("MINOR", "0")]);
    writer.value("WEB-VERSION", "10.28.1.0-1");
    writer.value("SCANNER-VERSION", "13.2.35-1");
    writer.value("VULNSIGS-VERSION", "2.6.54-2");
    writer.finish()
}

fn warning(writer: &mut XmlWriter, next: &NextPage) {
    writer.open("WARNING");
    writer.value("CODE", 1980);
    writer.value("TEXT", format!("{} record limit exceeded. Use URL to get next batch of results.", next.limit));
    writer.cdata("URL", &next.url);
    writer.close();
}

/// HOST_LIST_OUTPUT with `details=None`: the ids alone, runs of consecutive ids as ranges.
pub(crate) fn host_ids(ids: &[u64], next: Option<&NextPage>) -> String {
    let mut writer = open_response("HOST_LIST_OUTPUT", "/api/2.0/fo/asset/host/host_list_output.dtd");
    if !ids.is_empty() {
        writer.open("ID_SET");
        for run in consecutive_runs(ids) {
            match run {
                (first, last) if first == last => writer.value("ID", first),
                (first, last) => writer.value("ID_RANGE", format!("{first}-{last}")),
            }
        }
        writer.close();
    }
    if let Some(next) = next {
        warning(&mut writer, next);
    }
    writer.finish()
}

/// (first, last) of each run of consecutive ids; `ids` ascending.
fn consecutive_runs(ids: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// HOST_LIST_VM_DETECTION_OUTPUT; no HOST_LIST when no host matched.
pub(crate) fn detection_page(
    hosts: &[HostDetections<'_>],
    show_results: bool,
    next: Option<&NextPage>,
) -> DetectionPage {
    let mut writer = open_response(
        "HOST_LIST_VM_DETECTION_OUTPUT",
        "/api/2.0/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd",
    );
    let mut host_spans = Vec::with_capacity(hosts.len());
    if !hosts.is_empty() {
        writer.open("HOST_LIST");
        for entry in hosts {
            let start = writer.len();
            write_host(&mut writer, entry, show_results);
            host_spans.push((entry.host.id, start..writer.len()));
        }
        writer.close();
    }
    if let Some(next) = next {
        warning(&mut writer, next);
    }
    DetectionPage { body: writer.finish(), host_spans }
}

fn write_host(writer: &mut XmlWriter, entry: &HostDetections<'_>, show_results: bool) {
    let host = entry.host;
    writer.open("HOST");
    writer.set_values_on_own_lines(host.values_on_own_lines);
    writer.value("ID", host.id);
    writer.value("ASSET_ID", host.asset_id);
    writer.value("IP", &host.ip);
    writer.value("TRACKING_METHOD", host.tracking_method);
    if let Some(os) = host.os {
        writer.cdata("OS", os);
    }
    if let (Some(dns), Some(dns_data)) = (host.dns(), &host.dns_data) {
        writer.cdata("DNS", dns);
        writer.open("DNS_DATA");
        writer.cdata("HOSTNAME", &dns_data.hostname);
        if let Some(domain) = &dns_data.domain {
            writer.cdata("DOMAIN", domain);
        }
        if let Some(fqdn) = &dns_data.fqdn {
            writer.cdata("FQDN", fqdn);
        }
        writer.close();
    }
    if let Some(netbios) = &host.netbios {
        writer.cdata("NETBIOS", netbios);
    }
    writer.value("LAST_SCAN_DATETIME", time(host.last_scan));
    writer.value("LAST_VM_SCANNED_DATE", time(host.last_scan));
    writer.open("DETECTION_LIST");
    for detection in &entry.detections {
        write_detection(writer, detection, show_results);
    }
    writer.close();
    writer.set_values_on_own_lines(false);
    writer.close();
}

fn write_detection(writer: &mut XmlWriter, detection: &Detection, show_results: bool) {
    writer.open("DETECTION");
    if let Some(id) = detection.unique_vuln_id {
        writer.value("UNIQUE_VULN_ID", id);
    }
    writer.value("QID", detection.qid);
    writer.value("TYPE", detection.detection_type.as_str());
    writer.value("SEVERITY", detection.severity);
    if let (Some(port), Some(protocol)) = (detection.port, detection.protocol) {
        writer.value("PORT", port);
        writer.value("PROTOCOL", protocol);
        writer.value("SSL", u8::from(detection.ssl));
    }
    if show_results && !detection.results.is_empty() {
        writer.cdata("RESULTS", &detection.results);
    }
    writer.value("STATUS", detection.status.as_str());
    writer.value("FIRST_FOUND_DATETIME", time(detection.first_found));
    writer.value("LAST_FOUND_DATETIME", time(detection.last_found));
    writer.value("TIMES_FOUND", detection.times_found);
    writer.value("LAST_TEST_DATETIME", time(detection.last_test));
    writer.value("LAST_UPDATE_DATETIME", time(detection.last_update));
    if let Some(fixed) = detection.last_fixed {
        writer.value("LAST_FIXED_DATETIME", time(fixed));
    }
    writer.value("IS_IGNORED", u8::from(detection.is_ignored));
    writer.value("IS_DISABLED", u8::from(detection.is_disabled));
    writer.value("LAST_PROCESSED_DATETIME", time(detection.last_processed));
    writer.close();
}

/// KNOWLEDGE_BASE_VULN_LIST_OUTPUT; no VULN_LIST when no QID matched.
pub(crate) fn knowledge_base(vulns: &[&KnowledgeBaseVuln]) -> String {
    let mut writer = open_response(
        "KNOWLEDGE_BASE_VULN_LIST_OUTPUT",
        "/api/2.0/fo/knowledge_base/vuln/knowledge_base_vuln_list_output.dtd",
    );
    if !vulns.is_empty() {
        writer.open("VULN_LIST");
        for vuln in vulns {
            write_vuln(&mut writer, vuln);
        }
        writer.close();
    }
    writer.finish()
}

fn write_vuln(writer: &mut XmlWriter, vuln: &KnowledgeBaseVuln) {
    writer.open("VULN");
    writer.value("QID", vuln.qid);
    writer.value("VULN_TYPE", vuln.vuln_type.as_str());
    writer.value("SEVERITY_LEVEL", vuln.severity);
    writer.cdata("TITLE", vuln.title);
    writer.value("CATEGORY", vuln.category);
    writer.value("LAST_SERVICE_MODIFICATION_DATETIME", vuln.last_modified);
    writer.value("PUBLISHED_DATETIME", vuln.published);
    writer.value("PATCHABLE", u8::from(vuln.patchable));
    if !vuln.cves.is_empty() {
        writer.open("CVE_LIST");
        for cve in vuln.cves {
            writer.open("CVE");
            writer.cdata("ID", cve);
            writer.cdata("URL", &format!("https://nvd.nist.gov/vuln/detail/{cve}"));
            writer.close();
        }
        writer.close();
    }
    writer.cdata("DIAGNOSIS", vuln.diagnosis);
    writer.cdata("CONSEQUENCE", vuln.consequence);
    writer.cdata("SOLUTION", vuln.solution);
    if let Some(base) = vuln.cvss3_base {
        writer.open("CVSS_V3");
        writer.value("BASE", format!("{base:.1}"));
        if let Some(temporal) = vuln.cvss3_temporal {
            writer.value("TEMPORAL", format!("{temporal:.1}"));
        }
        writer.close();
    }
    writer.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_become_ranges() {
        assert_eq!(consecutive_runs(&[1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(consecutive_runs(&[]), vec![]);
        let document = host_ids(&[10, 11, 12, 20], None);
        assert!(document.contains("<ID_RANGE>10-12</ID_RANGE>\n      <ID>20</ID>"), "{document}");
        assert!(!host_ids(&[], None).contains("ID_SET"));
    }
}
