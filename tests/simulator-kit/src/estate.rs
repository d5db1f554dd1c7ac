//! Drawing a simulated estate: which findings a host gets, where later ones go.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::hash::Hash;

use crate::SplitMix64;

/// The IPv4 address of a dataset's `index`-th host (from 0): `10.x.y.z`, distinct for the
/// first 16 million hosts.
pub fn host_ipv4(index: usize) -> String {
    format!("10.{}.{}.{}", index / 62_500 % 256, index / 250 % 250, index % 250 + 1)
}

/// Exactly `count` of a host's `candidates` (each a finding at a location), padded from
/// `padding` when they run short. On a `twin` host (when `count` ≥ 2) the first two are the
/// same finding at two locations, the first two candidates of the most severe finding that has
/// two (the lowest id on ties): the trap for keys of host and finding alone. The others follow
/// in a random order. `finding` gives a candidate's finding id and severity.
pub fn pick_findings<C, Id, Severity>(
    rng: &mut SplitMix64,
    mut candidates: Vec<C>,
    count: usize,
    twin: bool,
    finding: impl Fn(&C) -> (Id, Severity),
    padding: impl Iterator<Item = C>,
) -> Vec<C>
where
    Id: Copy + Eq + Hash + Ord,
    Severity: Copy + Ord,
{
    let mut picked = Vec::with_capacity(count);
    if twin
        && count >= 2
        && let Some(twin) = most_severe_twin(&candidates, &finding)
    {
        for _ in 0..2 {
            let position = candidates.iter().position(|candidate| finding(candidate).0 == twin);
            picked.extend(position.map(|position| candidates.remove(position)));
        }
    }
    rng.shuffle(&mut candidates);
    picked.extend(candidates.into_iter().take(count - picked.len()));
    let missing = count - picked.len();
    picked.extend(padding.take(missing));
    picked
}

/// The most severe finding with at least two candidates (the lowest id on ties).
fn most_severe_twin<C, Id, Severity>(candidates: &[C], finding: impl Fn(&C) -> (Id, Severity)) -> Option<Id>
where
    Id: Copy + Eq + Hash + Ord,
    Severity: Copy + Ord,
{
    let mut seen = HashSet::new();
    candidates
        .iter()
        .map(finding)
        .filter(|&(id, _)| !seen.insert(id))
        .max_by_key(|&(id, severity)| (severity, Reverse(id)))
        .map(|(id, _)| id)
}

/// Goes round a dataset's hosts in a random order, so that what is added to them spreads.
pub struct RoundRobin {
    order: Vec<usize>,
    cursor: usize,
}

impl RoundRobin {
    /// Over hosts `0..hosts`, in an order drawn from `rng`.
    pub fn shuffled(hosts: usize, rng: &mut SplitMix64) -> Self {
        let mut order: Vec<usize> = (0..hosts).collect();
        rng.shuffle(&mut order);
        Self { order, cursor: 0 }
    }

    /// The next host, from where the last one left off, that `candidates_of` gives candidates
    /// for, with them; `None` once no host has any.
    pub fn next_with<C>(&mut self, mut candidates_of: impl FnMut(usize) -> Vec<C>) -> Option<(usize, Vec<C>)> {
        let (step, host, candidates) = (0..self.order.len()).find_map(|step| {
            let host = self.order[(self.cursor + step) % self.order.len()];
            let candidates = candidates_of(host);
            (!candidates.is_empty()).then_some((step, host, candidates))
        })?;
        self.cursor += step + 1;
        Some((host, candidates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (finding id, severity, location).
    type Candidate = (u32, u8, u16);

    fn candidates() -> Vec<Candidate> {
        vec![(1, 2, 80), (1, 2, 443), (2, 4, 22), (3, 4, 135), (3, 4, 445), (4, 1, 0), (5, 4, 1), (5, 4, 2)]
    }

    fn pick(count: usize, twin: bool) -> Vec<Candidate> {
        let padding = (49664..).map(|port| (9, 0, port));
        pick_findings(&mut SplitMix64::new(3), candidates(), count, twin, |c| (c.0, c.1), padding)
    }

    #[test]
    fn a_twin_host_gets_the_most_severe_finding_twice_first() {
        let picked = pick(5, true);
        assert_eq!(picked[..2], [(3, 4, 135), (3, 4, 445)]);
        let distinct: HashSet<&Candidate> = picked.iter().collect();
        assert_eq!(distinct.len(), 5);
        assert_eq!(pick(1, true).len(), 1);
        assert_ne!(pick(8, false)[..2], [(3, 4, 135), (3, 4, 445)]);
    }

    #[test]
    fn padding_makes_up_the_count() {
        let picked = pick(10, true);
        assert_eq!(picked.len(), 10);
        assert_eq!(picked[8..], [(9, 0, 49664), (9, 0, 49665)]);
    }

    #[test]
    fn round_robin_skips_hosts_without_candidates_and_ends_when_none_has_any() {
        let mut rng = SplitMix64::new(1);
        let mut left = [2, 0, 1];
        let mut round = RoundRobin::shuffled(left.len(), &mut rng);
        let mut visits = Vec::new();
        while let Some((host, candidates)) = round.next_with(|host| vec![(); left[host]]) {
            assert!(!candidates.is_empty());
            left[host] -= 1;
            visits.push(host);
        }
        visits.sort_unstable();
        assert_eq!(visits, [0, 0, 2]);
        assert!(RoundRobin::shuffled(0, &mut rng).next_with(|_| vec![()]).is_none());
    }

    #[test]
    fn addresses_are_distinct() {
        let addresses: HashSet<String> = (0..70_000).map(host_ipv4).collect();
        assert_eq!(addresses.len(), 70_000);
        assert_eq!(host_ipv4(0), "10.0.0.1");
    }
}
