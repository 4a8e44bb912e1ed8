//! Candidate-ranking accuracy for classification runs (cell types): every distinct training
//! response is a candidate, and a validation example counts as right when its own response has
//! the highest summed log-probability of all candidates as the continuation of its prompt. A
//! candidate's tokens are counted as the response-only loss counts them: the response tokenized
//! on its own plus the end-of-text token.

use super::TrainError;
use super::data::{Batch, Example, Sequence, Split, Tokenization};
use super::loss::row_nll;
use super::model::TrainableModel;
use super::model::layers::Adapters;
use crate::model::linear::host_f32;
use burn::tensor::backend::Backend;
use std::collections::BTreeMap;

/// The candidates and the validation queries of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Each candidate's tokens (response + end-of-text), in the order of the sorted response
    /// texts.
    candidates: Vec<Vec<u32>>,
    /// Each validation example's prompt tokens and the index of its own response among the
    /// candidates (none when no training example has that response: always wrong).
    queries: Vec<(Vec<u32>, Option<usize>)>,
    /// The model's context.
    context: usize,
    /// Fraction of validation examples whose response is the most frequent training response.
    majority_rate: f64,
}

impl Ranking {
    /// The candidates are the distinct responses of the training examples of `split`, the
    /// queries its validation examples.
    pub fn new(
        tokenization: &Tokenization,
        examples: &[Example],
        split: &Split,
    ) -> Result<Self, TrainError> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in &split.train {
            *counts.entry(examples[i].response.as_str()).or_default() += 1;
        }
        let names: Vec<&str> = counts.keys().copied().collect();
        let candidates = names
            .iter()
            .map(|r| {
                let mut ids = tokenization.encode(r)?;
                ids.push(tokenization.eos);
                Ok(ids)
            })
            .collect::<Result<Vec<_>, TrainError>>()?;
        let majority = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(r, _)| *r);
        let queries = split
            .validation
            .iter()
            .map(|&i| {
                let e = &examples[i];
                let answer = names.binary_search(&e.response.as_str()).ok();
                Ok((tokenization.encode(&e.model_input)?, answer))
            })
            .collect::<Result<Vec<_>, TrainError>>()?;
        let hits = split
            .validation
            .iter()
            .filter(|&&i| Some(examples[i].response.as_str()) == majority)
            .count();
        Ok(Self {
            candidates,
            queries,
            context: tokenization.context,
            majority_rate: hits as f64 / split.validation.len().max(1) as f64,
        })
    }

    /// Fraction of validation examples whose response is the most frequent training response
    /// (what always answering the majority class scores).
    pub fn majority_rate(&self) -> f64 {
        self.majority_rate
    }

    /// Number of candidates.
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// `scores[q][c]`: the summed log-probability of candidate `c` after the prompt of query
    /// `q` (prompts cut at the end so that prompt and candidate fit the context), from `model`
    /// with `adapters` (evaluate with dropout 0), `rows` sequences per forward pass.
    pub fn scores<B: Backend>(
        &self,
        model: &TrainableModel<B>,
        adapters: Option<&Adapters<B>>,
        pad: u32,
        rows: usize,
    ) -> Vec<Vec<f64>> {
        let pairs: Vec<Sequence> = self
            .queries
            .iter()
            .flat_map(|(prompt, _)| {
                self.candidates.iter().map(move |cand| {
                    let keep = self.context.saturating_sub(cand.len()).max(1);
                    let prompt = &prompt[..prompt.len().min(keep)];
                    let mut ids = prompt.to_vec();
                    ids.extend(cand);
                    ids.truncate(self.context);
                    Sequence {
                        counted_from: prompt.len(),
                        ids,
                        cut: 0,
                    }
                })
            })
            .collect();
        let mut flat = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(rows.max(1)) {
            let refs: Vec<&Sequence> = chunk.iter().collect();
            let batch = Batch::new(&refs, pad);
            let logits = model.forward(&batch.step(), adapters);
            flat.extend(host_f32(row_nll(logits, &batch)).iter().map(|&v| -v as f64));
        }
        flat.chunks(self.candidates.len().max(1))
            .map(<[f64]>::to_vec)
            .collect()
    }

    /// Fraction of queries whose own response scores highest in `scores` (ties go to the
    /// candidate that sorts first).
    pub fn accuracy(&self, scores: &[Vec<f64>]) -> f64 {
        let right = self
            .queries
            .iter()
            .zip(scores)
            .filter(|((_, answer), row)| answer.is_some() && argmax(row) == *answer)
            .count();
        right as f64 / self.queries.len().max(1) as f64
    }
}

/// Index of the largest value (the first of equal ones); none for an empty row.
fn argmax(row: &[f64]) -> Option<usize> {
    row.iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f64)>, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(answers: &[Option<usize>], candidates: usize, majority_rate: f64) -> Ranking {
        Ranking {
            candidates: vec![vec![1]; candidates],
            queries: answers.iter().map(|&a| (vec![0], a)).collect(),
            context: 8,
            majority_rate,
        }
    }

    #[test]
    fn accuracy_counts_queries_whose_own_answer_scores_highest() {
        let r = ranking(&[Some(0), Some(1), Some(2), None], 3, 0.5);
        let scores = vec![
            vec![-1.0, -2.0, -3.0], // right
            vec![-1.0, -2.0, -3.0], // wrong: 0 beats 1
            vec![-5.0, -4.0, -0.5], // right
            vec![-1.0, -2.0, -3.0], // its answer is no candidate: wrong
        ];
        assert_eq!(r.accuracy(&scores), 0.5);
        // A tie goes to the candidate that sorts first.
        let tie = ranking(&[Some(1)], 2, 1.0);
        assert_eq!(tie.accuracy(&[vec![-1.0, -1.0]]), 0.0);
        assert_eq!(argmax(&[]), None);
    }
}
