//! Cell-type annotation with a C2S model, batched, in two modes:
//!
//! - [`AnnotateMode::Generate`]: the model writes the answer (greedy by default); the label is
//!   the answer without its final ".", its score the probability of the generated tokens.
//! - [`AnnotateMode::Rank`]: every candidate label is scored as the template's response
//!   (`"{cell_type}."`, tokenized on its own and appended to the prompt's tokens, as the
//!   package builds training examples) by the sum of its tokens' log-probabilities; the prompt
//!   runs once per cell and its cache is shared by all candidates. The best label wins, with
//!   its probability normalised over the candidates.
//!
//! Work goes in batches; after each one the caller sees the new results, and a raised cancel
//! flag stops the run with everything finished so far kept.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::{Engine, EngineError, GenerateOptions, SamplingParams, StopReason};

use super::template::fill;

/// How labels are found.
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotateMode {
    /// Free generation.
    Generate {
        /// Upper bound on the answer's tokens.
        max_new_tokens: usize,
        /// Sampling (greedy when the temperature is 0).
        sampling: SamplingParams,
    },
    /// Rank these candidate labels (distinct, non-empty).
    Rank {
        /// The candidates.
        labels: Vec<String>,
    },
}

impl AnnotateMode {
    /// Greedy generation of up to 32 tokens.
    pub fn greedy() -> Self {
        Self::Generate {
            max_new_tokens: 32,
            sampling: SamplingParams::default(),
        }
    }
}

/// One cell's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CellAnnotation {
    /// The model's raw output (generation) or the winning candidate's response text (ranking).
    pub output: String,
    /// The label.
    pub label: String,
    /// Generation: the probability of the generated tokens; ranking: the winner's probability
    /// normalised over the candidates.
    pub score: f64,
    /// Ranking: each candidate's summed log-probability, in the order of the labels.
    pub loglik: Vec<f64>,
    /// Ranking: the best three (label, normalised probability), best first.
    pub top: Vec<(String, f64)>,
}

/// The result of a run: one annotation per prompt done, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    /// Annotations of the first `cells.len()` prompts.
    pub cells: Vec<CellAnnotation>,
    /// Whether the run stopped early on a cancel.
    pub cancelled: bool,
}

/// Checks candidate labels: at least one, none empty, none repeated.
pub fn check_labels(labels: &[String]) -> Result<(), String> {
    if labels.is_empty() {
        return Err(
            "no candidate labels: give a list, or an obs column whose values to rank".into(),
        );
    }
    let mut seen = HashSet::new();
    for l in labels {
        if l.trim().is_empty() {
            return Err("a candidate label is empty".into());
        }
        if !seen.insert(l.as_str()) {
            return Err(format!(
                "the candidate label '{l}' is listed twice; list each once"
            ));
        }
    }
    Ok(())
}

/// The label in a generated answer: trimmed, without its final ".".
pub fn label_of(answer: &str) -> String {
    let t = answer.trim();
    t.strip_suffix('.').unwrap_or(t).trim_end().to_string()
}

/// What to annotate and how.
#[derive(Debug, Clone, Copy)]
pub struct AnnotateRequest<'a> {
    /// One model input per cell.
    pub prompts: &'a [String],
    /// The task template's response, with `{key}` where the label goes (ranking mode).
    pub response: &'a str,
    /// The response's label placeholder, e.g. `cell_type`.
    pub key: &'a str,
    /// Generation or ranking.
    pub mode: &'a AnnotateMode,
    /// Prompts per batch.
    pub batch: usize,
    /// Genes per cell sentence in the prompts (to say how many fit when a prompt is too long).
    pub genes_per_prompt: usize,
}

/// Annotates the cells of `request`, a batch at a time; `on_batch(done, new)` sees each
/// finished batch.
pub fn annotate(
    engine: &Engine,
    request: &AnnotateRequest<'_>,
    cancel: &AtomicBool,
    on_batch: &mut dyn FnMut(usize, &[CellAnnotation]),
) -> Result<Annotations, EngineError> {
    let AnnotateRequest {
        prompts,
        response,
        key,
        mode,
        batch,
        genes_per_prompt,
    } = *request;
    let input = |message: String| EngineError::Input { message };
    let batch = batch.max(1);
    let plan = match mode {
        AnnotateMode::Rank { labels } => {
            check_labels(labels).map_err(input)?;
            let mut candidates = Vec::with_capacity(labels.len());
            for l in labels {
                let text = fill(response, &BTreeMap::from([(key, l.as_str())]))
                    .map_err(|e| input(e.to_string()))?;
                candidates.push((text.clone(), engine.tokenizer().encode_plain(&text)?));
            }
            Plan::Rank { labels, candidates }
        }
        AnnotateMode::Generate {
            max_new_tokens,
            sampling,
        } => Plan::Generate(GenerateOptions {
            max_new_tokens: *max_new_tokens,
            sampling: *sampling,
            ..Default::default()
        }),
    };
    let mut out = Annotations::default();
    for chunk in prompts.chunks(batch) {
        if cancel.load(Ordering::Relaxed) {
            out.cancelled = true;
            break;
        }
        let ids = chunk
            .iter()
            .map(|p| engine.tokenizer().encode(p))
            .collect::<Result<Vec<_>, _>>()?;
        let room = match &plan {
            Plan::Rank { candidates, .. } => {
                candidates.iter().map(|(_, c)| c.len()).max().unwrap_or(1)
            }
            Plan::Generate(_) => 1,
        };
        check_context(&ids, room, engine.info().context, genes_per_prompt)?;
        let new: Vec<CellAnnotation> = match &plan {
            Plan::Rank { labels, candidates } => {
                let conts: Vec<Vec<Vec<u32>>> = ids
                    .iter()
                    .map(|_| candidates.iter().map(|(_, c)| c.clone()).collect())
                    .collect();
                engine
                    .score_continuations(&ids, &conts)?
                    .into_iter()
                    .map(|ll| ranked(labels, candidates, ll))
                    .collect()
            }
            Plan::Generate(options) => {
                let (gens, _) = engine.generate_ids(&ids, options, &mut |_| {}, Some(cancel))?;
                if gens.iter().any(|g| g.stop_reason == StopReason::Cancelled) {
                    out.cancelled = true;
                    break;
                }
                gens.into_iter()
                    .map(|g| CellAnnotation {
                        label: label_of(&g.text),
                        score: g.logprob.exp(),
                        output: g.text,
                        loglik: Vec::new(),
                        top: Vec::new(),
                    })
                    .collect()
            }
        };
        out.cells.extend(new);
        on_batch(out.cells.len(), &out.cells[out.cells.len() - chunk.len()..]);
    }
    Ok(out)
}

/// Refuses prompts that leave fewer than `room` tokens of the context, saying about how many
/// genes per cell would fit.
fn check_context(
    prompts: &[Vec<u32>],
    room: usize,
    context: usize,
    genes: usize,
) -> Result<(), EngineError> {
    let Some(longest) = prompts.iter().map(Vec::len).max() else {
        return Ok(());
    };
    if longest + room <= context {
        return Ok(());
    }
    let usable = context.saturating_sub(room);
    let fit = genes * usable / longest.max(1);
    Err(EngineError::Input {
        message: format!(
            "a prompt has {longest} tokens, and with its answer ({room} tokens) it exceeds the \
             model's context of {context} tokens; about {fit} genes per cell fit (now {genes}): \
             use fewer genes (--top-k-genes {fit}) or a shorter template"
        ),
    })
}

/// What each batch runs.
enum Plan<'a> {
    /// Score these candidates (response text, its tokens) after each prompt.
    Rank {
        labels: &'a [String],
        candidates: Vec<(String, Vec<u32>)>,
    },
    /// Generate with these options.
    Generate(GenerateOptions),
}

/// The winner, its normalised probability and the top three from the candidates' scores.
fn ranked(labels: &[String], cands: &[(String, Vec<u32>)], loglik: Vec<f64>) -> CellAnnotation {
    let max = loglik.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = loglik.iter().map(|&l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| loglik[b].total_cmp(&loglik[a]).then(a.cmp(&b)));
    let prob = |i: usize| weights[i] / total;
    let best = order[0];
    CellAnnotation {
        output: cands[best].0.clone(),
        label: labels[best].clone(),
        score: prob(best),
        top: order
            .iter()
            .take(3)
            .map(|&i| (labels[i].clone(), prob(i)))
            .collect(),
        loglik,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_labels(&l(&["B cell", "T cell"])).is_ok());
        assert!(check_labels(&[]).is_err());
        assert!(check_labels(&l(&["B", " "])).is_err());
        let err = check_labels(&l(&["B", "T", "B"])).unwrap_err();
        assert!(err.contains("'B' is listed twice"), "{err}");
    }

    #[test]
    fn generated_answers_lose_their_final_period() {
        assert_eq!(label_of(" CD14+ Monocyte.\n"), "CD14+ Monocyte");
        assert_eq!(label_of("B cell"), "B cell");
        assert_eq!(label_of("Dendritic cell. "), "Dendritic cell");
    }

    #[test]
    fn ranking_normalises_over_candidates() {
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let cands: Vec<(String, Vec<u32>)> =
            labels.iter().map(|l| (format!("{l}."), vec![1])).collect();
        let r = ranked(&labels, &cands, vec![-3.0, -1.0, -1.0 - 2f64.ln()]);
        assert_eq!(r.label, "b");
        assert_eq!(r.output, "b.");
        let total = (-3f64).exp() + (-1f64).exp() + (-1f64).exp() / 2.0;
        assert!((r.score - (-1f64).exp() / total).abs() < 1e-12);
        assert_eq!(
            r.top.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
    }
}
