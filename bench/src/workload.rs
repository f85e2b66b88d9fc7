//! What each operation is: the operation mix, which key it touches (uniform
//! or zipfian), the request paths, and the value that writes send.

use std::fmt::Write as _;

use bytes::Bytes;
use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

/// The kinds of operation a run issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Only PUT /v1/kv/{key}, carrying the context the last write of that
    /// key returned, so the value is replaced (with --blind-writes: no
    /// context, so a key that has a value gains a sibling).
    Write,
    /// Only GET /v1/kv/{key}.
    Read,
    /// GET with probability --read-ratio, PUT otherwise.
    Mixed,
    /// Read-modify-write: GET the key, then PUT a new value with the
    /// X-Dynamo-Context of that read (without a context after a 404).
    Rmw,
}

/// How keys are drawn from `0..keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key i has weight 1/(i+1)^s (s = --zipf-exponent): a few
    /// low-numbered keys are hot, key 0 most.
    Zipfian,
}

/// One operation of the workload, as a worker executes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A single `GET`.
    Read,
    /// A single `PUT` (with the key's last write context unless blind).
    Write,
    /// A `GET` followed by a `PUT` carrying the read's context.
    ReadModifyWrite,
}

/// Picks the next operation according to the workload.
#[derive(Debug, Clone, Copy)]
pub struct OpMix {
    workload: Workload,
    read_ratio: f64,
}

impl OpMix {
    /// An op mix; `read_ratio` (in `0..=1`) only matters for [`Workload::Mixed`].
    pub fn new(workload: Workload, read_ratio: f64) -> Self {
        Self {
            workload,
            read_ratio,
        }
    }

    /// The next operation.
    pub fn next_op<R: Rng>(&self, rng: &mut R) -> Op {
        match self.workload {
            Workload::Write => Op::Write,
            Workload::Read => Op::Read,
            Workload::Rmw => Op::ReadModifyWrite,
            Workload::Mixed => {
                if rng.random::<f64>() < self.read_ratio {
                    Op::Read
                } else {
                    Op::Write
                }
            }
        }
    }
}

/// Error building a key distribution.
#[derive(Debug, thiserror::Error)]
pub enum KeyDistError {
    /// The key space is empty.
    #[error("the number of keys must be at least 1")]
    NoKeys,
    /// `rand_distr` rejected the zipfian parameters.
    #[error("invalid zipfian distribution over {keys} keys with exponent {exponent}: {reason}")]
    Zipf {
        /// Number of keys.
        keys: u64,
        /// The exponent asked for.
        exponent: f64,
        /// Why it was rejected.
        reason: String,
    },
}

/// Draws key indices in `0..keys`.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    keys: u64,
    zipf: Option<Zipf<f64>>,
}

impl KeyChooser {
    /// A chooser over `0..keys`; `exponent` is only used for [`KeyDist::Zipfian`].
    pub fn new(keys: u64, dist: KeyDist, exponent: f64) -> Result<Self, KeyDistError> {
        if keys == 0 {
            return Err(KeyDistError::NoKeys);
        }
        let zipf = match dist {
            KeyDist::Uniform => None,
            KeyDist::Zipfian => {
                Some(
                    Zipf::new(keys as f64, exponent).map_err(|e| KeyDistError::Zipf {
                        keys,
                        exponent,
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        Ok(Self { keys, zipf })
    }

    /// The next key index, always in `0..keys`; with the zipfian
    /// distribution index 0 is the most frequent.
    pub fn next_key<R: Rng>(&self, rng: &mut R) -> u64 {
        match &self.zipf {
            None => rng.random_range(0..self.keys),
            // Zipf yields ranks 1..=keys as floats.
            Some(zipf) => (zipf.sample(rng) as u64).clamp(1, self.keys) - 1,
        }
    }
}

/// Builds request paths `/v1/kv/{prefix}{i}` plus the `?r=`/`?w=` query.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    key_base: String,
    read_query: String,
    write_query: String,
}

impl KeyPaths {
    /// Paths for keys named `{prefix}{i}`; `r` and `w` become the read and
    /// write query strings when given.
    pub fn new(prefix: &str, r: Option<u32>, w: Option<u32>) -> Self {
        Self {
            key_base: format!("/v1/kv/{}", percent_encode(prefix)),
            read_query: r.map(|r| format!("?r={r}")).unwrap_or_default(),
            write_query: w.map(|w| format!("?w={w}")).unwrap_or_default(),
        }
    }

    /// Writes the path (with query) of a read of key `key` into `buf`.
    pub fn read_path<'a>(&self, buf: &'a mut String, key: u64) -> &'a str {
        self.build(buf, key, &self.read_query)
    }

    /// Writes the path (with query) of a write of key `key` into `buf`.
    pub fn write_path<'a>(&self, buf: &'a mut String, key: u64) -> &'a str {
        self.build(buf, key, &self.write_query)
    }

    fn build<'a>(&self, buf: &'a mut String, key: u64, query: &str) -> &'a str {
        buf.clear();
        buf.push_str(&self.key_base);
        // Writing to a String cannot fail.
        let _ = write!(buf, "{key}");
        buf.push_str(query);
        buf
    }
}

/// Percent-encodes everything but unreserved characters and `/`, so a key
/// prefix with spaces or non-ASCII text still forms a valid path.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The value every write sends: `size` pseudo-random bytes, generated once.
pub fn make_value(size: usize) -> Bytes {
    let mut rng = SmallRng::seed_from_u64(0x64796e616d6f);
    let mut buf = vec![0u8; size];
    rng.fill_bytes(&mut buf);
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    #[test]
    fn uniform_covers_the_whole_range() {
        let chooser = KeyChooser::new(100, KeyDist::Uniform, 0.99).unwrap();
        let mut seen = [0u32; 100];
        let mut rng = rng();
        for _ in 0..20_000 {
            seen[chooser.next_key(&mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "every key drawn at least once");
        // Roughly flat: no key gets more than twice its share.
        assert!(seen.iter().all(|&n| n < 400), "{seen:?}");
    }

    #[test]
    fn zipfian_skews_toward_low_ranks_and_stays_in_range() {
        let keys = 1000;
        let chooser = KeyChooser::new(keys, KeyDist::Zipfian, 0.99).unwrap();
        let mut rng = rng();
        let mut counts = vec![0u32; keys as usize];
        for _ in 0..50_000 {
            let k = chooser.next_key(&mut rng);
            assert!(k < keys);
            counts[k as usize] += 1;
        }
        let first_ten: u32 = counts[..10].iter().sum();
        let last_ten: u32 = counts[keys as usize - 10..].iter().sum();
        assert!(counts[0] > counts[1], "{:?}", &counts[..5]);
        assert!(counts[1] > counts[10]);
        // Under uniform draws each decile would get ~1%; zipf(0.99) over
        // 1000 keys gives the 10 hottest roughly 35%.
        assert!(first_ten > 50_000 / 5, "first ten got {first_ten}");
        assert!(first_ten > 20 * last_ten.max(1));
    }

    #[test]
    fn zipfian_with_one_key_and_large_exponent_stays_in_range() {
        let mut rng = rng();
        let one = KeyChooser::new(1, KeyDist::Zipfian, 0.99).unwrap();
        let steep = KeyChooser::new(10, KeyDist::Zipfian, 5.0).unwrap();
        for _ in 0..1000 {
            assert_eq!(one.next_key(&mut rng), 0);
            assert!(steep.next_key(&mut rng) < 10);
        }
    }

    #[test]
    fn invalid_distributions_are_errors() {
        assert!(matches!(
            KeyChooser::new(0, KeyDist::Uniform, 0.99),
            Err(KeyDistError::NoKeys)
        ));
        assert!(matches!(
            KeyChooser::new(10, KeyDist::Zipfian, -1.0),
            Err(KeyDistError::Zipf { .. })
        ));
    }

    #[test]
    fn mixed_follows_the_read_ratio() {
        let mut rng = rng();
        let mix = OpMix::new(Workload::Mixed, 0.8);
        let reads = (0..10_000)
            .filter(|_| mix.next_op(&mut rng) == Op::Read)
            .count();
        assert!((7_600..=8_400).contains(&reads), "{reads} reads");
    }

    #[test]
    fn extreme_ratios_and_fixed_workloads() {
        let mut rng = rng();
        let all_reads = OpMix::new(Workload::Mixed, 1.0);
        let all_writes = OpMix::new(Workload::Mixed, 0.0);
        for _ in 0..1000 {
            assert_eq!(all_reads.next_op(&mut rng), Op::Read);
            assert_eq!(all_writes.next_op(&mut rng), Op::Write);
        }
        assert_eq!(OpMix::new(Workload::Read, 0.0).next_op(&mut rng), Op::Read);
        assert_eq!(
            OpMix::new(Workload::Write, 1.0).next_op(&mut rng),
            Op::Write
        );
        assert_eq!(
            OpMix::new(Workload::Rmw, 0.5).next_op(&mut rng),
            Op::ReadModifyWrite
        );
    }

    #[test]
    fn paths_carry_prefix_index_and_quorum_query() {
        let paths = KeyPaths::new("key-", Some(1), Some(3));
        let mut buf = String::new();
        assert_eq!(paths.read_path(&mut buf, 42), "/v1/kv/key-42?r=1");
        assert_eq!(paths.write_path(&mut buf, 7), "/v1/kv/key-7?w=3");
        let plain = KeyPaths::new("a b/é", None, None);
        assert_eq!(plain.read_path(&mut buf, 0), "/v1/kv/a%20b/%C3%A90");
    }

    #[test]
    fn value_has_the_requested_size_and_is_not_constant() {
        let v = make_value(1024);
        assert_eq!(v.len(), 1024);
        assert!(v.iter().any(|&b| b != v[0]));
        assert!(make_value(0).is_empty());
    }
}
