//! Work units of a screen: one prediction for a (perturbation, context, sample, replicate), with
//! a seed derived only from the screen seed and that identity, so any split of the units into
//! shards, batches or restarts gives identical results.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unit {
    /// Perturbation name (from the library).
    pub perturbation: String,
    /// Context name.
    pub context: String,
    /// Sample number within the context (0-based, in the order of the drawn cells).
    pub sample: u32,
    /// Replicate number (0-based).
    pub replicate: u32,
}

impl Unit {
    /// The unit's sampling seed: the first 8 bytes (little-endian) of SHA-256 over the screen
    /// seed and the unit's identity, length-prefixed so no two identities share an encoding.
    pub fn seed(&self, screen_seed: u64) -> u64 {
        let mut h = Sha256::new();
        h.update(b"c2s-screen-unit-v1");
        h.update(screen_seed.to_le_bytes());
        for text in [&self.perturbation, &self.context] {
            h.update((text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        h.update(self.sample.to_le_bytes());
        h.update(self.replicate.to_le_bytes());
        let d = h.finalize();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }
}

/// A context as the units see it: its name, how many samples were drawn, and its replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextShape {
    /// Context name.
    pub name: String,
    /// Samples actually drawn (at most the spec's `samples`).
    pub samples: usize,
    /// Replicates per sample.
    pub replicates: usize,
}

/// Every unit of a screen in its canonical order: perturbation (library order), then context
/// (spec order), sample, replicate.
pub fn all_units(perturbations: &[String], contexts: &[ContextShape]) -> Vec<Unit> {
    let mut units = Vec::new();
    for p in perturbations {
        for c in contexts {
            for s in 0..c.samples {
                for r in 0..c.replicates {
                    units.push(Unit {
                        perturbation: p.clone(),
                        context: c.name.clone(),
                        sample: s as u32,
                        replicate: r as u32,
                    });
                }
            }
        }
    }
    units
}

/// Shard `index` (1-based) of `count`: the units at canonical positions `index − 1`,
/// `index − 1 + count`, … (round robin, so shards differ by at most one unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole screen as one shard.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// This shard's units, in canonical order.
    pub fn select(&self, units: Vec<Unit>) -> Vec<Unit> {
        units
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % self.count == self.index - 1)
            .map(|(_, u)| u)
            .collect()
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `I/N` with `1 ≤ I ≤ N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "--shard {s:?} is not I/N with 1 ≤ I ≤ N (e.g. 2/8 for the second of eight shards)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<ContextShape> {
        vec![
            ContextShape {
                name: "a".into(),
                samples: 2,
                replicates: 3,
            },
            ContextShape {
                name: "b".into(),
                samples: 1,
                replicates: 1,
            },
        ]
    }

    #[test]
    fn units_cover_every_identity_once_in_order() {
        let p = vec!["x".to_string(), "y".to_string()];
        let u = all_units(&p, &shapes());
        assert_eq!(u.len(), 2 * (2 * 3 + 1));
        assert_eq!(
            u[0],
            Unit {
                perturbation: "x".into(),
                context: "a".into(),
                sample: 0,
                replicate: 0
            }
        );
        assert_eq!((u[5].sample, u[5].replicate), (1, 2));
        assert_eq!(u[6].context, "b");
        let distinct: std::collections::HashSet<_> = u.iter().collect();
        assert_eq!(distinct.len(), u.len());
    }

    #[test]
    fn seeds_depend_on_identity_and_screen_seed_only() {
        let u = all_units(&["x".to_string(), "y".to_string()], &shapes());
        let seeds: std::collections::HashSet<u64> = u.iter().map(|x| x.seed(7)).collect();
        assert_eq!(seeds.len(), u.len());
        assert_ne!(u[0].seed(7), u[0].seed(8));
        // A different library or context order does not change a unit's seed.
        let other = all_units(&["y".to_string()], &shapes()[1..]);
        let same = u.iter().find(|x| **x == other[0]).unwrap();
        assert_eq!(same.seed(7), other[0].seed(7));
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        let mk = |p: &str, c: &str| Unit {
            perturbation: p.into(),
            context: c.into(),
            sample: 0,
            replicate: 0,
        };
        assert_ne!(mk("ab", "c").seed(0), mk("a", "bc").seed(0));
    }

    #[test]
    fn shards_partition_the_units() {
        let u = all_units(&["x".into(), "y".into(), "z".into()], &shapes());
        let mut merged: Vec<Unit> = (1..=3)
            .flat_map(|i| Shard { index: i, count: 3 }.select(u.clone()))
            .collect();
        let sizes: Vec<usize> = (1..=3)
            .map(|i| Shard { index: i, count: 3 }.select(u.clone()).len())
            .collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        merged.sort();
        let mut all = u.clone();
        all.sort();
        assert_eq!(merged, all);
        assert_eq!(Shard::ALL.select(u.clone()), u);
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        assert_eq!("2/8".parse::<Shard>().unwrap().to_string(), "2/8");
        for bad in ["0/3", "4/3", "1", "a/b", "1/0"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
    }
}
