//! Which rows run together. Requests are sorted by prompt length (so a batch pads little) and
//! packed into batches bounded by a row cap and by the memory their key/value cache takes:
//! `rows × (longest prompt + largest token budget) × bytes per cached token`. A request with
//! several samples prefills its prompt once per batch it lands in (a group) and its cache rows
//! are repeated for the samples.

use crate::model::LanguageModel;
use burn::tensor::backend::Backend;
use std::ops::Range;

/// Bytes one cached token takes over all layers: keys and values of `kv_heads · head_dim`
/// each, in the compute dtype (`dtype_bytes`).
pub(crate) fn kv_bytes_per_token<B: Backend>(model: &LanguageModel<B>, dtype_bytes: usize) -> u64 {
    let (layers, width) = match model {
        LanguageModel::GptNeox(m) => (m.num_layers(), m.config().hidden_size),
        LanguageModel::Gemma(m) => (
            m.num_layers(),
            m.config().num_kv_heads * m.config().head_dim,
        ),
    };
    2 * (layers * width * dtype_bytes) as u64
}

/// What one request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// The request's index.
    pub request: usize,
    /// Prompt tokens.
    pub prompt_len: usize,
    /// Continuations of the prompt.
    pub samples: usize,
    /// New tokens each continuation may take (at least 1).
    pub budget: usize,
}

/// One prefill row: a request and the samples that continue from its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The request's index.
    pub request: usize,
    /// Its samples in this batch.
    pub samples: Range<usize>,
}

/// Groups that run as one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    /// Prefill rows, shortest prompt first.
    pub groups: Vec<Group>,
    /// Decode rows (samples of all groups).
    pub rows: usize,
    /// Longest prompt.
    pub seq: usize,
    /// Largest token budget.
    pub budget: usize,
}

/// Bounds on one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Decode rows.
    pub max_rows: usize,
    /// Bytes of key/value cache.
    pub kv_budget_bytes: u64,
    /// Bytes one cached token takes (see [`kv_bytes_per_token`]).
    pub kv_bytes_per_token: u64,
}

impl Limits {
    /// How many rows fit a batch whose cache holds `columns` tokens per row (at least one,
    /// so a request larger than the budget still runs, alone).
    fn rows_for(&self, columns: usize) -> usize {
        let row = (columns as u64 * self.kv_bytes_per_token).max(1);
        let rows = usize::try_from(self.kv_budget_bytes / row).unwrap_or(usize::MAX);
        rows.clamp(1, self.max_rows.max(1))
    }
}

/// Packs `work` into batches: sorted by prompt length (ties by request), each batch within
/// `limits`; a request's samples may be split over consecutive batches.
pub(crate) fn plan(work: &[Work], limits: &Limits) -> Vec<Batch> {
    let mut order: Vec<&Work> = work.iter().collect();
    order.sort_by_key(|w| (w.prompt_len, w.request));
    let mut batches = Vec::new();
    let mut current = Batch::default();
    for w in order {
        let mut next = 0;
        while next < w.samples {
            let seq = current.seq.max(w.prompt_len);
            let budget = current.budget.max(w.budget);
            let room = limits.rows_for(seq + budget).saturating_sub(current.rows);
            let take = room.min(w.samples - next);
            if take == 0 {
                batches.push(std::mem::take(&mut current));
                continue;
            }
            current.groups.push(Group {
                request: w.request,
                samples: next..next + take,
            });
            current.rows += take;
            current.seq = seq;
            current.budget = budget;
            next += take;
        }
    }
    if current.rows > 0 {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(lengths: &[usize], samples: usize, budget: usize) -> Vec<Work> {
        lengths
            .iter()
            .enumerate()
            .map(|(request, &prompt_len)| Work {
                request,
                prompt_len,
                samples,
                budget,
            })
            .collect()
    }

    /// Every (request, sample) exactly once, in length order.
    fn assert_complete(work: &[Work], batches: &[Batch]) {
        let mut seen: Vec<(usize, usize)> = batches
            .iter()
            .flat_map(|b| &b.groups)
            .flat_map(|g| g.samples.clone().map(move |s| (g.request, s)))
            .collect();
        let lengths: Vec<usize> = batches
            .iter()
            .flat_map(|b| &b.groups)
            .map(|g| work[g.request].prompt_len)
            .collect();
        assert!(lengths.is_sorted(), "{lengths:?}");
        seen.sort();
        let expected: Vec<(usize, usize)> = work
            .iter()
            .flat_map(|w| (0..w.samples).map(move |s| (w.request, s)))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn batches_are_sorted_by_length_and_capped_in_rows() {
        let w = work(&[9, 3, 7, 1, 5, 2, 8], 1, 4);
        let limits = Limits {
            max_rows: 2,
            kv_budget_bytes: u64::MAX,
            kv_bytes_per_token: 8,
        };
        let batches = plan(&w, &limits);
        assert_complete(&w, &batches);
        let requests: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.groups.iter().map(|g| g.request).collect())
            .collect();
        assert_eq!(requests, [vec![3, 5], vec![1, 4], vec![2, 6], vec![0]]);
        assert_eq!(batches[1].seq, 5);
    }

    #[test]
    fn the_cache_budget_bounds_rows_times_columns() {
        // 100 bytes per token, 10 tokens per row: a 2,500-byte budget fits 2 rows.
        let w = work(&[6, 6, 6, 6, 6], 1, 4);
        let limits = Limits {
            max_rows: 64,
            kv_budget_bytes: 2_500,
            kv_bytes_per_token: 100,
        };
        let batches = plan(&w, &limits);
        assert_complete(&w, &batches);
        assert_eq!(
            batches.iter().map(|b| b.rows).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        for b in &batches {
            assert!(b.rows as u64 * (b.seq + b.budget) as u64 * 100 <= 2_500);
        }
        // A row larger than the budget still runs, alone.
        let batches = plan(
            &w,
            &Limits {
                kv_budget_bytes: 10,
                ..limits
            },
        );
        assert_eq!(batches.len(), 5);
        assert!(batches.iter().all(|b| b.rows == 1));
    }

    #[test]
    fn samples_share_a_group_and_split_across_batches() {
        let w = vec![
            Work {
                request: 0,
                prompt_len: 4,
                samples: 5,
                budget: 2,
            },
            Work {
                request: 1,
                prompt_len: 2,
                samples: 1,
                budget: 2,
            },
        ];
        let limits = Limits {
            max_rows: 3,
            kv_budget_bytes: u64::MAX,
            kv_bytes_per_token: 1,
        };
        let batches = plan(&w, &limits);
        assert_complete(&w, &batches);
        let groups: Vec<Vec<Group>> = batches.into_iter().map(|b| b.groups).collect();
        assert_eq!(
            groups,
            [
                vec![
                    Group {
                        request: 1,
                        samples: 0..1
                    },
                    Group {
                        request: 0,
                        samples: 0..2
                    }
                ],
                vec![Group {
                    request: 0,
                    samples: 2..5
                }],
            ]
        );
    }
}
