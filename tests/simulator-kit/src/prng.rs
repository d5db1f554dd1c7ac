//! A seeded SplitMix64 generator: tiny, fast and fully determined by its seed, which is
//! all a dataset needs (no dependency on `rand`, whose streams change between versions).

use uuid::Uuid;

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent generator for one part of the data (one host, one export, one batch of
    /// changes...), so that e.g. changing the number of findings per host does not change the
    /// hosts.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        Self::new(mix(seed ^ mix(stream.wrapping_add(GOLDEN_GAMMA))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A value in `0..bound`; `bound` must not be 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// A value in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = high.abs_diff(low) + 1;
        low + self.below(span) as i64
    }

    pub fn percent(&mut self, chance: u64) -> bool {
        self.below(100) < chance
    }

    /// `items` must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An item drawn with the odds its weight gives it; `items` must not be empty.
    pub fn pick_weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u64) -> &'a T {
        let total: u64 = items.iter().map(&weight).sum();
        let mut roll = self.below(total.max(1));
        for item in items {
            if roll < weight(item) {
                return item;
            }
            roll -= weight(item);
        }
        &items[0]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let other = self.below(last as u64 + 1) as usize;
            items.swap(last, other);
        }
    }

    /// Up to `count` of `items`, drawn at random, sorted.
    pub fn draw<T: Ord>(&mut self, mut items: Vec<T>, count: usize) -> Vec<T> {
        self.shuffle(&mut items);
        items.truncate(count);
        items.sort_unstable();
        items
    }

    /// A random (version 4) UUID.
    pub fn uuid(&mut self) -> Uuid {
        let bytes = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut first = SplitMix64::for_stream(7, 3);
        let mut second = SplitMix64::for_stream(7, 3);
        let a: Vec<u64> = (0..5).map(|_| first.next_u64()).collect();
        let b: Vec<u64> = (0..5).map(|_| second.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], SplitMix64::for_stream(7, 4).next_u64());
    }

    #[test]
    fn between_is_inclusive_and_bounded() {
        let mut rng = SplitMix64::new(1);
        let values: Vec<i64> = (0..1000).map(|_| rng.between(-2, 2)).collect();
        assert!(values.iter().all(|v| (-2..=2).contains(v)));
        assert!(values.contains(&-2) && values.contains(&2));
    }

    #[test]
    fn weighted_picks_follow_their_weights() {
        let mut rng = SplitMix64::new(5);
        let items = [("never", 0), ("rare", 1), ("often", 9)];
        let picks: Vec<&str> = (0..1000).map(|_| rng.pick_weighted(&items, |item| item.1).0).collect();
        let often = picks.iter().filter(|pick| **pick == "often").count();
        assert!(!picks.contains(&"never"));
        assert!((850..950).contains(&often), "{often}");
    }

    #[test]
    fn draws_are_sorted_distinct_and_at_most_what_there_is() {
        let mut rng = SplitMix64::new(3);
        let drawn = rng.draw((0..100).collect(), 10);
        assert_eq!(drawn.len(), 10);
        assert!(drawn.windows(2).all(|pair| pair[0] < pair[1]), "{drawn:?}");
        assert_eq!(rng.draw(vec![3, 1, 2], 5), [1, 2, 3]);
    }

    #[test]
    fn uuids_are_version_4() {
        let uuid = SplitMix64::new(9).uuid();
        assert_eq!(uuid.get_version_num(), 4);
    }
}
