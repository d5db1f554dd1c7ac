//! The findings table: an asset's findings, packed several to an item.
//!
//! DynamoDB bills a write by the started KB of the item, and a finding alone is a
//! 0.9 KB item, most of it field names and values it shares with its asset's other
//! findings (the asset's names, the job, the chunk, the plugin's family). So an asset's
//! findings are spread over *parts*: items of the asset's partition (`asset_key`), sort
//! key `part`, each holding about [`FINDINGS_PER_PART`] findings as deflated JSON. A
//! first sync writes a fraction of a unit a finding; a change rewrites the one part of
//! the finding it changed, never the asset's other parts.
//!
//! A finding's part is its id's hash modulo the asset's part count, a power of two that
//! grows with the asset (its findings are never deleted, so it never shrinks). Growing
//! lays every part out anew, highest index first: each old part is overwritten only
//! after the new parts its findings move to are written, so a write cut short leaves
//! every finding readable, in its new part or its old one. Readers prefer the part of
//! the larger layout, and the next write lays the asset out again.

use std::collections::HashMap;
use std::io::{Read, Write};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use super::batch::{Item, Key};
use super::size::encoded_size;
use super::{DynamoStore, number, storage_error, string};
use crate::errors::{Result, SyncError};
use crate::store::{AssetFindings, FindingsLayout, FindingsUpdate, StoredFinding, asset_key};

/// Findings a part holds on average. Small enough that changing one finding rewrites a
/// few KB, large enough that a part's rounding to a whole KB costs little.
pub const FINDINGS_PER_PART: usize = 16;

/// A part's attributes besides its key. `findings` is the deflated JSON array of its
/// findings; the others say what it holds without unpacking it.
const PARTS: &str = "parts";
const PACKED: &str = "findings";

/// One asset's parts, as they are to be written.
struct Layout<'a> {
    parts: u32,
    findings_by_part: Vec<Vec<&'a StoredFinding>>,
}

impl<'a> Layout<'a> {
    fn of(findings: &'a [StoredFinding], parts: u32) -> Self {
        let mut findings_by_part = vec![Vec::new(); parts as usize];
        for finding in findings {
            findings_by_part[part_of(&finding.finding.finding_id, parts) as usize].push(finding);
        }
        Layout { parts, findings_by_part }
    }
}

/// The parts an asset with `count` findings is spread over.
fn parts_for(count: usize) -> u32 {
    u32::try_from(count.div_ceil(FINDINGS_PER_PART).max(1)).unwrap_or(u32::MAX).next_power_of_two()
}

/// The part a finding belongs to: FNV-1a of its id, stable across builds and machines.
fn part_of(finding_id: &str, parts: u32) -> u32 {
    let hash = finding_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash % u64::from(parts)) as u32
}

impl DynamoStore {
    /// Every finding stored for each asset (strongly consistent: a retried chunk must see
    /// what its earlier attempt wrote), by BatchGetItem: a hundred parts a call, where a
    /// Query per asset would make a call per asset. Part 0 of every asset is read first;
    /// each part says how many the asset has, and the others follow. A part of a larger
    /// layout (a growth cut short) has its layout's parts read too.
    pub(super) async fn read_findings(
        &self,
        connector_id: &str,
        asset_ids: &[String],
    ) -> Result<HashMap<String, AssetFindings>> {
        let key = |asset_id: &str, index: u32| {
            HashMap::from([
                ("asset_key".to_string(), string(&asset_key(connector_id, asset_id))),
                ("part".to_string(), number(u64::from(index))),
            ])
        };
        let mut items_by_asset: HashMap<String, Vec<Item>> = HashMap::new();
        let mut asked: HashMap<String, u32> = asset_ids.iter().map(|asset_id| (asset_id.clone(), 1)).collect();
        let mut keys: Vec<Key> = asset_ids.iter().map(|asset_id| key(asset_id, 0)).collect();
        while !keys.is_empty() {
            for item in self.batch_get_items(&self.tables.findings, keys).await? {
                let asset_id = item.get("asset_id").and_then(|id| id.as_s().ok()).cloned().unwrap_or_default();
                items_by_asset.entry(asset_id).or_default().push(item);
            }
            keys = Vec::new();
            for (asset_id, items) in &items_by_asset {
                let parts = items.iter().filter_map(parts_of).max().unwrap_or(0);
                let asked = asked.entry(asset_id.clone()).or_insert(parts);
                keys.extend((*asked..parts).map(|index| key(asset_id, index)));
                *asked = (*asked).max(parts);
            }
        }
        let mut found = HashMap::new();
        for (asset_id, items) in items_by_asset {
            let stored = read_parts(items)?;
            if !stored.findings.is_empty() {
                found.insert(asset_id, stored);
            }
        }
        Ok(found)
    }

    /// Writes the parts of each update that hold a changed finding, or all of them when
    /// the asset's layout grows.
    pub(super) async fn write_findings(&self, connector_id: &str, updates: &[FindingsUpdate]) -> Result<()> {
        let mut batched = Vec::new();
        for update in updates.iter().filter(|update| update.changes_anything()) {
            let stored = update.layout;
            let parts = parts_for(update.findings.len()).max(stored.parts);
            let layout = Layout::of(&update.findings, parts);
            let regrown = parts != stored.parts || stored.unsettled;
            let items = layout
                .findings_by_part
                .iter()
                .enumerate()
                .filter(|(_, findings)| {
                    regrown || findings.iter().any(|finding| update.changed.contains(&finding.finding.finding_id))
                })
                .map(|(index, findings)| part_item(connector_id, &update.asset_id, index, layout.parts, findings))
                .collect::<Result<Vec<_>>>()?;
            if regrown && stored.parts > 0 {
                // Highest index first, one at a time: see the module's comment.
                for item in items.into_iter().rev() {
                    self.put_part(item).await?;
                }
            } else {
                batched.extend(items);
            }
        }
        self.batch_put_items(&self.tables.findings, batched).await
    }

    async fn put_part(&self, item: Item) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.tables.findings)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| storage_error("PutItem on the findings table", e))?;
        Ok(())
    }
}

/// The sizes DynamoDB bills the items of an asset with these findings at, when written
/// whole (a first sync): for the bench and the cost model.
pub fn packed_item_sizes(connector_id: &str, asset_id: &str, findings: &[StoredFinding]) -> Result<Vec<usize>> {
    let layout = Layout::of(findings, parts_for(findings.len()));
    let items = layout.findings_by_part.iter().enumerate();
    items
        .map(|(index, part)| Ok(encoded_size(&part_item(connector_id, asset_id, index, layout.parts, part)?)))
        .collect()
}

fn part_item(
    connector_id: &str,
    asset_id: &str,
    index: usize,
    parts: u32,
    findings: &[&StoredFinding],
) -> Result<Item> {
    let last_job_id = findings.iter().max_by_key(|finding| finding.updated_at).map(|f| f.last_job_id.as_str());
    let mut item = HashMap::from([
        ("asset_key".to_string(), string(&asset_key(connector_id, asset_id))),
        ("part".to_string(), number(index as u64)),
        ("connector_id".to_string(), string(connector_id)),
        ("asset_id".to_string(), string(asset_id)),
        (PARTS.to_string(), number(u64::from(parts))),
        ("count".to_string(), number(findings.len() as u64)),
        (PACKED.to_string(), AttributeValue::B(Blob::new(pack(findings)?))),
    ]);
    // The job that last changed a finding of the part, for a future "what did this sync
    // change" index.
    if let Some(job_id) = last_job_id {
        item.insert("last_job_id".to_string(), string(job_id));
    }
    Ok(item)
}

fn pack(findings: &[&StoredFinding]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(findings)
        .map_err(|e| SyncError::Internal(format!("cannot encode findings for the findings table: {e}")))?;
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
    encoder
        .write_all(&json)
        .and_then(|()| encoder.finish())
        .map_err(|e| SyncError::Internal(format!("cannot deflate findings for the findings table: {e}")))
}

/// The findings that items of the findings table hold (a scan's, for instance), each once.
pub fn findings_in_items(items: Vec<Item>) -> Result<Vec<StoredFinding>> {
    Ok(read_parts(items)?.findings)
}

/// The findings the parts hold, each once: where a cut-short write left a finding in
/// parts of two layouts, the larger layout's is the newer.
fn read_parts(items: Vec<Item>) -> Result<AssetFindings> {
    let mut newest: HashMap<String, (u32, StoredFinding)> = HashMap::new();
    let mut layouts = Vec::new();
    for item in items {
        let (parts, findings) = unpack(&item)?;
        layouts.push(parts);
        for finding in findings {
            match newest.get(&finding.finding.finding_id) {
                Some((kept, _)) if *kept > parts => {}
                _ => {
                    newest.insert(finding.finding.finding_id.clone(), (parts, finding));
                }
            }
        }
    }
    let parts = layouts.iter().copied().max().unwrap_or(0);
    let mut findings: Vec<StoredFinding> = newest.into_values().map(|(_, finding)| finding).collect();
    findings.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
    Ok(AssetFindings { findings, layout: FindingsLayout { parts, unsettled: layouts.iter().any(|&l| l != parts) } })
}

/// How many parts the layout a part belongs to has.
fn parts_of(item: &Item) -> Option<u32> {
    item.get(PARTS).and_then(|parts| parts.as_n().ok()).and_then(|parts| parts.parse().ok())
}

fn unpack(item: &Item) -> Result<(u32, Vec<StoredFinding>)> {
    let key = item.get("asset_key").and_then(|key| key.as_s().ok()).map_or("?", String::as_str);
    let unreadable = |what: String| SyncError::Internal(format!("the findings part of {key} cannot be read: {what}"));
    let parts = parts_of(item).ok_or_else(|| unreadable(format!("`{PARTS}` is not a number")))?;
    let packed = item
        .get(PACKED)
        .and_then(|packed| packed.as_b().ok())
        .ok_or_else(|| unreadable(format!("`{PACKED}` is not binary")))?;
    let mut json = Vec::new();
    DeflateDecoder::new(packed.as_ref())
        .read_to_end(&mut json)
        .map_err(|e| unreadable(format!("`{PACKED}` does not inflate: {e}")))?;
    let findings = serde_json::from_slice(&json).map_err(|e| unreadable(format!("`{PACKED}` is not findings: {e}")))?;
    Ok((parts, findings))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn finding(plugin: u32, last_job_id: &str) -> StoredFinding {
        serde_json::from_value(json!({
            "asset_key": "c/a", "connector_id": "c", "finding_id": format!("tenable/a/{plugin}/0/none"),
            "source": "tenable", "asset_id": "a", "plugin_id": plugin.to_string(), "port": 0, "protocol": "none",
            "severity": "high", "state": "open", "title": "t", "first_seen": Utc::now(), "last_seen": Utc::now(),
            "os_category": "linux", "active": true, "first_job_id": "job-1", "last_job_id": last_job_id,
            "last_change": "new", "raw_ref": "", "updated_at": Utc::now(),
        }))
        .expect("a finding")
    }

    fn items(findings: &[StoredFinding], parts: u32, only: &[usize]) -> Vec<Item> {
        let layout = Layout::of(findings, parts);
        only.iter().map(|&index| part_item("c", "a", index, parts, &layout.findings_by_part[index]).unwrap()).collect()
    }

    #[test]
    fn an_asset_grows_by_doubling_its_parts_and_a_finding_moves_only_to_a_higher_part() {
        assert_eq!([0, 1, 16, 17, 33, 64, 65].map(parts_for), [1, 1, 1, 2, 4, 4, 8]);
        for id in ["tenable/a/19506/0/none", "tenable/b/11219/443/tcp", "qualys/7/38170/22/tcp"] {
            for parts in [1, 2, 4, 8] {
                let (before, after) = (part_of(id, parts), part_of(id, parts * 2));
                assert!(after == before || after == before + parts, "{id}: {before} of {parts}, then {after}");
            }
        }
    }

    #[test]
    fn a_growth_cut_short_leaves_every_finding_readable_in_its_newest_part() {
        let old: Vec<StoredFinding> = (1..=16).map(|plugin| finding(plugin, "job-1")).collect();
        let new: Vec<StoredFinding> = (1..=20).map(|plugin| finding(plugin, "job-2")).collect();
        // The old layout's one part, and of the new layout only the higher part, written
        // first: the write stopped before it overwrote part 0.
        let mut cut_short = items(&old, 1, &[0]);
        cut_short.extend(items(&new, 2, &[1]));
        let read = read_parts(cut_short).unwrap();
        assert_eq!(read.layout, FindingsLayout { parts: 2, unsettled: true });
        let mut jobs: HashMap<String, &str> = HashMap::new();
        for finding in &read.findings {
            jobs.insert(finding.finding.finding_id.clone(), &finding.last_job_id);
        }
        for finding in &new {
            let id = &finding.finding.finding_id;
            let moved = part_of(id, 2) == 1;
            let expected = if moved {
                Some("job-2")
            } else if old.iter().any(|f| &f.finding.finding_id == id) {
                Some("job-1")
            } else {
                None
            };
            assert_eq!(jobs.get(id).copied(), expected, "{id}");
        }
        assert_eq!(read.findings.len(), jobs.len(), "each finding once");

        let settled = read_parts(items(&new, 2, &[0, 1])).unwrap();
        assert_eq!(settled.layout, FindingsLayout { parts: 2, unsettled: false });
        assert_eq!(settled.findings.len(), 20);
        assert!(settled.findings.iter().all(|finding| finding.last_job_id == "job-2"));
    }

    #[test]
    fn a_part_is_a_fraction_of_its_findings_json_and_reads_back_whole() {
        let findings: Vec<StoredFinding> = (1..=16).map(|plugin| finding(plugin, "job-1")).collect();
        let item = items(&findings, 1, &[0]).remove(0);
        let json = serde_json::to_vec(&findings).unwrap().len();
        let packed = item[PACKED].as_b().unwrap().as_ref().len();
        assert!(packed * 4 < json, "{packed} bytes packed of {json}");
        assert_eq!(item["count"], number(16));
        let mut expected = findings;
        expected.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
        assert_eq!(read_parts(vec![item]).unwrap().findings, expected, "in finding id order");
    }
}
