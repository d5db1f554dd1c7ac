//! The assets a sync's vulns chunks returned, for finalize's sweep of those it did not.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A set of asset ids, kept as 64-bit fingerprints (the first 8 bytes of each id's
/// SHA-256), sorted: 8 bytes an asset, whatever the id's length.
///
/// A processed vulns chunk keeps the set of its assets on its chunk record, and the
/// sweep tells the assets a sync saw from the ones it did not by these sets, so that an
/// unchanged asset needs no write to say it was seen (a write unit an asset, every
/// sync). Two ids share a fingerprint with odds of 2^-64 a pair: a vanished asset would
/// then be taken as seen, at about one in 10^8 syncs of a million assets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenAssets(Vec<u64>);

impl SeenAssets {
    pub fn of<'a>(asset_ids: impl IntoIterator<Item = &'a str>) -> Self {
        Self::sorted(asset_ids.into_iter().map(fingerprint).collect())
    }

    /// Every asset of the sets.
    pub fn union<'a>(sets: impl IntoIterator<Item = &'a SeenAssets>) -> Self {
        Self::sorted(sets.into_iter().flat_map(|set| set.0.iter().copied()).collect())
    }

    fn sorted(mut fingerprints: Vec<u64>) -> Self {
        fingerprints.sort_unstable();
        fingerprints.dedup();
        SeenAssets(fingerprints)
    }

    pub fn contains(&self, asset_id: &str) -> bool {
        self.0.binary_search(&fingerprint(asset_id)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fingerprints, 8 little-endian bytes each, in order.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|fingerprint| fingerprint.to_le_bytes()).collect()
    }

    /// What [`SeenAssets::to_bytes`] wrote; `None` when the bytes are not such a set.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let fingerprints: Vec<u64> =
            bytes.chunks_exact(8).map(|eight| u64::from_le_bytes(eight.try_into().unwrap_or_default())).collect();
        fingerprints.is_sorted_by(|a, b| a < b).then_some(SeenAssets(fingerprints))
    }
}

fn fingerprint(asset_id: &str) -> u64 {
    let digest = Sha256::digest(asset_id.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Stored as bytes: a DynamoDB binary attribute on the chunk record (a list of numbers
/// would take about three times the space, and the write units with it).
impl Serialize for SeenAssets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> Deserialize<'de> for SeenAssets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = SeenAssets;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("the bytes of a set of asset fingerprints")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<SeenAssets, E> {
        SeenAssets::from_bytes(bytes).ok_or_else(|| E::custom("not a sorted list of 8-byte asset fingerprints"))
    }

    /// JSON has no bytes: serde_json writes them as an array of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<SeenAssets, A::Error> {
        let mut bytes = Vec::with_capacity(items.size_hint().unwrap_or_default());
        while let Some(byte) = items.next_element::<u8>()? {
            bytes.push(byte);
        }
        self.visit_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_the_assets_it_was_made_of() {
        let seen = SeenAssets::of(["asset-1", "asset-2", "asset-2"]);
        assert_eq!(seen.len(), 2);
        assert!(seen.contains("asset-1") && seen.contains("asset-2"));
        assert!(!seen.contains("asset-3") && !seen.contains(""));
        let union = SeenAssets::union([&seen, &SeenAssets::of(["asset-3"]), &SeenAssets::default()]);
        assert_eq!(union.len(), 3);
        assert!(["asset-1", "asset-2", "asset-3"].iter().all(|id| union.contains(id)));
    }

    #[test]
    fn round_trips_through_its_bytes_and_refuses_others() {
        let seen =
            SeenAssets::of((0..500).map(|n| format!("asset-{n}")).collect::<Vec<_>>().iter().map(String::as_str));
        assert_eq!(seen.to_bytes().len(), 4000, "8 bytes an asset");
        assert_eq!(SeenAssets::from_bytes(&seen.to_bytes()), Some(seen.clone()));
        let json = serde_json::to_vec(&seen).expect("encodes");
        assert_eq!(serde_json::from_slice::<SeenAssets>(&json).expect("decodes"), seen);
        assert_eq!(SeenAssets::from_bytes(&[1, 2, 3]), None, "not whole fingerprints");
        let mut unsorted = seen.to_bytes();
        unsorted.rotate_left(8);
        assert_eq!(SeenAssets::from_bytes(&unsorted), None, "not in order");
    }
}
