//! The estate changing between scans, for incremental syncs: findings fixed, reopened and newly
//! found, every changed record stamped with the time of the change. The generated data is at
//! least half a day old, so `since` = the time of a change returns exactly what changed then.

use std::collections::HashSet;
use std::ops::Range;

use serde_json::{Value, json};
use simulator_kit::{RoundRobin, SplitMix64};

use super::{Candidate, Dataset, Lifecycle, Sighting, candidates_for, iso_millis};
use crate::filters::VulnState;

/// The generator's streams for batches of changes, apart from assets, scans and tags.
const CHANGE_STREAM: u64 = 3 << 40;

/// What the next scan finds changed. Which findings change is drawn from the seed and the
/// number of batches applied before, so it is the same on every run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Changes {
    /// OPEN findings to mark FIXED (`last_found` = `last_fixed` = now).
    pub fix: usize,
    /// FIXED findings to mark REOPENED (`last_found` = now, no `last_fixed`).
    pub reopen: usize,
    /// OPEN findings to add to existing assets, of plugins not reported on the asset yet
    /// (`first_found` = `last_found` = now).
    pub new_findings: usize,
    /// Findings the scanner stops reporting altogether (gone from every export, as
    /// when a plugin is retired), on assets that keep others.
    pub gone: usize,
    /// Assets the vulns export stops returning: all their findings go, the asset
    /// record stays in the assets export.
    pub vanished_assets: usize,
}

/// The findings a batch of changes touched: fewer than asked when the dataset holds fewer
/// candidates (OPEN findings to fix, FIXED ones to reopen, plugins an asset lacks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeReport {
    /// The time of the change: the `last_found` of every changed record, and the
    /// `last_fixed` of the fixed ones.
    pub changed_at_unix_ms: i64,
    pub fixed: Vec<FindingKey>,
    pub reopened: Vec<FindingKey>,
    pub added: Vec<FindingKey>,
    /// Every finding no export returns any more: the `gone` ones and those of the
    /// vanished assets.
    pub gone: Vec<FindingKey>,
    /// The uuids of the vanished assets.
    pub vanished_assets: Vec<String>,
}

/// What identifies a finding: asset and plugin alone would merge one plugin on two ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FindingKey {
    pub asset_uuid: String,
    pub plugin_id: u32,
    pub port: u16,
    pub protocol: String,
}

impl FindingKey {
    /// The key of a vuln record as exported (`port.port` may be a number or a string).
    pub fn of_record(record: &Value) -> Option<FindingKey> {
        let port = &record["port"]["port"];
        let port = match port {
            Value::String(text) => text.parse().ok(),
            _ => port.as_u64().and_then(|port| u16::try_from(port).ok()),
        }?;
        Some(FindingKey {
            asset_uuid: record["asset"]["uuid"].as_str()?.to_owned(),
            plugin_id: u32::try_from(record["plugin"]["id"].as_u64()?).ok()?,
            port,
            protocol: record["port"]["protocol"].as_str()?.to_owned(),
        })
    }
}

impl Dataset {
    /// Applies one batch of changes as seen by one scan at `now_ms`.
    pub(crate) fn apply_changes(&mut self, changes: Changes, now_ms: i64) -> ChangeReport {
        let mut rng = SplitMix64::for_stream(self.seed, CHANGE_STREAM + self.revision);
        self.revision += 1;
        let scan_uuid = rng.uuid();
        let sighting = |lifecycle| Sighting { lifecycle, indexed_ms: now_ms, scan_uuid, scan_start_ms: now_ms };

        let to_fix = self.pick_in_state(VulnState::Open, changes.fix, &mut rng);
        let to_reopen = self.pick_in_state(VulnState::Fixed, changes.reopen, &mut rng);
        for &index in &to_fix {
            let lifecycle = Lifecycle {
                state: VulnState::Fixed,
                last_found_ms: now_ms,
                last_fixed_ms: Some(now_ms),
                ..self.vuln_facts[index].lifecycle
            };
            self.see_again(index, &sighting(lifecycle));
        }
        for &index in &to_reopen {
            let lifecycle = Lifecycle {
                state: VulnState::Reopened,
                last_found_ms: now_ms,
                last_fixed_ms: None,
                ..self.vuln_facts[index].lifecycle
            };
            self.see_again(index, &sighting(lifecycle));
        }
        let fixed = to_fix.into_iter().map(|index| self.key(index)).collect();
        let reopened = to_reopen.into_iter().map(|index| self.key(index)).collect();
        let first_sighting = sighting(Lifecycle {
            state: VulnState::Open,
            first_found_ms: now_ms,
            last_found_ms: now_ms,
            last_fixed_ms: None,
        });
        let added = self.add_findings(changes.new_findings, &first_sighting, &mut rng);
        let (gone, vanished_assets) = self.drop_findings(changes.gone, changes.vanished_assets, &mut rng);
        ChangeReport { changed_at_unix_ms: now_ms, fixed, reopened, added, gone, vanished_assets }
    }

    /// Drops `gone` findings of assets that keep at least one, and every finding of
    /// `vanished` assets that have some.
    fn drop_findings(&mut self, gone: usize, vanished: usize, rng: &mut SplitMix64) -> (Vec<FindingKey>, Vec<String>) {
        let mut assets: Vec<usize> = (0..self.assets.len()).filter(|&asset| !self.vulns_of(asset).is_empty()).collect();
        rng.shuffle(&mut assets);
        let vanishing: Vec<usize> = assets.iter().copied().take(vanished).collect();
        let mut dropped: Vec<usize> = vanishing.iter().flat_map(|&asset| self.vulns_of(asset)).collect();
        let keepers: Vec<usize> = assets[vanishing.len()..]
            .iter()
            .flat_map(|&asset| {
                let vulns = self.vulns_of(asset);
                // The first finding of each asset stays, so the asset is still exported.
                (vulns.start + 1)..vulns.end
            })
            .collect();
        dropped.extend(rng.draw(keepers, gone));
        dropped.sort_unstable();
        let keys = dropped.iter().map(|&index| self.key(index)).collect();
        for &index in dropped.iter().rev() {
            self.vulns.remove(index);
            self.vuln_facts.remove(index);
        }
        let uuids = vanishing.iter().map(|&asset| self.asset_facts[asset].host.identity.uuid.to_string()).collect();
        (keys, uuids)
    }

    /// Up to `count` findings in `state`, drawn at random, in dataset order.
    fn pick_in_state(&self, state: VulnState, count: usize, rng: &mut SplitMix64) -> Vec<usize> {
        let indexes = (0..self.vuln_facts.len()).filter(|&index| self.vuln_facts[index].lifecycle.state == state);
        rng.draw(indexes.collect(), count)
    }

    fn see_again(&mut self, index: usize, sighting: &Sighting) {
        if let Value::Object(record) = &mut self.vulns[index] {
            sighting.write(record);
        }
        let facts = &mut self.vuln_facts[index];
        facts.lifecycle = sighting.lifecycle;
        let asset = facts.asset_index;
        self.touch_asset(asset, sighting.scan_start_ms);
    }

    /// Adds `count` findings, going round the assets in a random order so that they spread.
    fn add_findings(&mut self, count: usize, sighting: &Sighting, rng: &mut SplitMix64) -> Vec<FindingKey> {
        let mut assets = RoundRobin::shuffled(self.assets.len(), rng);
        let mut added = Vec::with_capacity(count);
        while added.len() < count {
            let Some((asset, candidates)) = assets.next_with(|asset| self.unreported_candidates(asset)) else {
                break;
            };
            let candidate = rng.pick(&candidates);
            let port_as_text = rng.percent(20);
            let (record, facts) = self.asset_facts[asset].host.finding(asset, candidate, port_as_text, sighting);
            // Vuln records stay grouped by asset: chunks never split an asset.
            let index = self.vulns_of(asset).end;
            self.vulns.insert(index, record);
            self.vuln_facts.insert(index, facts);
            self.touch_asset(asset, sighting.scan_start_ms);
            added.push(self.key(index));
        }
        added
    }

    /// What the asset's services could report, by plugins it has no finding of yet.
    fn unreported_candidates(&self, asset: usize) -> Vec<Candidate> {
        let reported: HashSet<u32> =
            self.vuln_facts[self.vulns_of(asset)].iter().map(|facts| facts.plugin_id).collect();
        candidates_for(self.asset_facts[asset].host.profile)
            .into_iter()
            .filter(|candidate| !reported.contains(&candidate.plugin.id))
            .collect()
    }

    fn vulns_of(&self, asset: usize) -> Range<usize> {
        let start = self.vuln_facts.partition_point(|facts| facts.asset_index < asset);
        let end = self.vuln_facts.partition_point(|facts| facts.asset_index <= asset);
        start..end
    }

    /// The asset was seen by the scan that changed one of its findings.
    fn touch_asset(&mut self, asset: usize, seen_ms: i64) {
        let facts = &mut self.asset_facts[asset];
        facts.updated_ms = seen_ms;
        facts.last_seen_ms = seen_ms;
        let seen = json!(iso_millis(seen_ms));
        let Value::Object(record) = &mut self.assets[asset] else {
            return;
        };
        for field in ["updated_at", "last_seen", "last_scan_time"] {
            record.insert(field.into(), seen.clone());
        }
        let sources = record.get_mut("sources").and_then(Value::as_array_mut);
        for source in sources.into_iter().flatten() {
            if let Some(source) = source.as_object_mut() {
                source.insert("last_seen".into(), seen.clone());
            }
        }
    }

    fn key(&self, index: usize) -> FindingKey {
        let facts = &self.vuln_facts[index];
        FindingKey {
            asset_uuid: self.asset_facts[facts.asset_index].host.identity.uuid.to_string(),
            plugin_id: facts.plugin_id,
            port: facts.port,
            protocol: facts.protocol.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::VulnFilters;

    /// 2024-06-15T13:14:15Z, and a change an hour later.
    const ANCHOR: i64 = 1_718_457_255;
    const NOW_MS: i64 = (ANCHOR + 3600) * 1000;

    fn changes() -> Changes {
        Changes { fix: 7, reopen: 5, new_findings: 9, ..Changes::default() }
    }

    fn keys_since(dataset: &Dataset, since_ms: i64) -> HashSet<FindingKey> {
        let filters = VulnFilters { since: Some(since_ms / 1000), ..VulnFilters::everything() };
        dataset.matching_vuln_indexes(&filters, NOW_MS).into_iter().map(|index| dataset.key(index)).collect()
    }

    #[test]
    fn since_the_change_returns_exactly_the_changed_findings_in_their_new_state() {
        let mut dataset = Dataset::generate(7, 60, 6, ANCHOR);
        let before = dataset.vulns().len();
        assert!(keys_since(&dataset, NOW_MS).is_empty());
        let report = dataset.apply_changes(changes(), NOW_MS);
        assert_eq!(report.changed_at_unix_ms, NOW_MS);
        assert_eq!((report.fixed.len(), report.reopened.len(), report.added.len()), (7, 5, 9));
        assert_eq!(dataset.vulns().len(), before + 9);

        let changed: HashSet<FindingKey> =
            [&report.fixed, &report.reopened, &report.added].into_iter().flatten().cloned().collect();
        assert_eq!(changed.len(), 21);
        assert_eq!(keys_since(&dataset, NOW_MS), changed);

        let now = json!(iso_millis(NOW_MS));
        for vuln in dataset.vulns() {
            let Some(key) = FindingKey::of_record(vuln) else {
                panic!("a key for {vuln}");
            };
            let expected_state = if report.fixed.contains(&key) {
                "FIXED"
            } else if report.reopened.contains(&key) {
                "REOPENED"
            } else if report.added.contains(&key) {
                assert_eq!(vuln["first_found"], now);
                "OPEN"
            } else {
                continue;
            };
            assert_eq!(vuln["state"], expected_state);
            assert_eq!(vuln["last_found"], now);
            assert_eq!(vuln.get("last_fixed").is_some(), expected_state == "FIXED");
        }
    }

    #[test]
    fn new_findings_report_new_plugins_and_stay_grouped_by_asset() {
        let mut dataset = Dataset::generate(3, 20, 4, ANCHOR);
        let plugins_before: HashSet<(String, u32)> = dataset
            .vulns()
            .iter()
            .filter_map(FindingKey::of_record)
            .map(|key| (key.asset_uuid, key.plugin_id))
            .collect();
        let report = dataset.apply_changes(Changes { new_findings: 30, ..Changes::default() }, NOW_MS);
        assert_eq!(report.added.len(), 30);
        for key in &report.added {
            assert!(!plugins_before.contains(&(key.asset_uuid.clone(), key.plugin_id)));
        }
        assert!(dataset.vuln_facts.windows(2).all(|pair| pair[0].asset_index <= pair[1].asset_index));
        let keys: HashSet<FindingKey> = dataset.vulns().iter().filter_map(FindingKey::of_record).collect();
        assert_eq!(keys.len(), dataset.vulns().len());
        let assets = dataset.assets();
        let touched = assets.iter().filter(|asset| asset["last_seen"] == json!(iso_millis(NOW_MS))).count();
        assert!(touched > 1, "new findings spread over assets");
    }

    #[test]
    fn changes_are_deterministic_and_capped_by_what_the_dataset_holds() {
        let run = || {
            let mut dataset = Dataset::generate(11, 10, 3, ANCHOR);
            let first = dataset.apply_changes(changes(), NOW_MS);
            let second = dataset.apply_changes(changes(), NOW_MS + 1000);
            (first, second)
        };
        let (first, second) = run();
        assert_eq!((first.clone(), second.clone()), run());
        assert_ne!(first.fixed, second.fixed);

        let mut dataset = Dataset::generate(11, 10, 3, ANCHOR);
        let open = dataset.vuln_facts.iter().filter(|facts| facts.lifecycle.state == VulnState::Open).count();
        let report = dataset.apply_changes(Changes { fix: 1000, ..Changes::default() }, NOW_MS);
        assert_eq!(report.fixed.len(), open);
    }

    #[test]
    fn record_keys_accept_numeric_and_text_ports() {
        let record = |port: Value| json!({"asset": {"uuid": "a"}, "plugin": {"id": 7}, "port": {"port": port, "protocol": "TCP"}});
        let expected = FindingKey { asset_uuid: "a".into(), plugin_id: 7, port: 443, protocol: "TCP".into() };
        assert_eq!(FindingKey::of_record(&record(json!(443))), Some(expected.clone()));
        assert_eq!(FindingKey::of_record(&record(json!("443"))), Some(expected));
        assert_eq!(FindingKey::of_record(&record(json!("https"))), None);
        assert_eq!(FindingKey::of_record(&json!({})), None);
    }
}
