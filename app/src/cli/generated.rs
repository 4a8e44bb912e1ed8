//! What `generate-cells` and `perturb` share: running the generation with progress on stderr,
//! and writing the new cells as an `.h5ad`.

use c2s_core::dataset::ObsColumn;
use c2s_core::engine::{Engine, GenerateOptions};
use c2s_core::io::h5ad::{CreateOptions, Storage, ValueType, write_dataset_h5ad};
use c2s_core::matrix::CsrMatrix;
use c2s_core::tasks::generate::{GeneratedCells, generate_cells, generated_dataset};
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

/// Writes the cells as an `.h5ad` (see [`generated_dataset`]).
pub fn write_generated(
    path: &Path,
    prefix: &str,
    genes: &[String],
    generated: &GeneratedCells,
    obs: Vec<ObsColumn>,
    expression: CsrMatrix,
) -> Result<(), String> {
    let dataset = generated_dataset(prefix, genes, &generated.cells, obs, expression);
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
