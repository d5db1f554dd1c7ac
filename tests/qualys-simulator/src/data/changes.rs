//! The estate changing between syncs: what a new scan finds, applied to the dataset.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use simulator_kit::{RoundRobin, SplitMix64};

use super::{DetectionStatus, Host, Lifecycle, candidates_for, time};
use crate::data::{Dataset, Detection};

/// The generator's streams for batches of changes, apart from hosts and host ids.
const CHANGE_STREAM: u64 = 3 << 40;

/// What the next scan finds changed. Which detections change is drawn from the seed and the
/// number of batches applied before, so it is the same on every run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Changes {
    /// New, Active or Re-Opened detections to mark Fixed (`LAST_FIXED_DATETIME` = now).
    pub fix: usize,
    /// Fixed detections to mark Re-Opened (`LAST_FOUND_DATETIME` = now).
    pub reopen: usize,
    /// New detections of QIDs a host does not report yet (first and last found now).
    pub new_findings: usize,
    /// Detections Qualys stops reporting altogether (purged), on hosts that keep others.
    pub gone: usize,
    /// Hosts purged: gone from the host list and the detection answers, with their detections.
    pub vanished_hosts: usize,
}

/// What a batch of changes touched: fewer than asked when the dataset holds fewer candidates.
/// Vanished hosts and gone detections are drawn first, so no key is in two lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeReport {
    /// The time of the scan, whole seconds as Qualys writes times: the `LAST_UPDATE_DATETIME`
    /// of every fixed, reopened and added detection, and the `last_vm_processed` (and
    /// LAST_SCAN_DATETIME) of every host they, or gone detections, belong to.
    pub changed_at: DateTime<Utc>,
    pub fixed: Vec<FindingKey>,
    pub reopened: Vec<FindingKey>,
    pub added: Vec<FindingKey>,
    /// Detections no answer holds any more, on hosts still listed.
    pub gone: Vec<FindingKey>,
    /// The ids of the purged hosts.
    pub vanished_hosts: Vec<u64>,
}

/// What identifies a detection: host and QID alone would merge one QID on two ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindingKey {
    pub host_id: u64,
    pub qid: u32,
    pub port: Option<u16>,
    pub protocol: Option<String>,
}

impl FindingKey {
    pub fn of(host: &Host, detection: &Detection) -> FindingKey {
        FindingKey {
            host_id: host.id,
            qid: detection.qid,
            port: detection.port,
            protocol: detection.protocol.map(str::to_owned),
        }
    }
}

/// A detection by its position: (host index, detection index).
type Position = (usize, usize);

impl Dataset {
    /// Applies one batch of changes as seen by one scan at `now` (cut to whole seconds).
    pub(crate) fn apply_changes(&mut self, changes: Changes, now: DateTime<Utc>) -> ChangeReport {
        let now = now.timestamp();
        let mut rng = SplitMix64::for_stream(self.seed, CHANGE_STREAM + self.revision);
        self.revision += 1;

        let vanished_hosts = self.purge_hosts(changes.vanished_hosts, &mut rng);
        let mut touched = HashSet::new();
        let gone = self.purge_detections(changes.gone, &mut rng, &mut touched);
        let to_fix = self.pick(|status| status != DetectionStatus::Fixed, changes.fix, &mut rng);
        let to_reopen = self.pick(|status| status == DetectionStatus::Fixed, changes.reopen, &mut rng);
        for &(host, index) in &to_fix {
            let detection = &mut self.hosts[host].detections[index];
            detection.status = DetectionStatus::Fixed;
            detection.last_fixed = Some(time(now));
            detection.last_update = time(now);
        }
        for &(host, index) in &to_reopen {
            let detection = &mut self.hosts[host].detections[index];
            detection.status = DetectionStatus::ReOpened;
            detection.last_found = time(now);
            detection.times_found += 1;
            detection.last_update = time(now);
        }
        touched.extend(to_fix.iter().chain(&to_reopen).map(|&(host, _)| host));
        let fixed = self.keys(&to_fix);
        let reopened = self.keys(&to_reopen);
        let added = self.add_detections(changes.new_findings, now, &mut rng, &mut touched);
        for host in touched {
            self.rescan(host, now);
        }
        ChangeReport { changed_at: time(now), fixed, reopened, added, gone, vanished_hosts }
    }

    /// Removes up to `count` hosts that have detections, returning their ids.
    fn purge_hosts(&mut self, count: usize, rng: &mut SplitMix64) -> Vec<u64> {
        let candidates = self.hosts.iter().filter(|host| !host.detections.is_empty()).map(|host| host.id);
        let purged = rng.draw(candidates.collect(), count);
        self.hosts.retain(|host| purged.binary_search(&host.id).is_err());
        purged
    }

    /// Removes up to `count` detections, never the first of a host, so that every host keeps one.
    fn purge_detections(
        &mut self,
        count: usize,
        rng: &mut SplitMix64,
        touched: &mut HashSet<usize>,
    ) -> Vec<FindingKey> {
        let candidates = (0..self.hosts.len())
            .flat_map(|host| (1..self.hosts[host].detections.len()).map(move |index| (host, index)));
        let purged = rng.draw(candidates.collect(), count);
        let keys = self.keys(&purged);
        for &(host, index) in purged.iter().rev() {
            self.hosts[host].detections.remove(index);
            touched.insert(host);
        }
        keys
    }

    /// Up to `count` detections whose status passes `wanted`, drawn at random, in dataset order.
    fn pick(&self, wanted: impl Fn(DetectionStatus) -> bool, count: usize, rng: &mut SplitMix64) -> Vec<Position> {
        let candidates = self.hosts.iter().enumerate().flat_map(|(host, facts)| {
            facts.detections.iter().enumerate().filter(|(_, d)| wanted(d.status)).map(move |(index, _)| (host, index))
        });
        rng.draw(candidates.collect(), count)
    }

    /// Adds `count` New detections, going round the hosts in a random order so that they spread.
    fn add_detections(
        &mut self,
        count: usize,
        now: i64,
        rng: &mut SplitMix64,
        touched: &mut HashSet<usize>,
    ) -> Vec<FindingKey> {
        let mut hosts = RoundRobin::shuffled(self.hosts.len(), rng);
        let mut added = Vec::with_capacity(count);
        while added.len() < count {
            let unreported = |host: usize| {
                let reported: HashSet<u32> = self.hosts[host].detections.iter().map(|d| d.qid).collect();
                let candidates = candidates_for(self.hosts[host].profile).into_iter();
                candidates.filter(|candidate| !reported.contains(&candidate.vuln.qid)).collect()
            };
            let Some((host, candidates)) = hosts.next_with(unreported) else {
                break;
            };
            let location = *rng.pick(&candidates);
            let first_sighting = Lifecycle {
                status: DetectionStatus::New,
                first_found: now,
                last_found: now,
                times_found: 1,
                last_update: now,
                last_fixed: None,
            };
            let unique_vuln_id = Some(self.take_unique_vuln_id());
            let detection = self.hosts[host].detection(location, first_sighting, unique_vuln_id, rng);
            added.push(FindingKey::of(&self.hosts[host], &detection));
            self.hosts[host].detections.push(detection);
            touched.insert(host);
        }
        added
    }

    /// The host was scanned and processed at `now`: every detection was tested, the open ones
    /// found again. Statuses other than the changed ones stay as they were.
    fn rescan(&mut self, host: usize, now: i64) {
        let host = &mut self.hosts[host];
        host.last_scan = time(now);
        host.last_vm_processed = time(now);
        for detection in &mut host.detections {
            detection.last_test = time(now);
            detection.last_processed = time(now);
            if detection.status != DetectionStatus::Fixed && detection.last_found != time(now) {
                detection.last_found = time(now);
                detection.times_found += 1;
            }
        }
    }

    fn keys(&self, positions: &[Position]) -> Vec<FindingKey> {
        positions
            .iter()
            .map(|&(host, index)| FindingKey::of(&self.hosts[host], &self.hosts[host].detections[index]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-06-15T13:14:15Z, and a change an hour and a half later.
    const ANCHOR: i64 = 1_718_457_255;

    fn now() -> DateTime<Utc> {
        time(ANCHOR + 5_400) + chrono::TimeDelta::milliseconds(750)
    }

    fn changes() -> Changes {
        Changes { fix: 7, reopen: 5, new_findings: 9, gone: 4, vanished_hosts: 2 }
    }

    fn all_keys(dataset: &Dataset) -> HashSet<FindingKey> {
        dataset.hosts().iter().flat_map(|host| host.detections.iter().map(|d| FindingKey::of(host, d))).collect()
    }

    fn find<'a>(dataset: &'a Dataset, key: &FindingKey) -> &'a Detection {
        let host = dataset.host(key.host_id).expect("host still there");
        host.detections.iter().find(|d| FindingKey::of(host, d) == *key).expect("detection still there")
    }

    #[test]
    fn changes_touch_exactly_what_the_report_lists() {
        let mut dataset = Dataset::generate(7, 60, 6, ANCHOR);
        let before = all_keys(&dataset);
        let report = dataset.apply_changes(changes(), now());
        assert_eq!(report.changed_at, time(ANCHOR + 5_400), "cut to whole seconds");
        let counts = (report.fixed.len(), report.reopened.len(), report.added.len(), report.gone.len());
        assert_eq!(counts, (7, 5, 9, 4));
        assert_eq!(report.vanished_hosts.len(), 2);

        let after = all_keys(&dataset);
        assert!(report.vanished_hosts.iter().all(|id| dataset.host(*id).is_none()));
        assert!(report.gone.iter().all(|key| before.contains(key) && !after.contains(key)));
        assert!(report.added.iter().all(|key| !before.contains(key) && after.contains(key)));
        assert_eq!(after.len(), before.len() - 12 - 4 + 9);

        let changed: HashSet<&FindingKey> = report.fixed.iter().chain(&report.reopened).chain(&report.added).collect();
        assert_eq!(changed.len(), 21);
        for host in dataset.hosts() {
            for detection in &host.detections {
                let key = FindingKey::of(host, detection);
                assert_eq!(detection.last_update == report.changed_at, changed.contains(&key), "{key:?}");
            }
        }
        for key in &report.fixed {
            let detection = find(&dataset, key);
            assert_eq!((detection.status, detection.last_fixed), (DetectionStatus::Fixed, Some(report.changed_at)));
        }
        for key in &report.reopened {
            let detection = find(&dataset, key);
            assert_eq!((detection.status, detection.last_found), (DetectionStatus::ReOpened, report.changed_at));
        }
        for key in &report.added {
            let detection = find(&dataset, key);
            let sighting = (detection.status, detection.first_found, detection.times_found);
            assert_eq!(sighting, (DetectionStatus::New, report.changed_at, 1));
        }
        let touched: HashSet<u64> =
            changed.iter().map(|key| key.host_id).chain(report.gone.iter().map(|key| key.host_id)).collect();
        for host in dataset.hosts() {
            assert_eq!(host.last_vm_processed == report.changed_at, touched.contains(&host.id));
        }
    }

    #[test]
    fn changes_are_deterministic_and_capped_by_what_the_dataset_holds() {
        let run = || {
            let mut dataset = Dataset::generate(11, 10, 3, ANCHOR);
            let first = dataset.apply_changes(changes(), now());
            let second = dataset.apply_changes(changes(), now());
            (first, second)
        };
        let (first, second) = run();
        assert_eq!((first.clone(), second.clone()), run());
        assert_ne!(first.fixed, second.fixed);

        let mut dataset = Dataset::generate(11, 10, 3, ANCHOR);
        let fixed = dataset
            .hosts()
            .iter()
            .flat_map(|host| &host.detections)
            .filter(|d| d.status == DetectionStatus::Fixed)
            .count();
        let report = dataset.apply_changes(Changes { reopen: 1000, ..Changes::default() }, now());
        assert_eq!(report.reopened.len(), fixed);
        let report = dataset.apply_changes(Changes { vanished_hosts: 1000, ..Changes::default() }, now());
        assert_eq!(report.vanished_hosts.len(), 10);
        assert!(dataset.hosts().is_empty());
    }
}
