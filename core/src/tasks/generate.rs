//! Generating cells from a description: the model writes a cell sentence for each prompt
//! (cell-type-conditioned generation), the sentence is post-processed into genes
//! ([`super::postprocess`]) and turned into expression through the dataset's rank → expression
//! fit ([`crate::inverse::reconstruct`]).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::dataset::{ColumnData, Dataset, ObsColumn};
use crate::engine::{Engine, EngineError, GenerateOptions, StopReason};
use crate::inverse::InverseFit;
use crate::matrix::CsrMatrix;

use super::postprocess::{GeneList, GeneVocab, PLACEHOLDER, PostProcess, post_process};

/// One generated cell.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedCell {
    /// The model's raw output.
    pub text: String,
    /// The output as genes.
    pub genes: GeneList,
}

/// The cells of a run, in prompt order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneratedCells {
    /// One per prompt done.
    pub cells: Vec<GeneratedCell>,
    /// Whether the run stopped early on a cancel.
    pub cancelled: bool,
}

/// Generates one cell per prompt, `batch` prompts at a time. Batch `k` samples with seed
/// `options.sampling.seed + k`, so a run is reproducible. `on_batch(done)` sees the progress;
/// a raised `cancel` stops with the finished batches kept.
pub fn generate_cells(
    engine: &Engine,
    prompts: &[String],
    options: &GenerateOptions,
    batch: usize,
    post: (&GeneVocab, PostProcess),
    cancel: &AtomicBool,
    on_batch: &mut dyn FnMut(usize),
) -> Result<GeneratedCells, EngineError> {
    let mut out = GeneratedCells::default();
    for (k, chunk) in prompts.chunks(batch.max(1)).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            out.cancelled = true;
            break;
        }
        let mut options = options.clone();
        options.sampling.seed = options.sampling.seed.map(|s| s.wrapping_add(k as u64));
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let (generations, _) = engine.generate(&texts, &options, &mut |_| {}, Some(cancel))?;
        if generations
            .iter()
            .any(|g| g.stop_reason == StopReason::Cancelled)
        {
            out.cancelled = true;
            break;
        }
        out.cells
            .extend(generations.into_iter().map(|g| GeneratedCell {
                genes: post_process(&g.text, post.0, post.1),
                text: g.text,
            }));
        on_batch(out.cells.len());
    }
    Ok(out)
}

/// The expression of generated cells over `genes` (the fit's matrix columns), one CSR row per
/// cell: the gene at position `p` of a cell's post-processed sentence gets `fit`'s value at
/// rank `p`, clipped at 0, as [`crate::inverse::reconstruct`] gives it (post-processed lists
/// name each gene once). The gene index is built once for all cells.
pub fn expression(cells: &[GeneratedCell], genes: &[String], fit: &InverseFit) -> CsrMatrix {
    let vocab = GeneVocab::new(genes);
    let mut m = CsrMatrix {
        n_rows: cells.len(),
        n_cols: genes.len(),
        indptr: vec![0],
        ..Default::default()
    };
    for cell in cells {
        let mut row: Vec<(u32, f32)> = cell
            .genes
            .genes
            .iter()
            .filter(|g| g.as_str() != PLACEHOLDER)
            .enumerate()
            .filter_map(|(rank, g)| {
                let v = fit.expression_at(rank) as f32;
                vocab.column(g).filter(|_| v > 0.0).map(|j| (j as u32, v))
            })
            .collect();
        row.sort_unstable_by_key(|&(j, _)| j);
        for (j, v) in row {
            m.indices.push(j);
            m.data.push(v);
        }
        m.indptr.push(m.data.len() as u64);
    }
    m
}

/// Generated cells as a dataset (for an `.h5ad`): ids `{prefix}_{i}`, the given obs columns
/// followed by `c2s_cell_sentence` (the genes), `c2s_generated_text` (the model's text) and
/// `c2s_unknown_words`, and `expression` over `genes` as the matrix.
pub fn generated_dataset(
    prefix: &str,
    genes: &[String],
    cells: &[GeneratedCell],
    mut obs: Vec<ObsColumn>,
    expression: CsrMatrix,
) -> Dataset {
    obs.extend([
        ObsColumn {
            name: "c2s_cell_sentence".into(),
            data: ColumnData::Text(cells.iter().map(|c| c.genes.sentence()).collect()),
        },
        ObsColumn {
            name: "c2s_generated_text".into(),
            data: ColumnData::Text(cells.iter().map(|c| c.text.clone()).collect()),
        },
        ObsColumn {
            name: "c2s_unknown_words".into(),
            data: ColumnData::Numeric(cells.iter().map(|c| c.genes.unknown as f64).collect()),
        },
    ]);
    Dataset {
        obs_names: (0..cells.len()).map(|i| format!("{prefix}_{i}")).collect(),
        var_names: genes.to_vec(),
        obs,
        expression,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_follows_each_genes_position() {
        let genes: Vec<String> = ["CD3E", "IL7R", "MALAT1", "B2M"].map(String::from).to_vec();
        let vocab = GeneVocab::new(&genes);
        let cell = GeneratedCell {
            text: "MALAT1 b2m FOO CD3E.".into(),
            genes: post_process("MALAT1 b2m FOO CD3E.", &vocab, PostProcess::Clean),
        };
        let fit = InverseFit {
            slope: -1.0,
            intercept: 2.0,
            r2: 1.0,
            pearson: 1.0,
            spearman: 1.0,
            log_base: None,
            n_cells: 1,
            n_points: 1,
        };
        let m = expression(&[cell], &genes, &fit);
        assert_eq!(m.n_rows, 1);
        let (cols, vals) = m.row(0);
        // MALAT1 at 0 → 2, B2M at 1 → 2 − log10 2, CD3E at 2 → 2 − log10 3; IL7R absent.
        assert_eq!(cols, [0, 2, 3]);
        let expected = [2.0 - 3f64.log10(), 2.0, 2.0 - 2f64.log10()];
        for (v, e) in vals.iter().zip(expected) {
            assert!((f64::from(*v) - e).abs() < 1e-6, "{v} vs {e}");
        }
    }
}
