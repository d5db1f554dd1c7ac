//! A Qualys Host List Detection page (`/api/2.0/fo/asset/host/vm/detection/?action=list`)
//! mapped onto the model: each DETECTION of each HOST is a finding, each HOST an asset.
//!
//! The mapping, where Qualys and the model differ:
//! - A finding is one host ID + QID + port + protocol; a detection without PORT is
//!   host-level: port 0, protocol `none` (as Tenable's host-level findings).
//! - SEVERITY 1 to 5 is info to critical (see [`severity_level`]).
//! - TYPE Confirmed and Potential are findings alike, at their SEVERITY: Qualys counts
//!   both in its detection totals and gives both the same QID, so the same title and
//!   KnowledgeBase entry. TYPE Info (information gathered: open ports, the OS found) is a
//!   fact, not a flaw: its finding is severity info whatever SEVERITY says, and, since
//!   Qualys may leave its STATUS out, a missing STATUS reads as open.
//! - STATUS New and Active are open, Re-Opened reopened, Fixed fixed.
//! - The title, CVEs, CVSS v3 base score, solution and family (CATEGORY) come from the
//!   QID's KnowledgeBase entry; without one the title is `QID <qid>`.
//! - The WARNING element says the page was truncated and where the next one is
//!   ([`next_page`]): paging, never a finding.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Deserialize;

use super::knowledge_base::{KnowledgeEntry, KnowledgeLookup};
use super::page::{self, Answer, Place, WHOLE_NUMBER, whole_number};
use crate::model::{Asset, Finding, FindingState, NormalizedRecord, OsCategory, ScannerKind, Severity};
use crate::normalize::fields::bounded_text;
use crate::normalize::{ChunkError, NormalizedAsset, RecordError, os_category, protocol_name, sanitize_output};
use crate::scanners::ChunkNormalizer;

const HOST_LIST_DETECTION: Answer = Answer {
    root: "HOST_LIST_VM_DETECTION_OUTPUT",
    name: "a Host List Detection page (HOST_LIST_VM_DETECTION_OUTPUT)",
};
const HOSTS: &[&str] = &["RESPONSE", "HOST_LIST", "HOST"];
const WARNING: &[&str] = &["RESPONSE", "WARNING"];
/// The WARNING code of a truncated page: its URL asks for the next page.
const TRUNCATED: &str = "1980";

/// Qualys' chunks: Host List Detection pages, with the KnowledgeBase entries of their
/// QIDs as the chunk's reference (a JSON list of [`KnowledgeEntry`]).
pub struct QualysNormalizer;

impl ChunkNormalizer for QualysNormalizer {
    fn findings(
        &self,
        raw: &[u8],
        reference: Option<&[u8]>,
        keep: &mut dyn FnMut(NormalizedRecord) -> Result<(), ChunkError>,
    ) -> Result<u64, ChunkError> {
        let entries: Vec<KnowledgeEntry> = match reference {
            Some(reference) => serde_json::from_slice(reference)
                .map_err(|e| ChunkError::BadReference(format!("its KnowledgeBase entries: {e}")))?,
            None => Vec::new(),
        };
        let knowledge: HashMap<u64, KnowledgeEntry> = entries.into_iter().map(|entry| (entry.qid, entry)).collect();
        each_detection(raw, &knowledge, keep)
    }

    fn assets(
        &self,
        raw: &[u8],
        keep: &mut dyn FnMut(NormalizedAsset) -> Result<(), ChunkError>,
    ) -> Result<u64, ChunkError> {
        each_host(raw, keep)
    }
}

/// Normalizes each detection of a Host List Detection page, in the page's order, handing
/// each to `keep`, and says how many there were. The page is streamed host by host;
/// the first unusable detection or host ends it with a [`RecordError`] naming the host
/// ID, the QID and the field, and counting as the detection's index in the page (a host's
/// own error counts as its first detection's).
pub fn each_detection(
    page: &[u8],
    knowledge: &dyn KnowledgeLookup,
    mut keep: impl FnMut(NormalizedRecord) -> Result<(), ChunkError>,
) -> Result<u64, ChunkError> {
    let mut hosts = 0;
    let mut detections = 0;
    page::each_element(page, &HOST_LIST_DETECTION, HOSTS, |element| {
        let (place, host) = read_host(element, hosts, detections)?;
        hosts += 1;
        let asset = host.asset(&place)?;
        for (position, detection) in host.detection_list.detections.iter().enumerate() {
            let place = place.within(Place::new(detections, "DETECTION", "QID", detection.qid.as_deref(), position));
            keep(detection.normalize(&place, &asset, knowledge)?)?;
            detections += 1;
        }
        Ok(())
    })?;
    Ok(detections as u64)
}

/// The QIDs a Host List Detection page names, read without normalizing its detections:
/// the fetch stage looks them up in the KnowledgeBase. A host that cannot be read gives
/// none; normalizing the page reports it.
pub fn qids(page: &[u8]) -> BTreeSet<u64> {
    let mut qids = BTreeSet::new();
    let _ = page::each_element(page, &HOST_LIST_DETECTION, HOSTS, |element| {
        if let Ok(host) = page::deserialize::<HostQids>(element) {
            let named = host.detection_list.detections.into_iter().filter_map(|detection| detection.qid);
            qids.extend(named.filter_map(|qid| whole_number(&qid)));
        }
        Ok(())
    });
    qids
}

/// Normalizes each host of a Host List Detection page as an inventory asset (by the
/// rules of a finding's asset; last seen at its LAST_SCAN_DATETIME), in the page's
/// order, and says how many there were. A [`RecordError`] counts as the host's index in
/// the page.
pub fn each_host(
    page: &[u8],
    mut keep: impl FnMut(NormalizedAsset) -> Result<(), ChunkError>,
) -> Result<u64, ChunkError> {
    let mut hosts = 0;
    page::each_element(page, &HOST_LIST_DETECTION, HOSTS, |element| {
        let (place, host) = read_host(element, hosts, hosts)?;
        let asset = host.asset(&place)?;
        let last_seen = place.time("LAST_SCAN_DATETIME", &host.last_scan_datetime)?;
        // The Host List Detection API lists scanned hosts only: it tells no tags and no
        // deletion.
        keep(NormalizedAsset { asset, last_seen, tags: Vec::new(), deleted: false })?;
        hosts += 1;
        Ok(())
    })?;
    Ok(hosts as u64)
}

/// The URL of the next page when this one was truncated (its WARNING of code 1980),
/// else `None`, also for a page that cannot be read ([`each_detection`] says why).
pub fn next_page(page: &[u8]) -> Option<String> {
    let mut url = None;
    let read = page::each_element(page, &HOST_LIST_DETECTION, WARNING, |element| {
        if let Ok(warning) = page::deserialize::<Warning>(element)
            && warning.code.as_deref().map(str::trim) == Some(TRUNCATED)
        {
            url = warning.url.as_deref().and_then(bounded_text);
        }
        Ok(())
    });
    read.ok().and(url)
}

// What each value accepts, as errors say it.
const SEVERITIES: &str = "a severity level from 1 to 5";
const TYPES: &str = "one of Confirmed, Potential, Info";
const STATUSES: &str = "one of New, Active, Re-Opened, Fixed";
const PORT: &str = "a port number from 0 to 65535";
const PROTOCOL: &str = "a protocol name such as tcp, udp or icmp";

/// One HOST element, every value as its text: the rules below read them.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Host {
    id: Option<String>,
    ip: Option<String>,
    os: Option<String>,
    dns: Option<String>,
    dns_data: Option<DnsData>,
    netbios: Option<String>,
    last_scan_datetime: Option<String>,
    #[serde(default)]
    detection_list: DetectionList,
}

/// A host's QIDs alone.
#[derive(Deserialize)]
struct HostQids {
    #[serde(rename = "DETECTION_LIST", default)]
    detection_list: QidList,
}

#[derive(Default, Deserialize)]
struct QidList {
    #[serde(rename = "DETECTION", default)]
    detections: Vec<DetectionQid>,
}

#[derive(Deserialize)]
struct DetectionQid {
    #[serde(rename = "QID")]
    qid: Option<String>,
}

/// A host's ID alone: what names a host whose element cannot be read whole.
#[derive(Deserialize)]
struct HostId {
    #[serde(rename = "ID")]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct DnsData {
    hostname: Option<String>,
    fqdn: Option<String>,
}

#[derive(Default, Deserialize)]
struct DetectionList {
    #[serde(rename = "DETECTION", default)]
    detections: Vec<Detection>,
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Detection {
    qid: Option<String>,
    #[serde(rename = "TYPE")]
    kind: Option<String>,
    severity: Option<String>,
    port: Option<String>,
    protocol: Option<String>,
    results: Option<String>,
    status: Option<String>,
    first_found_datetime: Option<String>,
    last_found_datetime: Option<String>,
    last_fixed_datetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Warning {
    code: Option<String>,
    url: Option<String>,
}

/// The host of `element`, the `position`-th of the page, with where its errors point.
fn read_host(element: &str, position: usize, index: usize) -> Result<(Place, Host), RecordError> {
    let place = |id: Option<&str>| Place::new(index, "HOST", "ID", id, position);
    match page::deserialize::<Host>(element) {
        Ok(host) => Ok((place(host.id.as_deref()), host)),
        Err(unreadable) => {
            let id = page::deserialize::<HostId>(element).ok().and_then(|host| host.id);
            Err(place(id.as_deref()).unreadable(unreadable))
        }
    }
}

impl Host {
    fn asset(&self, place: &Place) -> Result<Asset, RecordError> {
        let asset_id = place.required("ID", self.id.as_deref(), WHOLE_NUMBER, whole_number)?.to_string();
        let dns = name_in(&self.dns);
        let dns_data = self.dns_data.as_ref();
        // DNS is the host's name as Qualys resolved it, DNS_DATA its parts; a name
        // is never an IP address (which Qualys may put where it resolved none).
        let fqdn = dns_data.and_then(|data| name_in(&data.fqdn)).or_else(|| dns.clone());
        let first_label = dns.as_deref().and_then(|dns| dns.split('.').next()).map(str::to_owned);
        let hostname =
            dns_data.and_then(|data| name_in(&data.hostname)).or_else(|| name_in(&self.netbios)).or(first_label);
        let operating_system = self.os.as_deref().and_then(bounded_text);
        Ok(Asset {
            asset_id,
            source: ScannerKind::Qualys,
            hostname,
            fqdn,
            ipv4: self.ip.as_deref().and_then(bounded_text),
            os_category: operating_system.as_deref().map_or(OsCategory::Other, os_category),
            operating_system,
        })
    }
}

/// The host name in `value`, unless it is blank or an IP address.
fn name_in(value: &Option<String>) -> Option<String> {
    value.as_deref().and_then(bounded_text).filter(|name| name.parse::<IpAddr>().is_err())
}

/// What a detection's TYPE says it is.
#[derive(Clone, Copy, PartialEq)]
enum DetectionType {
    /// A vulnerability Qualys verified, or one it could not verify: both are findings.
    Vulnerability,
    /// Information gathered.
    Information,
}

impl Detection {
    fn normalize(
        &self,
        place: &Place,
        asset: &Asset,
        knowledge: &dyn KnowledgeLookup,
    ) -> Result<NormalizedRecord, RecordError> {
        let qid = place.required("QID", self.qid.as_deref(), WHOLE_NUMBER, whole_number)?;
        let kind = place.required("TYPE", self.kind.as_deref(), TYPES, detection_type)?;
        let severity = place.required("SEVERITY", self.severity.as_deref(), SEVERITIES, severity_level)?;
        let state = match (kind, place.parse("STATUS", self.status.as_deref(), STATUSES, finding_state)?) {
            (_, Some(state)) => state,
            (DetectionType::Information, None) => FindingState::Open,
            (DetectionType::Vulnerability, None) => return Err(place.missing("STATUS")),
        };
        let first_seen = place.time("FIRST_FOUND_DATETIME", &self.first_found_datetime)?;
        let first_seen = first_seen.ok_or_else(|| place.missing("FIRST_FOUND_DATETIME"))?;
        let last_seen = place.time("LAST_FOUND_DATETIME", &self.last_found_datetime)?;
        let last_seen = last_seen.ok_or_else(|| place.missing("LAST_FOUND_DATETIME"))?;
        let (port, protocol) = self.port_and_protocol(place)?;
        let (output, output_truncated) =
            match self.results.as_deref().filter(|results| !results.trim().is_empty()).map(sanitize_output) {
                Some((output, truncated)) => (Some(output), truncated),
                None => (None, false),
            };
        let entry = knowledge.entry(qid);
        let plugin_id = qid.to_string();
        let finding = Finding {
            finding_id: Finding::key(ScannerKind::Qualys, &asset.asset_id, &plugin_id, port, &protocol),
            source: ScannerKind::Qualys,
            asset_id: asset.asset_id.clone(),
            title: entry.and_then(|entry| entry.title.clone()).unwrap_or_else(|| format!("QID {plugin_id}")),
            plugin_id,
            port,
            protocol,
            service: None,
            severity: if kind == DetectionType::Information { Severity::Info } else { severity },
            state,
            family: entry.and_then(|entry| entry.category.clone()),
            cves: entry.map(|entry| entry.cves.clone()).unwrap_or_default(),
            cvss3_base_score: entry.and_then(|entry| entry.cvss3_base),
            vpr_score: None,
            synopsis: None,
            solution: entry.and_then(|entry| entry.solution.clone()),
            output,
            output_truncated,
            first_seen,
            last_seen,
            last_fixed: place.time("LAST_FIXED_DATETIME", &self.last_fixed_datetime)?,
            hostname: asset.hostname.clone(),
            ipv4: asset.ipv4.clone(),
            os_category: asset.os_category,
        };
        Ok(NormalizedRecord { finding, asset: asset.clone() })
    }

    /// Without PORT, a host-level detection: port 0, protocol `none`. With a port but
    /// no PROTOCOL (Qualys always sends both), TCP, as Tenable's findings.
    fn port_and_protocol(&self, place: &Place) -> Result<(u16, String), RecordError> {
        let port = place.parse("PORT", self.port.as_deref(), PORT, |text| u16::try_from(whole_number(text)?).ok())?;
        let Some(port) = port else {
            return Ok((0, "none".to_owned()));
        };
        let protocol =
            place.parse("PROTOCOL", self.protocol.as_deref(), PROTOCOL, |text| protocol_name(text).flatten())?;
        Ok((port, protocol.unwrap_or_else(|| "tcp".to_owned())))
    }
}

fn detection_type(text: &str) -> Option<DetectionType> {
    match text.to_ascii_lowercase().as_str() {
        "confirmed" | "potential" => Some(DetectionType::Vulnerability),
        "info" => Some(DetectionType::Information),
        _ => None,
    }
}

/// Qualys names its five levels minimal, medium, serious, critical and urgent, but its
/// labels run one step high against the model's: level 1 only lets an intruder collect
/// information about the host (what other scanners call info), level 2 lets it collect
/// sensitive information such as exact versions (low risk). 3 to 5 follow as medium,
/// high and critical, so that a Qualys 5 and a Tenable critical sort together.
fn severity_level(text: &str) -> Option<Severity> {
    match text {
        "1" => Some(Severity::Info),
        "2" => Some(Severity::Low),
        "3" => Some(Severity::Medium),
        "4" => Some(Severity::High),
        "5" => Some(Severity::Critical),
        _ => None,
    }
}

fn finding_state(text: &str) -> Option<FindingState> {
    match text.to_ascii_lowercase().as_str() {
        "new" | "active" => Some(FindingState::Open),
        "re-opened" => Some(FindingState::Reopened),
        "fixed" => Some(FindingState::Fixed),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
