//! The deterministic dataset: hosts and their detections, as the Host List Detection API sends
//! them.
//!
//! Everything derives from (seed, hosts, detections_per_host) and an anchor day. Times are
//! offsets back from the anchor (the simulator uses the current UTC day at midnight), so the
//! data is identical for every run on the same day and always lies in the past. Changes
//! applied later (see [`changes`]) stamp what they touch with their own time.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use simulator_kit::catalog::Transport;
use simulator_kit::{SplitMix64, host_ipv4, pick_findings};

use crate::catalog::{
    HOST_PROFILES, HostProfile, KNOWLEDGE_BASE, KnowledgeBaseVuln, PADDING_QID, Placement, Platform, VulnType,
    knowledge_base_vuln,
};

mod changes;

pub use changes::{ChangeReport, Changes, FindingKey};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// Streams of the generator not tied to a host, kept apart from host indexes.
const HOST_ID_STREAM: u64 = 1 << 40;
const FIRST_HOST_ID: u64 = 1_234_000;
const FIRST_UNIQUE_VULN_ID: u64 = 8_800_000_000;
/// First port of the Windows dynamic RPC range: where padding detections go when a host needs
/// more detections than its services offer.
const DYNAMIC_PORTS_START: u16 = 49664;
const DOMAINS: &[&str] = &["corp.example", "dmz.example.net", "lab.example.org"];

/// A detection's type, from what the scan could verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetectionType {
    Confirmed,
    Potential,
    /// Information gathered.
    Info,
}

impl DetectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionType::Confirmed => "Confirmed",
            DetectionType::Potential => "Potential",
            DetectionType::Info => "Info",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DetectionStatus {
    New,
    Active,
    ReOpened,
    Fixed,
}

impl DetectionStatus {
    pub const ALL: [DetectionStatus; 4] =
        [DetectionStatus::New, DetectionStatus::Active, DetectionStatus::ReOpened, DetectionStatus::Fixed];
    /// What Qualys answers without a `status` parameter: Fixed detections only when asked.
    pub const DEFAULT: [DetectionStatus; 3] =
        [DetectionStatus::New, DetectionStatus::Active, DetectionStatus::ReOpened];

    pub fn as_str(self) -> &'static str {
        match self {
            DetectionStatus::New => "New",
            DetectionStatus::Active => "Active",
            DetectionStatus::ReOpened => "Re-Opened",
            DetectionStatus::Fixed => "Fixed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str().eq_ignore_ascii_case(text))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsData {
    pub hostname: String,
    pub domain: Option<String>,
    pub fqdn: Option<String>,
}

/// A host as the Host List Detection API describes it, with every detection it has (Fixed
/// ones included), sorted as served.
#[derive(Clone, Debug)]
pub struct Host {
    pub id: u64,
    pub asset_id: u64,
    pub ip: String,
    /// IP, DNS, NETBIOS or AGENT.
    pub tracking_method: &'static str,
    /// `None` when the scanner could not fingerprint it: no OS element.
    pub os: Option<&'static str>,
    /// `None`: neither DNS nor DNS_DATA.
    pub dns_data: Option<DnsData>,
    pub netbios: Option<String>,
    /// LAST_SCAN_DATETIME and LAST_VM_SCANNED_DATE.
    pub last_scan: DateTime<Utc>,
    /// When the last scan's results were processed: what `vm_processed_after` compares.
    pub last_vm_processed: DateTime<Utc>,
    pub detections: Vec<Detection>,
    pub(crate) profile: &'static HostProfile,
    /// Answers write this host's values on lines of their own, indented inside their element.
    pub(crate) values_on_own_lines: bool,
}

impl Host {
    /// The DNS element: the FQDN when known, else the bare host name.
    pub fn dns(&self) -> Option<&str> {
        self.dns_data.as_ref().map(|dns| dns.fqdn.as_deref().unwrap_or(&dns.hostname))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// `None` in the older format that predates it.
    pub unique_vuln_id: Option<u64>,
    pub qid: u32,
    pub detection_type: DetectionType,
    /// 1 to 5, the QID's.
    pub severity: u8,
    /// `None` (with `protocol`) for host-level detections.
    pub port: Option<u16>,
    /// `tcp` or `udp`.
    pub protocol: Option<&'static str>,
    /// Sent only with a port.
    pub ssl: bool,
    /// The RESULTS text as in its CDATA section; empty: no RESULTS element.
    pub results: String,
    pub status: DetectionStatus,
    pub first_found: DateTime<Utc>,
    pub last_found: DateTime<Utc>,
    pub times_found: u32,
    pub last_test: DateTime<Utc>,
    /// When the status last changed: what `detection_updated_since` compares.
    pub last_update: DateTime<Utc>,
    /// Fixed detections, and Re-Opened ones (when they were fixed before).
    pub last_fixed: Option<DateTime<Utc>>,
    pub is_ignored: bool,
    pub is_disabled: bool,
    pub last_processed: DateTime<Utc>,
}

/// The hosts the simulator serves, sorted by id.
#[derive(Clone)]
pub struct Dataset {
    seed: u64,
    anchor_secs: i64,
    /// How many batches of changes were applied since generation.
    revision: u64,
    hosts: Vec<Host>,
    next_unique_vuln_id: u64,
}

impl Dataset {
    /// `anchor_unix_secs` is truncated to its UTC day; every time lies before that day.
    pub fn generate(seed: u64, hosts: u32, detections_per_host: u32, anchor_unix_secs: i64) -> Dataset {
        let anchor_secs = anchor_unix_secs.div_euclid(DAY) * DAY;
        let mut dataset =
            Dataset { seed, anchor_secs, revision: 0, hosts: Vec::new(), next_unique_vuln_id: FIRST_UNIQUE_VULN_ID };
        let mut ids = SplitMix64::for_stream(seed, HOST_ID_STREAM);
        let mut id = FIRST_HOST_ID + ids.below(1000);
        for index in 0..hosts as usize {
            if index > 0 {
                // Mostly consecutive ids, with gaps: ID_SETs hold both IDs and ID_RANGEs.
                id += if ids.percent(70) { 1 } else { ids.between(2, 40) as u64 };
            }
            let host = HostGenerator::new(seed, index, anchor_secs).generate(id, detections_per_host, &mut dataset);
            dataset.hosts.push(host);
        }
        dataset
    }

    /// The start (UTC midnight, unix seconds) of the day the data is anchored to.
    pub fn anchor_unix_secs(&self) -> i64 {
        self.anchor_secs
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host(&self, id: u64) -> Option<&Host> {
        self.hosts.binary_search_by_key(&id, |host| host.id).ok().map(|index| &self.hosts[index])
    }

    /// Every QID a detection of the dataset refers to.
    pub fn qids(&self) -> BTreeSet<u32> {
        self.hosts.iter().flat_map(|host| &host.detections).map(|detection| detection.qid).collect()
    }

    /// Every entry the KnowledgeBase serves: those of [`qids`](Self::qids) and more.
    pub fn knowledge_base(&self) -> &'static [KnowledgeBaseVuln] {
        KNOWLEDGE_BASE
    }

    fn take_unique_vuln_id(&mut self) -> u64 {
        let id = self.next_unique_vuln_id;
        self.next_unique_vuln_id += 1;
        id
    }
}

/// Where a QID is detected on a host: no port for host-level detections.
#[derive(Clone, Copy)]
struct Location {
    vuln: &'static KnowledgeBaseVuln,
    port: Option<u16>,
    protocol: Option<&'static str>,
    ssl: bool,
}

/// A detection's status and the times of its history.
struct Lifecycle {
    status: DetectionStatus,
    first_found: i64,
    last_found: i64,
    times_found: u32,
    last_update: i64,
    last_fixed: Option<i64>,
}

struct HostGenerator {
    index: usize,
    anchor_secs: i64,
    rng: SplitMix64,
    profile: &'static HostProfile,
}

impl HostGenerator {
    fn new(seed: u64, index: usize, anchor_secs: i64) -> Self {
        let mut rng = SplitMix64::for_stream(seed, index as u64);
        let profile = rng.pick_weighted(HOST_PROFILES, |profile| profile.weight);
        Self { index, anchor_secs, rng, profile }
    }

    fn generate(mut self, id: u64, detections_per_host: u32, dataset: &mut Dataset) -> Host {
        let index = self.index;
        let hostname = format!("{}-{:03}", self.profile.hostname_prefix, index + 1);
        let dns_data = self.dns_data(&hostname);
        let netbios = (self.profile.platform == Platform::Windows).then(|| hostname.to_uppercase());
        let tracking_method = self.tracking_method(dns_data.as_ref());
        // Three hosts in four were scanned in the last 20 days, the others long ago.
        let days_ago = if self.rng.percent(75) { self.rng.between(1, 20) } else { self.rng.between(45, 300) };
        let scan = self.anchor_secs - days_ago * DAY + self.rng.between(0, 20 * HOUR);
        let processed = scan + self.rng.between(5, 90) * MINUTE;
        let mut host = Host {
            id,
            asset_id: 20_000_000 + index as u64 * 11 + self.rng.below(10),
            ip: host_ipv4(index),
            tracking_method,
            os: self.profile.os,
            dns_data,
            netbios,
            last_scan: time(scan),
            last_vm_processed: time(processed),
            detections: Vec::new(),
            profile: self.profile,
            values_on_own_lines: self.rng.percent(20),
        };
        for location in self.pick_locations(detections_per_host as usize) {
            let lifecycle = self.lifecycle(scan, processed);
            let unique_vuln_id = self.rng.percent(85).then(|| dataset.take_unique_vuln_id());
            let detection = host.detection(location, lifecycle, unique_vuln_id, &mut self.rng);
            host.detections.push(detection);
        }
        host
    }

    fn dns_data(&mut self, hostname: &str) -> Option<DnsData> {
        let resolvable = matches!(self.profile.platform, Platform::Windows | Platform::Ubuntu | Platform::RedHat);
        let roll = self.rng.below(100);
        let domain = *self.rng.pick(DOMAINS);
        match (resolvable, roll) {
            (true, 0..75) | (false, 0..40) => Some(DnsData {
                hostname: hostname.to_owned(),
                domain: Some(domain.to_owned()),
                fqdn: Some(format!("{hostname}.{domain}")),
            }),
            (true, 75..90) | (false, 40..60) => {
                Some(DnsData { hostname: hostname.to_owned(), domain: None, fqdn: None })
            }
            _ => None,
        }
    }

    fn tracking_method(&mut self, dns_data: Option<&DnsData>) -> &'static str {
        let has_fqdn = dns_data.is_some_and(|dns| dns.fqdn.is_some());
        let method = match self.profile.platform {
            Platform::Windows => {
                *self.rng.pick_weighted(&[("IP", 60), ("NETBIOS", 15), ("DNS", 10), ("AGENT", 15)], |m| m.1)
            }
            Platform::Ubuntu | Platform::RedHat => {
                *self.rng.pick_weighted(&[("IP", 70), ("DNS", 15), ("AGENT", 15)], |m| m.1)
            }
            _ => ("IP", 1),
        };
        if method.0 == "DNS" && !has_fqdn { "IP" } else { method.0 }
    }

    /// Exactly `count` distinct (QID, port, protocol) locations. One host in three gets the
    /// same QID on two ports first, the trap for keys of host + QID alone.
    fn pick_locations(&mut self, count: usize) -> Vec<Location> {
        let twin = self.index.is_multiple_of(3);
        let finding = |location: &Location| (location.vuln.qid, location.vuln.severity);
        pick_findings(&mut self.rng, candidates_for(self.profile), count, twin, finding, padding_locations())
    }

    /// A status drawn as a real estate spreads them, and a history that led to it, ending
    /// with the host's last scan (`scan`) processed at `processed`.
    fn lifecycle(&mut self, scan: i64, processed: i64) -> Lifecycle {
        let statuses = [
            (DetectionStatus::New, 12),
            (DetectionStatus::Active, 48),
            (DetectionStatus::ReOpened, 10),
            (DetectionStatus::Fixed, 30),
        ];
        let status = self.rng.pick_weighted(&statuses, |status| status.1).0;
        let rng = &mut self.rng;
        match status {
            DetectionStatus::New => Lifecycle {
                status,
                first_found: scan,
                last_found: scan,
                times_found: 1,
                last_update: processed,
                last_fixed: None,
            },
            DetectionStatus::Active => {
                let first_found = scan - rng.between(7, 400) * DAY - rng.between(0, DAY - 1);
                Lifecycle {
                    status,
                    first_found,
                    last_found: scan,
                    times_found: rng.between(2, 80) as u32,
                    // It turned Active when the scan after its first one found it again.
                    last_update: (first_found + rng.between(1, 30) * DAY).min(processed),
                    last_fixed: None,
                }
            }
            DetectionStatus::ReOpened => {
                let first_found = scan - rng.between(30, 400) * DAY;
                Lifecycle {
                    status,
                    first_found,
                    last_found: scan,
                    times_found: rng.between(3, 80) as u32,
                    last_update: processed,
                    // Qualys keeps the time of the fix it reopened.
                    last_fixed: Some(rng.between(first_found + DAY, scan - DAY)),
                }
            }
            DetectionStatus::Fixed => {
                let fixed_by_last_scan = rng.percent(50);
                let fixed = if fixed_by_last_scan { scan } else { scan - rng.between(1, 60) * DAY };
                let last_found = fixed - rng.between(1, 30) * DAY;
                Lifecycle {
                    status,
                    first_found: last_found - rng.between(0, 300) * DAY,
                    last_found,
                    times_found: rng.between(1, 80) as u32,
                    last_update: if fixed_by_last_scan { processed } else { fixed + rng.between(5, 90) * MINUTE },
                    last_fixed: Some(fixed),
                }
            }
        }
    }
}

impl Host {
    /// A detection of this host at `location`, as its last scan left it.
    fn detection(
        &self,
        location: Location,
        lifecycle: Lifecycle,
        unique_vuln_id: Option<u64>,
        rng: &mut SplitMix64,
    ) -> Detection {
        let vuln = location.vuln;
        let detection_type = match vuln.vuln_type {
            VulnType::Vulnerability => DetectionType::Confirmed,
            VulnType::PotentialVulnerability => DetectionType::Potential,
            VulnType::VulnerabilityOrPotential if rng.percent(50) => DetectionType::Confirmed,
            VulnType::VulnerabilityOrPotential => DetectionType::Potential,
            VulnType::InformationGathered => DetectionType::Info,
        };
        Detection {
            unique_vuln_id,
            qid: vuln.qid,
            detection_type,
            severity: vuln.severity,
            port: location.port,
            protocol: location.protocol,
            ssl: location.ssl,
            results: self.results(vuln.results, location.port),
            status: lifecycle.status,
            first_found: time(lifecycle.first_found),
            last_found: time(lifecycle.last_found),
            times_found: lifecycle.times_found,
            last_test: self.last_scan,
            last_update: time(lifecycle.last_update),
            last_fixed: lifecycle.last_fixed.map(time),
            is_ignored: rng.percent(3),
            is_disabled: false,
            last_processed: self.last_vm_processed,
        }
    }

    /// A QID's results template filled in with this host's facts.
    fn results(&self, template: &str, port: Option<u16>) -> String {
        let open_tcp: Vec<String> = self
            .profile
            .services
            .iter()
            .filter(|service| service.transport == Transport::Tcp)
            .map(|service| format!("{}\t{}\t{}\t{}", service.port, service.name, service.name, service.name))
            .collect();
        template
            .replace("{host}", self.dns_data.as_ref().map_or(&self.ip, |dns| &dns.hostname))
            .replace("{dns}", self.dns().unwrap_or("No registered hostname"))
            .replace("{ip}", &self.ip)
            .replace("{port}", &port.map(|port| port.to_string()).unwrap_or_default())
            .replace("{os}", self.os.unwrap_or("Unknown"))
            .replace("{netbios}", self.netbios.as_deref().unwrap_or_default())
            .replace("{web_server}", self.profile.web_server)
            .replace("{open_tcp}", &open_tcp.join("\n"))
    }
}

/// Every location the profile's services offer, in KnowledgeBase order.
fn candidates_for(profile: &'static HostProfile) -> Vec<Location> {
    let mut candidates = Vec::new();
    for vuln in KNOWLEDGE_BASE.iter().filter(|vuln| vuln.applies_to(profile.platform)) {
        if let Placement::Host = vuln.placement {
            candidates.push(Location { vuln, port: None, protocol: None, ssl: false });
            continue;
        }
        let services = profile.services.iter().filter(|service| match vuln.placement {
            Placement::Services(names) => names.contains(&service.name),
            Placement::TlsServices => service.tls,
            Placement::Host | Placement::Padding => false,
        });
        candidates.extend(services.map(|service| Location {
            vuln,
            port: Some(service.port),
            protocol: Some(service.transport.lower()),
            ssl: service.tls,
        }));
    }
    candidates
}

fn padding_locations() -> impl Iterator<Item = Location> {
    let vuln = knowledge_base_vuln(PADDING_QID).unwrap_or(&KNOWLEDGE_BASE[0]);
    (DYNAMIC_PORTS_START..).map(move |port| Location { vuln, port: Some(port), protocol: Some("tcp"), ssl: false })
}

fn time(unix_secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_secs, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// 2024-06-15T13:14:15Z: any time of day, the anchor is that day's midnight.
    const ANCHOR: i64 = 1_718_457_255;

    fn dataset() -> Dataset {
        Dataset::generate(7, 120, 9, ANCHOR)
    }

    fn keys(dataset: &Dataset) -> Vec<FindingKey> {
        dataset.hosts().iter().flat_map(|host| host.detections.iter().map(|d| FindingKey::of(host, d))).collect()
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(keys(&dataset()), keys(&dataset()));
        assert_ne!(keys(&dataset()), keys(&Dataset::generate(8, 120, 9, ANCHOR)));
        assert_eq!(dataset().anchor_unix_secs(), 1_718_409_600);
    }

    #[test]
    fn detections_per_host_is_exact_and_keys_unique_even_beyond_what_services_offer() {
        for per_host in [0, 1, 9, 40] {
            let dataset = Dataset::generate(3, 25, per_host, ANCHOR);
            assert_eq!(dataset.hosts().len(), 25);
            assert!(dataset.hosts().iter().all(|host| host.detections.len() == per_host as usize));
            let keys = keys(&dataset);
            assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        }
    }

    #[test]
    fn host_ids_ascend_with_gaps_and_runs() {
        let dataset = dataset();
        let ids: Vec<u64> = dataset.hosts().iter().map(|host| host.id).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ids.windows(2).any(|pair| pair[1] == pair[0] + 1));
        assert!(ids.windows(2).any(|pair| pair[1] > pair[0] + 1));
        assert_eq!(dataset.host(ids[5]).map(|host| host.id), Some(ids[5]));
        assert!(dataset.host(ids[0] - 1).is_none());
    }

    #[test]
    fn detections_cover_every_type_status_and_severity_with_consistent_times() {
        let dataset = dataset();
        let detections: Vec<&Detection> = dataset.hosts().iter().flat_map(|host| &host.detections).collect();
        let statuses: HashSet<DetectionStatus> = detections.iter().map(|d| d.status).collect();
        let types: HashSet<DetectionType> = detections.iter().map(|d| d.detection_type).collect();
        let severities: HashSet<u8> = detections.iter().map(|d| d.severity).collect();
        assert_eq!((statuses.len(), types.len(), severities.len()), (4, 3, 5));
        assert!(detections.iter().any(|d| d.port.is_none()) && detections.iter().any(|d| d.port.is_some()));
        assert!(detections.iter().any(|d| d.unique_vuln_id.is_none()));
        assert!(detections.iter().any(|d| d.protocol == Some("udp")));
        let anchor = time(ANCHOR);
        for detection in detections {
            assert_eq!(detection.port.is_some(), detection.protocol.is_some());
            assert!(detection.first_found <= detection.last_found);
            assert!(detection.last_update <= detection.last_processed && detection.last_processed < anchor);
            match detection.status {
                DetectionStatus::Fixed => {
                    assert!(detection.last_fixed.is_some_and(|fixed| fixed > detection.last_found))
                }
                DetectionStatus::ReOpened => {
                    assert!(detection.last_fixed.is_some_and(|fixed| fixed < detection.last_found))
                }
                DetectionStatus::New | DetectionStatus::Active => assert_eq!(detection.last_fixed, None),
            }
        }
    }

    #[test]
    fn hosts_look_like_a_real_estate() {
        let dataset = dataset();
        let hosts = dataset.hosts();
        let os: HashSet<Option<&str>> = hosts.iter().map(|host| host.os).collect();
        assert!(os.contains(&Some("ExtremeXOS Network Operating System")) && os.contains(&Some("Cisco IOS 15.2(4)E7")));
        assert!(os.contains(&None));
        let methods: HashSet<&str> = hosts.iter().map(|host| host.tracking_method).collect();
        assert_eq!(methods.len(), 4);
        assert!(hosts.iter().any(|host| host.dns_data.is_none()));
        assert!(hosts.iter().any(|host| host.dns_data.as_ref().is_some_and(|dns| dns.fqdn.is_none())));
        assert!(hosts.iter().any(|host| host.netbios.is_some()));
        assert!(hosts.iter().any(|host| host.values_on_own_lines));
        let results: Vec<&str> = hosts.iter().flat_map(|host| &host.detections).map(|d| d.results.as_str()).collect();
        assert!(results.iter().any(|text| text.contains("&apos;")) && results.iter().any(|text| text.contains("<b>")));
        assert!(results.iter().any(|text| text.is_empty()));
        assert!(results.iter().all(|text| !text.contains('{')), "every placeholder is filled");
    }

    #[test]
    fn every_qid_used_is_in_the_knowledge_base() {
        let dataset = Dataset::generate(5, 60, 30, ANCHOR);
        let served: HashSet<u32> = dataset.knowledge_base().iter().map(|vuln| vuln.qid).collect();
        assert!(dataset.qids().iter().all(|qid| served.contains(qid)));
        assert!(dataset.qids().contains(&PADDING_QID));
    }
}
