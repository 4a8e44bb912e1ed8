//! Training examples and their token batches, built as the `cell2sentence` package builds them:
//! prompt and response tokenized separately (each with the tokenizer's own special tokens),
//! concatenated, the end-of-text token appended, and the loss counted on the response and that
//! token; or, for whole-text loss, `prompt + " " + response` plus the end-of-text token with the
//! loss on every token. Sequences are cut to the model's context and right-padded, so a real
//! token's position never depends on padding.

use super::TrainError;
use crate::engine::tokenizer::TextTokenizer;
use crate::model::Step;
use crate::rng::{SplitMix64, mix64};
use polars::prelude::*;
use std::path::Path;

/// One prompt / response pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// The prompt (`model_input`).
    pub model_input: String,
    /// The text the model learns to produce (`response`).
    pub response: String,
}

/// Which tokens the loss counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossMode {
    /// The response and the end-of-text token (the package's default).
    #[default]
    Response,
    /// Every token of `prompt + " " + response + eos`.
    WholeText,
}

/// Reads examples from `.jsonl` (one object per line) or `.parquet`, both with string columns
/// `model_input` and `response`.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, TrainError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let examples = match ext.as_str() {
        "jsonl" | "json" => read_jsonl(path)?,
        "parquet" => read_parquet(path)?,
        _ => {
            return Err(TrainError::InvalidData(format!(
                "{}: examples must be a .jsonl or .parquet file with `model_input` and \
                 `response` columns",
                path.display()
            )));
        }
    };
    if examples.is_empty() {
        return Err(TrainError::InvalidData(format!(
            "{} holds no examples",
            path.display()
        )));
    }
    Ok(examples)
}

fn read_jsonl(path: &Path) -> Result<Vec<Example>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<Example>(line).map_err(|e| {
                TrainError::InvalidData(format!(
                    "{} line {}: not an object with string fields `model_input` and \
                     `response` ({e})",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn read_parquet(path: &Path) -> Result<Vec<Example>, TrainError> {
    let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| TrainError::io(path, e))?;
    let column = |name: &str| -> Result<Vec<String>, TrainError> {
        let col = df.column(name).map_err(|_| {
            TrainError::InvalidData(format!(
                "{} has no `{name}` column (it needs `model_input` and `response`)",
                path.display()
            ))
        })?;
        let strings = col.str().map_err(|_| {
            TrainError::InvalidData(format!(
                "{}: column `{name}` is not a string column",
                path.display()
            ))
        })?;
        strings
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.map(String::from).ok_or_else(|| {
                    TrainError::InvalidData(format!("{}: row {i} has no `{name}`", path.display()))
                })
            })
            .collect()
    };
    let inputs = column("model_input")?;
    let responses = column("response")?;
    Ok(inputs
        .into_iter()
        .zip(responses)
        .map(|(model_input, response)| Example {
            model_input,
            response,
        })
        .collect())
}

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Token ids, already cut to the context.
    pub ids: Vec<u32>,
    /// Index of the first token the loss counts (the response's first token, or 0).
    pub counted_from: usize,
    /// Tokens dropped by the cut to the context.
    pub cut: usize,
}

impl Sequence {
    /// Tokens whose prediction the loss counts: those at index ≥ `max(1, counted_from)` (the
    /// first token of a sequence has no prediction).
    pub fn counted(&self) -> usize {
        self.ids.len().saturating_sub(self.counted_from.max(1))
    }
}

/// Turns examples into token sequences.
#[derive(Debug, Clone)]
pub struct Tokenization<'a> {
    /// The model's tokenizer.
    pub tokenizer: &'a TextTokenizer,
    /// The end-of-text id appended to every sequence.
    pub eos: u32,
    /// The model's context (longer sequences are cut).
    pub context: usize,
    /// Which tokens count.
    pub mode: LossMode,
}

impl Tokenization<'_> {
    /// Token ids of `text`, with the tokenizer's own special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TrainError> {
        self.tokenizer
            .encode(text)
            .map_err(|e| TrainError::InvalidData(e.to_string()))
    }

    /// Tokenizes one example.
    pub fn sequence(&self, example: &Example) -> Result<Sequence, TrainError> {
        let encode = |text: &str| self.encode(text);
        let (mut ids, counted_from) = match self.mode {
            LossMode::Response => {
                let mut ids = encode(&example.model_input)?;
                let from = ids.len();
                ids.extend(encode(&example.response)?);
                (ids, from)
            }
            LossMode::WholeText => (
                encode(&format!("{} {}", example.model_input, example.response))?,
                0,
            ),
        };
        ids.push(self.eos);
        let cut = ids.len().saturating_sub(self.context);
        ids.truncate(self.context);
        Ok(Sequence {
            ids,
            counted_from,
            cut,
        })
    }

    /// Tokenizes every example; an example left with no counted token after the cut is an
    /// error naming how many there are.
    pub fn sequences(&self, examples: &[Example]) -> Result<Vec<Sequence>, TrainError> {
        let seqs = examples
            .iter()
            .map(|e| self.sequence(e))
            .collect::<Result<Vec<_>, _>>()?;
        let empty: Vec<usize> = seqs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.counted() == 0)
            .map(|(i, _)| i)
            .collect();
        if let Some(first) = empty.first() {
            return Err(TrainError::InvalidData(format!(
                "{} of {} examples (the first is #{first}) have no response token within the \
                 model's context of {} tokens: their prompts are too long; use fewer genes per \
                 cell sentence or a model with a longer context",
                empty.len(),
                seqs.len(),
                self.context
            )));
        }
        Ok(seqs)
    }
}

/// What a data set looks like before training.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Preview {
    /// Number of examples.
    pub examples: usize,
    /// Shortest, median, 90th percentile and longest sequence, in tokens (before the cut).
    pub length_min: usize,
    /// Median length.
    pub length_median: usize,
    /// 90th percentile length.
    pub length_p90: usize,
    /// Longest.
    pub length_max: usize,
    /// Examples longer than the context (cut).
    pub cut: usize,
    /// Tokens the loss counts, over all examples.
    pub counted_tokens: usize,
}

impl Preview {
    /// Summarises tokenized sequences.
    pub fn of(sequences: &[Sequence]) -> Self {
        let mut lengths: Vec<usize> = sequences.iter().map(|s| s.ids.len() + s.cut).collect();
        lengths.sort_unstable();
        let at = |q: f64| -> usize {
            if lengths.is_empty() {
                return 0;
            }
            lengths[((lengths.len() - 1) as f64 * q).round() as usize]
        };
        Self {
            examples: sequences.len(),
            length_min: at(0.0),
            length_median: at(0.5),
            length_p90: at(0.9),
            length_max: at(1.0),
            cut: sequences.iter().filter(|s| s.cut > 0).count(),
            counted_tokens: sequences.iter().map(Sequence::counted).sum(),
        }
    }
}

/// A right-padded batch with its loss targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Token ids `[rows, seq]`, row-major.
    pub ids: Vec<u32>,
    /// Positions (0, 1, … from each row's first token; padding continues the count).
    pub positions: Vec<i64>,
    /// False for padding.
    pub valid: Vec<bool>,
    /// Rows.
    pub rows: usize,
    /// Tokens per row.
    pub seq: usize,
    /// For every `(row, t)` with `t < seq − 1`: the id at `t + 1`, row-major `[rows, seq − 1]`.
    pub targets: Vec<u32>,
    /// 1 where the target at `t + 1` is counted, else 0; same layout as `targets`.
    pub weights: Vec<f32>,
}

impl Batch {
    /// Pads `sequences` on the right with `pad`.
    pub fn new(sequences: &[&Sequence], pad: u32) -> Self {
        let rows = sequences.len();
        let seq = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let mut ids = vec![pad; rows * seq];
        let mut valid = vec![false; rows * seq];
        let positions = (0..rows)
            .flat_map(|_| (0..seq as i64).collect::<Vec<_>>())
            .collect();
        let width = seq.saturating_sub(1);
        let mut targets = vec![0u32; rows * width];
        let mut weights = vec![0f32; rows * width];
        for (r, s) in sequences.iter().enumerate() {
            ids[r * seq..r * seq + s.ids.len()].copy_from_slice(&s.ids);
            valid[r * seq..r * seq + s.ids.len()].fill(true);
            for j in s.counted_from.max(1)..s.ids.len() {
                targets[r * width + j - 1] = s.ids[j];
                weights[r * width + j - 1] = 1.0;
            }
        }
        Self {
            ids,
            positions,
            valid,
            rows,
            seq,
            targets,
            weights,
        }
    }

    /// Tokens the loss counts.
    pub fn counted(&self) -> usize {
        self.weights.iter().filter(|w| **w > 0.0).count()
    }

    /// Real (non-padding) tokens.
    pub fn tokens(&self) -> usize {
        self.valid.iter().filter(|v| **v).count()
    }

    /// The model inputs.
    pub fn step(&self) -> Step<'_> {
        Step {
            ids: &self.ids,
            positions: &self.positions,
            valid: &self.valid,
            batch: self.rows,
            seq: self.seq,
        }
    }
}

/// The train / validation split of a run, saved beside it as `split.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Indices (into the example file) used for training, in file order.
    pub train: Vec<usize>,
    /// Indices held out for validation, in file order.
    pub validation: Vec<usize>,
}

impl Split {
    /// Holds out `round(n · fraction)` examples (at least one when `fraction > 0`), chosen by a
    /// shuffle seeded with `seed`; the rest train.
    pub fn new(n: usize, fraction: f64, seed: u64) -> Result<Self, TrainError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(TrainError::InvalidConfig(format!(
                "the validation fraction must be in [0, 1), got {fraction}"
            )));
        }
        let held = if fraction > 0.0 {
            ((n as f64 * fraction).round() as usize).max(1)
        } else {
            0
        };
        if held >= n {
            return Err(TrainError::InvalidData(format!(
                "{n} examples are too few to hold out {held} for validation; add examples or \
                 lower the validation fraction"
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, mix64(seed ^ 0x5eed_5011));
        let mut validation = order[..held].to_vec();
        let mut train = order[held..].to_vec();
        validation.sort_unstable();
        train.sort_unstable();
        Ok(Self { train, validation })
    }
}

/// Fisher–Yates shuffle driven by [`SplitMix64`].
fn shuffle(items: &mut [usize], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

/// The order in which training examples are drawn: epoch after epoch, each epoch a permutation
/// of the training set (seeded per epoch, or file order without shuffling). Item `k` of the
/// stream depends only on `k`, so a resumed run draws exactly what an uninterrupted one would.
#[derive(Debug, Clone)]
pub struct Order {
    n: usize,
    seed: u64,
    shuffle: bool,
    cached: Option<(usize, Vec<usize>)>,
}

impl Order {
    /// The stream over `n` training examples.
    pub fn new(n: usize, seed: u64, shuffle: bool) -> Self {
        Self {
            n,
            seed,
            shuffle,
            cached: None,
        }
    }

    /// Index (into the training set) of stream item `k`.
    pub fn item(&mut self, k: usize) -> usize {
        let (epoch, i) = (k / self.n, k % self.n);
        if !self.shuffle {
            return i;
        }
        if self.cached.as_ref().map(|c| c.0) != Some(epoch) {
            let mut order: Vec<usize> = (0..self.n).collect();
            shuffle(&mut order, mix64(self.seed.wrapping_add(epoch as u64 + 1)));
            self.cached = Some((epoch, order));
        }
        self.cached.as_ref().map(|c| c.1[i]).unwrap_or(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(ids: &[u32], from: usize) -> Sequence {
        Sequence {
            ids: ids.to_vec(),
            counted_from: from,
            cut: 0,
        }
    }

    #[test]
    fn batch_pads_right_and_counts_only_response_tokens() {
        let a = seq(&[5, 6, 7, 8], 2);
        let b = seq(&[9, 10], 1);
        let batch = Batch::new(&[&a, &b], 0);
        assert_eq!(batch.ids, vec![5, 6, 7, 8, 9, 10, 0, 0]);
        assert_eq!(batch.positions, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(
            batch.valid,
            vec![true, true, true, true, true, true, false, false]
        );
        // Row 0 counts tokens 7 and 8 (predicted from positions 1 and 2); row 1 counts 10.
        assert_eq!(batch.targets, vec![0, 7, 8, 10, 0, 0]);
        assert_eq!(batch.weights, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(batch.counted(), 3);
        assert_eq!(a.counted() + b.counted(), 3);
        assert_eq!(batch.tokens(), 6);
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let s = Split::new(20, 0.1, 7).unwrap();
        assert_eq!(s.validation.len(), 2);
        assert_eq!(s.train.len(), 18);
        assert_eq!(s, Split::new(20, 0.1, 7).unwrap());
        assert_ne!(s, Split::new(20, 0.1, 8).unwrap());
        assert!(s.validation.iter().all(|v| !s.train.contains(v)));
        assert!(Split::new(1, 0.5, 0).is_err());
        assert_eq!(Split::new(5, 0.0, 0).unwrap().train, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn order_is_file_order_without_shuffle_and_a_permutation_with() {
        let mut plain = Order::new(3, 1, false);
        let items: Vec<usize> = (0..7).map(|k| plain.item(k)).collect();
        assert_eq!(items, vec![0, 1, 2, 0, 1, 2, 0]);
        let mut shuffled = Order::new(50, 1, true);
        let mut epoch: Vec<usize> = (0..50).map(|k| shuffled.item(k)).collect();
        let next: Vec<usize> = (50..100).map(|k| shuffled.item(k)).collect();
        assert_ne!(epoch, (0..50).collect::<Vec<_>>());
        assert_ne!(epoch, next);
        epoch.sort_unstable();
        assert_eq!(epoch, (0..50).collect::<Vec<_>>());
        // Item k depends only on k.
        assert_eq!(Order::new(50, 1, true).item(73), next[23]);
    }

    #[test]
    fn preview_counts_cut_examples() {
        let mut a = seq(&[1, 2, 3], 1);
        a.cut = 2;
        let p = Preview::of(&[a, seq(&[1, 2], 1)]);
        assert_eq!(
            (p.examples, p.cut, p.length_max, p.length_min),
            (2, 1, 5, 2)
        );
        assert_eq!(p.counted_tokens, 3);
    }
}
