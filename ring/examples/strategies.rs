//! Compares the Dynamo paper's partitioning strategies 1 and 3 (section 6.2)
//! on load balance and membership-state size, then shows how many replicas
//! our strategy-3 rebalance moves when one node joins or leaves.
//!
//! Run with `cargo run --release -p dynamo-ring --example strategies`. The
//! output is a pair of markdown tables; everything random comes from a
//! seeded `StdRng`, so the output is reproducible.
//!
//! - Strategy 1: every node picks `T` random tokens on the 64-bit ring and
//!   owns the ranges ending at its tokens; a key's preference list is the
//!   first `N` distinct nodes clockwise from its hash.
//! - Strategy 3: `Q` equal partitions assigned by [`Ring::build`].
//!
//! Load imbalance is max/mean keys per node over 1,000,000 random keys,
//! counted once by primary owner and once over all `N = 3` replicas. State
//! size counts what a node must know to route: strategy 1, each node's id
//! plus its tokens at 8 bytes each; strategy 3, each node's id plus `Q * N`
//! owner indices at 2 bytes each. Zones are left out (one zone for all),
//! so both strategies place replicas under the same rules.

use dynamo_ring::{Member, Ring, key_hash, partition_of};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEED: u64 = 2007;
const KEYS: usize = 1_000_000;
const N: usize = 3;
const SIZES: [usize; 4] = [5, 10, 50, 100];

fn main() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let hashes: Vec<u64> = (0..KEYS)
        .map(|_| key_hash(&rng.random::<[u8; 16]>()))
        .collect();

    println!(
        "| S | strategy | parameters | state (bytes) | imbalance, primaries | imbalance, {N} replicas |"
    );
    println!("|---:|---|---|---:|---:|---:|");
    for s in SIZES {
        let ids = node_ids(s);
        for tokens in [8, 1024 / s] {
            let (primary, replicas) = strategy1(&mut rng, s, tokens, &hashes);
            let state: usize = ids.iter().map(|id| id.len() + 8 * tokens).sum();
            row(
                s,
                "1",
                &format!("T = {tokens} tokens/node"),
                state,
                &primary,
                &replicas,
            );
        }
        for q in [1024u32, 4096] {
            let members = ids.iter().map(|id| Member::new(id.clone(), "z")).collect();
            let ring = Ring::build(members, N, q).expect("valid ring");
            let (primary, replicas) = strategy3(&ring, &hashes);
            let state: usize = ids.iter().map(String::len).sum::<usize>() + q as usize * N * 2;
            row(
                s,
                "3",
                &format!("Q = {q} partitions"),
                state,
                &primary,
                &replicas,
            );
        }
    }

    println!();
    println!(
        "| S | zones | Q | one node joins: moved (its share) | one node leaves: moved (it held) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for s in [10, 50, 100] {
        for zones in [1, 3] {
            let q = 1024;
            let members: Vec<Member> = node_ids(s)
                .into_iter()
                .enumerate()
                .map(|(i, id)| Member::new(id, format!("zone-{}", i % zones)))
                .collect();
            let ring = Ring::build(members.clone(), N, q).expect("valid ring");
            let mut grown = members.clone();
            grown.push(Member::new("node-new", "zone-0"));
            let joined = ring.rebalance(grown).expect("valid ring");
            let mut shrunk = members.clone();
            let gone = shrunk.remove(s / 2);
            let left = ring.rebalance(shrunk).expect("valid ring");
            println!(
                "| {s} | {zones} | {q} | {} ({}) | {} ({}) |",
                ring.moved_replicas(&joined),
                joined.partitions_of("node-new").len(),
                ring.moved_replicas(&left),
                ring.partitions_of(&gone.id).len(),
            );
        }
    }
}

fn node_ids(s: usize) -> Vec<String> {
    (0..s).map(|i| format!("node-{i:03}")).collect()
}

fn row(
    s: usize,
    strategy: &str,
    parameters: &str,
    state: usize,
    primary: &[u64],
    replicas: &[u64],
) {
    println!(
        "| {s} | {strategy} | {parameters} | {state} | {:.3} | {:.3} |",
        imbalance(primary),
        imbalance(replicas)
    );
}

/// Max over mean.
fn imbalance(counts: &[u64]) -> f64 {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    max / mean
}

/// Keys per node (primary, all replicas) with `tokens` random tokens per
/// node.
fn strategy1(rng: &mut StdRng, s: usize, tokens: usize, hashes: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let mut ring: Vec<(u64, usize)> = (0..s)
        .flat_map(|node| (0..tokens).map(move |_| node))
        .map(|node| (rng.random::<u64>(), node))
        .collect();
    ring.sort_unstable();
    // The range ending at token i is (token i-1, token i]; keys above the
    // last token wrap to the first.
    let mut per_range = vec![0u64; ring.len()];
    for &h in hashes {
        let i = ring.partition_point(|&(token, _)| token < h);
        per_range[i % ring.len()] += 1;
    }
    let mut primary = vec![0u64; s];
    let mut replicas = vec![0u64; s];
    for (i, &count) in per_range.iter().enumerate() {
        let mut owners = Vec::with_capacity(N);
        for step in 0..ring.len() {
            let node = ring[(i + step) % ring.len()].1;
            if !owners.contains(&node) {
                owners.push(node);
                if owners.len() == N {
                    break;
                }
            }
        }
        primary[owners[0]] += count;
        for &node in &owners {
            replicas[node] += count;
        }
    }
    (primary, replicas)
}

/// Keys per node (primary, all replicas) for a strategy-3 ring.
fn strategy3(ring: &Ring, hashes: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let mut per_partition = vec![0u64; ring.partitions as usize];
    for &h in hashes {
        per_partition[partition_of(h, ring.partitions) as usize] += 1;
    }
    let mut primary = vec![0u64; ring.members.len()];
    let mut replicas = vec![0u64; ring.members.len()];
    for (list, &count) in ring.owners.iter().zip(&per_partition) {
        primary[usize::from(list[0])] += count;
        for &i in list {
            replicas[usize::from(i)] += count;
        }
    }
    (primary, replicas)
}
