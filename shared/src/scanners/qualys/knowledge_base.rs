//! The Qualys KnowledgeBase (`/api/2.0/fo/knowledge_base/vuln/?action=list&details=All`):
//! what a QID is. A detection names its QID only; the title, CVEs, CVSS v3 base score,
//! solution and category of its finding come from the QID's entry here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::page::{self, Answer, Place, WHOLE_NUMBER, whole_number};
use crate::normalize::fields::{bounded_text, oversized_list};
use crate::normalize::{ChunkError, RecordError};

/// What the KnowledgeBase says about one QID. Kept as JSON between syncs, so that a
/// sync asks only for the QIDs it has not seen or that changed since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeEntry {
    pub qid: u64,
    /// None when the KnowledgeBase gives none: the finding's title is then `QID <qid>`.
    #[serde(default)]
    pub title: Option<String>,
    /// Qualys' category ("General remote services"): the finding's family.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub cves: Vec<String>,
    #[serde(default)]
    pub cvss3_base: Option<f64>,
    #[serde(default)]
    pub solution: Option<String>,
    /// When Qualys last changed the entry (LAST_SERVICE_MODIFICATION_DATETIME).
    #[serde(default)]
    pub last_modified: Option<DateTime<Utc>>,
}

impl KnowledgeEntry {
    /// The entry of a QID the KnowledgeBase does not describe.
    pub fn unknown(qid: u64) -> Self {
        KnowledgeEntry {
            qid,
            title: None,
            category: None,
            cves: Vec::new(),
            cvss3_base: None,
            solution: None,
            last_modified: None,
        }
    }
}

/// Where the normalizer finds a QID's entry.
pub trait KnowledgeLookup {
    fn entry(&self, qid: u64) -> Option<&KnowledgeEntry>;
}

impl KnowledgeLookup for HashMap<u64, KnowledgeEntry> {
    fn entry(&self, qid: u64) -> Option<&KnowledgeEntry> {
        self.get(&qid)
    }
}

const KNOWLEDGE_BASE: Answer =
    Answer { root: "KNOWLEDGE_BASE_VULN_LIST_OUTPUT", name: "a KnowledgeBase page (KNOWLEDGE_BASE_VULN_LIST_OUTPUT)" };
const VULNS: &[&str] = &["RESPONSE", "VULN_LIST", "VULN"];

/// Reads each VULN of a KnowledgeBase page, in the page's order, handing its entry to
/// `keep`, and says how many there were. The page is streamed VULN by VULN; the first
/// unusable one ends it with a [`RecordError`] naming its QID and field and counting as
/// its index in the page.
pub fn each_entry(page: &[u8], mut keep: impl FnMut(KnowledgeEntry)) -> Result<u64, ChunkError> {
    let mut vulns = 0;
    page::each_element(page, &KNOWLEDGE_BASE, VULNS, |element| {
        keep(read_vuln(element, vulns)?);
        vulns += 1;
        Ok(())
    })?;
    Ok(vulns as u64)
}

const SCORE: &str = "a score from 0 to 10";

/// One VULN element, every value as its text.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct Vuln {
    qid: Option<String>,
    title: Option<String>,
    category: Option<String>,
    solution: Option<String>,
    last_service_modification_datetime: Option<String>,
    #[serde(default)]
    cve_list: CveList,
    cvss_v3: Option<CvssV3>,
}

/// A VULN's QID alone: what names a VULN whose element cannot be read whole.
#[derive(Deserialize)]
struct VulnQid {
    #[serde(rename = "QID")]
    qid: Option<String>,
}

#[derive(Default, Deserialize)]
struct CveList {
    #[serde(rename = "CVE", default)]
    cves: Vec<Cve>,
}

#[derive(Deserialize)]
struct Cve {
    #[serde(rename = "ID")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct CvssV3 {
    #[serde(rename = "BASE")]
    base: Option<String>,
}

/// The entry of `element`, the `position`-th VULN of the page.
fn read_vuln(element: &str, position: usize) -> Result<KnowledgeEntry, RecordError> {
    let place = |qid: Option<&str>| Place::new(position, "VULN", "QID", qid, position);
    let vuln = match page::deserialize::<Vuln>(element) {
        Ok(vuln) => vuln,
        Err(unreadable) => {
            let qid = page::deserialize::<VulnQid>(element).ok().and_then(|vuln| vuln.qid);
            return Err(place(qid.as_deref()).unreadable(unreadable));
        }
    };
    let place = place(vuln.qid.as_deref());
    let cve_bytes = vuln.cve_list.cves.iter().filter_map(|cve| cve.id.as_ref()).map(String::len).sum();
    if let Some(reason) = oversized_list(vuln.cve_list.cves.len(), cve_bytes) {
        return Err(place.error("CVE_LIST", reason));
    }
    let base = vuln.cvss_v3.as_ref().and_then(|cvss| cvss.base.as_deref());
    Ok(KnowledgeEntry {
        qid: place.required("QID", vuln.qid.as_deref(), WHOLE_NUMBER, whole_number)?,
        title: vuln.title.as_deref().and_then(bounded_text),
        category: vuln.category.as_deref().and_then(bounded_text),
        cves: vuln.cve_list.cves.iter().filter_map(|cve| cve.id.as_deref().and_then(bounded_text)).collect(),
        cvss3_base: place.parse("CVSS_V3.BASE", base, SCORE, score)?,
        solution: vuln.solution.as_deref().and_then(bounded_text),
        last_modified: place.time("LAST_SERVICE_MODIFICATION_DATETIME", &vuln.last_service_modification_datetime)?,
    })
}

fn score(text: &str) -> Option<f64> {
    text.parse().ok().filter(|score| (0.0..=10.0).contains(score))
}

#[cfg(test)]
mod tests;
