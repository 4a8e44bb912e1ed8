//! Which rows run together. Requests wait in a queue sorted by prompt length (so a batch
//! pads little) and are taken from its front into batches bounded by a row cap and by the memory
//! their key/value cache takes: `rows × (longest prompt + largest token budget) × bytes per
//! cached token`. Continuous batching: while a batch decodes, rows that finish leave it, and once
//! a quarter of its rows are free the next requests are prefilled and join it
//! ([`Queue::take`] with the running rows as the base). A request with several samples
//! prefills its prompt once per batch it lands in (a group) and its cache rows are repeated for
//! the samples.

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

/// Groups prefilled together: a fresh batch, or rows joining a running one.
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

/// Columns a cache reserves beyond its tokens for rows that may take `budget` more: when rows
/// may join later (continuous batching with requests still waiting) twice that, so joiners are
/// appended in place (a join that does not fit copies the whole cache into a new one).
pub(crate) fn reserve(budget: usize, joiners_may_follow: bool) -> usize {
    if joiners_may_follow {
        2 * budget
    } else {
        budget
    }
}

/// What a batch already holds when more rows are taken for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Running {
    /// Rows decoding.
    pub rows: usize,
    /// Columns their cache holds.
    pub seq: usize,
    /// Columns their cache has room for beyond `seq` (at least the most new tokens any of
    /// them may still take).
    pub budget: usize,
}

/// Work waiting to run, shortest prompt first (ties by request).
#[derive(Debug, Clone)]
pub(crate) struct Queue<'w> {
    order: Vec<&'w Work>,
    /// The first request not wholly taken, and its first sample not taken.
    next: usize,
    sample: usize,
    /// Rows (samples) not taken yet.
    waiting: usize,
}

impl<'w> Queue<'w> {
    /// All of `work`, waiting.
    pub fn new(work: &'w [Work]) -> Self {
        let mut order: Vec<&Work> = work.iter().collect();
        order.sort_by_key(|w| (w.prompt_len, w.request));
        Self {
            order,
            next: 0,
            sample: 0,
            waiting: work.iter().map(|w| w.samples).sum(),
        }
    }

    /// Rows (samples) not taken yet.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Takes the groups at the front of the queue that fit `limits` beside `running` (whose
    /// cache they will share): a fresh batch when nothing runs (at least one row, so a request
    /// larger than the cache budget still runs, alone), else rows joining a running batch. A
    /// join happens only when `continuous` and at least a quarter of the rows the batch could
    /// hold (or every waiting row) fit, so the joiners' prefill and the copy of the running
    /// cache into a larger one are shared by several rows; otherwise the batch comes back
    /// empty and the queue is unchanged. A request's samples may be split over consecutive
    /// batches.
    pub fn take(&mut self, running: Running, limits: &Limits, continuous: bool) -> Batch {
        if running.rows > 0 && !continuous {
            return Batch::default();
        }
        // Columns a batch reserves beyond its prompts: its token budget, and with continuous
        // batching as many again, so later joiners fit the cache in place (see `reserve`).
        let columns = |seq: usize, budget: usize| seq + reserve(budget, continuous);
        let (mut next, mut sample) = (self.next, self.sample);
        let mut batch = Batch::default();
        while let Some(w) = self.order.get(next) {
            let seq = running.seq.max(batch.seq).max(w.prompt_len);
            let budget = running.budget.max(batch.budget).max(w.budget);
            let room = limits
                .rows_for(columns(seq, budget))
                .saturating_sub(running.rows + batch.rows);
            let take = room.min(w.samples - sample);
            if take == 0 {
                break;
            }
            batch.groups.push(Group {
                request: w.request,
                samples: sample..sample + take,
            });
            batch.rows += take;
            batch.seq = batch.seq.max(w.prompt_len);
            batch.budget = batch.budget.max(w.budget);
            sample += take;
            if sample == w.samples {
                (next, sample) = (next + 1, 0);
            }
        }
        if running.rows > 0 {
            let holds = limits.rows_for(columns(running.seq, running.budget));
            let enough = (holds / 4).max(1).min(self.waiting);
            if batch.rows < enough {
                return Batch::default();
            }
        }
        (self.next, self.sample) = (next, sample);
        self.waiting -= batch.rows;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Static batches: each taken when the one before has finished.
    fn plan(work: &[Work], limits: &Limits) -> Vec<Batch> {
        let mut queue = Queue::new(work);
        let mut batches = Vec::new();
        while queue.waiting > 0 {
            batches.push(queue.take(Running::default(), limits, false));
        }
        batches
    }

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

    #[test]
    fn rows_join_a_running_batch_once_a_quarter_of_it_is_free() {
        let w = work(&[3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 1, 4);
        let limits = Limits {
            max_rows: 8,
            kv_budget_bytes: u64::MAX,
            kv_bytes_per_token: 1,
        };
        let mut queue = Queue::new(&w);
        let first = queue.take(Running::default(), &limits, true);
        assert_eq!(first.rows, 8);
        // Seven of eight rows still decode: one free row is less than a quarter.
        let running = Running {
            rows: 7,
            seq: 12,
            budget: 3,
        };
        assert_eq!(queue.take(running, &limits, true), Batch::default());
        // Six decode: the two shortest waiting prompts join, sized beside the running rows.
        let running = Running { rows: 6, ..running };
        let joined = queue.take(running, &limits, true);
        assert_eq!(
            joined.groups.iter().map(|g| g.request).collect::<Vec<_>>(),
            [8, 9]
        );
        assert_eq!((joined.rows, joined.seq, joined.budget), (2, 12, 4));
        assert_eq!(queue.waiting, 0);
        // Static batches never join.
        let mut queue = Queue::new(&w);
        queue.take(Running::default(), &limits, false);
        assert_eq!(queue.take(running, &limits, false), Batch::default());
        assert_eq!(queue.waiting, 2);
    }

    #[test]
    fn joiners_fit_the_cache_budget_of_the_whole_batch() {
        // 10 bytes per token, 4-token prompts with 10 new tokens and as many reserved for
        // joiners: a 720-byte budget holds three rows of 4 + 20 columns.
        let w = work(&[4, 4, 4, 4, 4], 1, 10);
        let limits = Limits {
            max_rows: 64,
            kv_budget_bytes: 720,
            kv_bytes_per_token: 10,
        };
        let mut queue = Queue::new(&w);
        assert_eq!(queue.take(Running::default(), &limits, true).rows, 3);
        // Rows 4 tokens in (8 columns, 6 to go): a joiner needs 8 + 2 x 10 columns, and so do
        // they once joined, so two running rows leave no room and one leaves room for one.
        let running = Running {
            rows: 2,
            seq: 8,
            budget: 6,
        };
        assert_eq!(queue.take(running, &limits, true), Batch::default());
        let running = Running { rows: 1, ..running };
        let joined = queue.take(running, &limits, true);
        assert_eq!(joined.rows, 1);
        assert!((running.rows + joined.rows) as u64 * (8 + 20) * 10 <= 720);
    }
}
