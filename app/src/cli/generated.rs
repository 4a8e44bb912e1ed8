//! What `generate-cells` and `perturb` share: running the generation with progress on stderr,
//! and writing the new cells as an `.h5ad`.

use c2s_core::dataset::{ColumnData, Dataset, ObsColumn};
use c2s_core::engine::{Engine, GenerateOptions};
use c2s_core::io::h5ad::{CreateOptions, Storage, ValueType, write_dataset_h5ad};
use c2s_core::matrix::CsrMatrix;
use c2s_core::tasks::generate::{GeneratedCells, generate_cells};
use c2s_core::tasks::postprocess::{GeneVocab, PostProcess};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Generates one cell per prompt, printing `{verb} done/total cells (rate)` after each batch.
pub fn generate_with_progress(
    engine: &Engine,
    prompts: &[String],
    options: &GenerateOptions,
    batch: usize,
    post: (&GeneVocab, PostProcess),
    verb: &str,
) -> Result<GeneratedCells, String> {
    options.sampling.validate()?;
    let started = Instant::now();
    let total = prompts.len();
    generate_cells(
        engine,
        prompts,
        options,
        batch,
        post,
        &AtomicBool::new(false),
        &mut |done| {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!("{verb} {done}/{total} cells ({rate:.2} cells/s)");
        },
    )
    .map_err(|e| e.to_string())
}

/// Writes the cells as an `.h5ad`: ids `{prefix}_{i}`, the given obs columns followed by
/// `c2s_cell_sentence` (the genes), `c2s_generated_text` (the model's text) and
/// `c2s_unknown_words`, and `X` = `expression` over `genes`.
pub fn write_generated(
    path: &Path,
    prefix: &str,
    genes: &[String],
    generated: &GeneratedCells,
    mut obs: Vec<ObsColumn>,
    expression: CsrMatrix,
) -> Result<(), String> {
    let cells = &generated.cells;
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
    let dataset = Dataset {
        obs_names: (0..cells.len()).map(|i| format!("{prefix}_{i}")).collect(),
        var_names: genes.to_vec(),
        obs,
        expression,
        ..Default::default()
    };
    write_dataset_h5ad(
        path,
        &dataset,
        &CreateOptions {
            x: Some((Storage::Csr, ValueType::F32)),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())
}
