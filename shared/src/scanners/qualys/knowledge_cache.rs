//! The KnowledgeBase entries a chunk's detections name, kept between syncs in the
//! connector's reference cache, one object per QID: a sync asks Qualys only for the
//! QIDs no earlier chunk or sync asked for, and, once an entry is a day old, whether it
//! changed since (`last_modified_after`), which Qualys answers with the changed ones only.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use super::knowledge_base::KnowledgeEntry;
use crate::errors::{Result, SyncError};
use crate::scanners::ReferenceCache;

/// QIDs asked for in one KnowledgeBase call: what other integrations use, which keeps
/// each answer to a few hundred KB.
pub const QIDS_PER_CALL: usize = 250;
/// How long a cached entry is used without asking Qualys whether it changed.
pub const TRUSTED_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Cache objects read or written at once.
const CACHE_CALLS_AT_ONCE: usize = 16;

/// Where entries come from when the cache cannot give them: the KnowledgeBase API.
#[async_trait]
pub trait KnowledgeSource: Send + Sync {
    /// The entries of `qids` (at most [`QIDS_PER_CALL`]) the KnowledgeBase holds; with
    /// `changed_after`, only those Qualys changed since.
    async fn knowledge_entries(
        &self,
        qids: &[u64],
        changed_after: Option<DateTime<Utc>>,
    ) -> Result<Vec<KnowledgeEntry>>;
}

/// A cached entry, and when Qualys last vouched for it.
#[derive(Serialize, Deserialize)]
struct Cached {
    checked_at: DateTime<Utc>,
    entry: KnowledgeEntry,
}

fn cache_name(qid: u64) -> String {
    format!("qualys-knowledge-base/{qid}.json")
}

/// The entries of `qids` as of `now`, in QID order: from the cache where it holds a
/// trusted one, from `source` otherwise. A QID the KnowledgeBase does not know gets an
/// entry without facts (its findings are titled `QID <n>`), cached like the others so
/// that it is not asked for again within a day. What was asked is written back.
pub async fn entries_for(
    qids: &BTreeSet<u64>,
    cache: &dyn ReferenceCache,
    source: &dyn KnowledgeSource,
    now: DateTime<Utc>,
) -> Result<Vec<KnowledgeEntry>> {
    let cached: Vec<(u64, Option<Cached>)> = stream::iter(qids.iter().copied())
        .map(|qid| async move {
            // An unreadable cache object is as good as none: the entry is asked again.
            let cached = cache.get(&cache_name(qid)).await?.and_then(|body| serde_json::from_slice(&body).ok());
            Ok::<_, SyncError>((qid, cached))
        })
        .buffer_unordered(CACHE_CALLS_AT_ONCE)
        .try_collect()
        .await?;
    let mut entries = BTreeMap::new();
    let mut missing = Vec::new();
    let mut stale = BTreeMap::new();
    for (qid, cached) in cached {
        match cached {
            None => missing.push(qid),
            Some(Cached { checked_at, entry }) => {
                if now - checked_at > TRUSTED_FOR {
                    stale.insert(qid, checked_at);
                }
                entries.insert(qid, entry);
            }
        }
    }
    missing.sort_unstable();
    for batch in missing.chunks(QIDS_PER_CALL) {
        let mut known: BTreeMap<u64, KnowledgeEntry> =
            source.knowledge_entries(batch, None).await?.into_iter().map(|entry| (entry.qid, entry)).collect();
        for qid in batch {
            entries.insert(*qid, known.remove(qid).unwrap_or_else(|| KnowledgeEntry::unknown(*qid)));
        }
    }
    let stale: Vec<(u64, DateTime<Utc>)> = stale.into_iter().collect();
    for batch in stale.chunks(QIDS_PER_CALL) {
        let qids: Vec<u64> = batch.iter().map(|(qid, _)| *qid).collect();
        let since = batch.iter().map(|(_, checked_at)| *checked_at).min();
        for changed in source.knowledge_entries(&qids, since).await? {
            if entries.contains_key(&changed.qid) {
                entries.insert(changed.qid, changed);
            }
        }
    }
    let asked: BTreeSet<u64> = missing.into_iter().chain(stale.into_iter().map(|(qid, _)| qid)).collect();
    let mut writes = Vec::with_capacity(asked.len());
    for entry in asked.iter().filter_map(|qid| entries.get(qid)) {
        let body = serde_json::to_vec(&Cached { checked_at: now, entry: entry.clone() })
            .map_err(|e| SyncError::Internal(format!("QID {} cannot be cached: {e}", entry.qid)))?;
        writes.push((cache_name(entry.qid), body));
    }
    stream::iter(writes)
        .map(|(name, body)| async move { cache.put(&name, body).await })
        .buffer_unordered(CACHE_CALLS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(entries.into_values().collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct MemoryCache(Mutex<HashMap<String, Vec<u8>>>);

    #[async_trait]
    impl ReferenceCache for MemoryCache {
        async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
            Ok(self.0.lock().unwrap().get(name).cloned())
        }
        async fn put(&self, name: &str, body: Vec<u8>) -> Result<()> {
            self.0.lock().unwrap().insert(name.to_string(), body);
            Ok(())
        }
    }

    /// One KnowledgeBase call: the QIDs asked, and `last_modified_after`.
    type Call = (Vec<u64>, Option<DateTime<Utc>>);

    /// A KnowledgeBase of the given entries, each last changed at the given time, that
    /// records what it is asked.
    #[derive(Default)]
    struct FakeKnowledgeBase {
        entries: Mutex<Vec<(KnowledgeEntry, DateTime<Utc>)>>,
        calls: Mutex<Vec<Call>>,
    }

    impl FakeKnowledgeBase {
        fn with(titles: &[(u64, &str)], changed: DateTime<Utc>) -> Self {
            let entries = titles.iter().map(|(qid, title)| (titled(*qid, title), changed)).collect();
            FakeKnowledgeBase { entries: Mutex::new(entries), calls: Mutex::default() }
        }

        fn calls(&self) -> Vec<Call> {
            std::mem::take(&mut self.calls.lock().unwrap())
        }
    }

    #[async_trait]
    impl KnowledgeSource for FakeKnowledgeBase {
        async fn knowledge_entries(
            &self,
            qids: &[u64],
            changed_after: Option<DateTime<Utc>>,
        ) -> Result<Vec<KnowledgeEntry>> {
            self.calls.lock().unwrap().push((qids.to_vec(), changed_after));
            let entries = self.entries.lock().unwrap();
            Ok(entries
                .iter()
                .filter(|(entry, changed)| {
                    qids.contains(&entry.qid) && changed_after.is_none_or(|after| *changed >= after)
                })
                .map(|(entry, _)| entry.clone())
                .collect())
        }
    }

    fn titled(qid: u64, title: &str) -> KnowledgeEntry {
        KnowledgeEntry { title: Some(title.to_string()), ..KnowledgeEntry::unknown(qid) }
    }

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + hour * 3600, 0).unwrap()
    }

    fn titles(entries: &[KnowledgeEntry]) -> Vec<(u64, Option<&str>)> {
        entries.iter().map(|entry| (entry.qid, entry.title.as_deref())).collect()
    }

    #[tokio::test]
    async fn only_qids_never_asked_for_are_asked_and_unknown_ones_are_not_asked_twice() {
        let cache = MemoryCache::default();
        let source = FakeKnowledgeBase::with(&[(1, "one"), (2, "two"), (3, "three")], at(0));
        let first = entries_for(&BTreeSet::from([1, 2, 9]), &cache, &source, at(1)).await.unwrap();
        assert_eq!(titles(&first), vec![(1, Some("one")), (2, Some("two")), (9, None)]);
        assert_eq!(source.calls(), vec![(vec![1, 2, 9], None)]);

        let second = entries_for(&BTreeSet::from([1, 3, 9]), &cache, &source, at(2)).await.unwrap();
        assert_eq!(titles(&second), vec![(1, Some("one")), (3, Some("three")), (9, None)]);
        assert_eq!(source.calls(), vec![(vec![3], None)], "1 and 9 came from the cache");
    }

    #[tokio::test]
    async fn a_day_old_entry_is_checked_for_changes_since_it_was_asked() {
        let cache = MemoryCache::default();
        let source = FakeKnowledgeBase::with(&[(1, "one"), (2, "two")], at(0));
        entries_for(&BTreeSet::from([1, 2]), &cache, &source, at(1)).await.unwrap();
        source.calls();
        source.entries.lock().unwrap()[1] = (titled(2, "two, revised"), at(10));

        let next_day = at(1) + TRUSTED_FOR + chrono::TimeDelta::hours(1);
        let entries = entries_for(&BTreeSet::from([1, 2]), &cache, &source, next_day).await.unwrap();
        assert_eq!(titles(&entries), vec![(1, Some("one")), (2, Some("two, revised"))]);
        assert_eq!(source.calls(), vec![(vec![1, 2], Some(at(1)))]);

        let an_hour_later = next_day + chrono::TimeDelta::hours(1);
        let later = entries_for(&BTreeSet::from([1, 2]), &cache, &source, an_hour_later).await.unwrap();
        assert_eq!(titles(&later)[1], (2, Some("two, revised")), "the change was cached");
        assert_eq!(source.calls(), vec![], "checked an hour ago: trusted");
    }

    #[tokio::test]
    async fn many_qids_are_asked_in_calls_of_at_most_250() {
        let cache = MemoryCache::default();
        let source = FakeKnowledgeBase::default();
        let qids: BTreeSet<u64> = (1..=600).collect();
        let entries = entries_for(&qids, &cache, &source, at(0)).await.unwrap();
        assert_eq!(entries.len(), 600);
        let sizes: Vec<usize> = source.calls().iter().map(|(qids, _)| qids.len()).collect();
        assert_eq!(sizes, vec![250, 250, 100]);
    }

    #[tokio::test]
    async fn an_unreadable_cache_object_is_asked_again() {
        let cache = MemoryCache::default();
        cache.put(&cache_name(1), b"{not json".to_vec()).await.unwrap();
        let source = FakeKnowledgeBase::with(&[(1, "one")], at(0));
        let entries = entries_for(&BTreeSet::from([1]), &cache, &source, at(1)).await.unwrap();
        assert_eq!(titles(&entries), vec![(1, Some("one"))]);
        assert_eq!(source.calls(), vec![(vec![1], None)]);
    }
}
