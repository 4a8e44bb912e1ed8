//! Cells a model made for an open dataset — generated from a cell type, or predicted under a
//! perturbation — kept with the view: their prompts, sentences, expression on C2S's scale and
//! positions on each of the dataset's embeddings, where the explorer draws them over the real
//! cells with their own marker colour.
//!
//! The worker side ([`run_generation`], [`place_on_embeddings`]) is shared by the Generate and
//! Perturb panels' jobs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use c2s_core::dataset::{ColumnData, Dataset, Embedding, ObsColumn};
use c2s_core::embed::place::{Neighbourhood, PlaceOptions};
use c2s_core::embed::{COMPUTED_UMAP, LayoutOptions};
use c2s_core::engine::{Engine, GenerateOptions};
use c2s_core::io::h5ad::{
    Additions, CreateOptions, Storage, ValueType, write_annotated_h5ad, write_dataset_h5ad,
};
use c2s_core::matrix::CsrMatrix;
use c2s_core::tasks::generate::{GeneratedCell, expression, generate_cells, generated_dataset};
use c2s_core::tasks::postprocess::{GeneVocab, PostProcess};
use c2s_core::tasks::real_cells::RealCells;
use egui::Color32;

use super::jobs::{JobContext, JobError};
use super::panels::embed_cells::MODEL_UMAP;

/// Marker colours of successive sets (distinct from the categorical palettes' first colours).
const COLORS: [Color32; 6] = [
    Color32::from_rgb(255, 127, 0),
    Color32::from_rgb(230, 0, 126),
    Color32::from_rgb(0, 200, 200),
    Color32::from_rgb(120, 60, 220),
    Color32::from_rgb(90, 200, 30),
    Color32::from_rgb(240, 200, 0),
];

/// A new set id, unique within the app.
pub fn next_set_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A set of model-made cells of one view.
#[derive(Debug, Clone)]
pub struct GeneratedSet {
    /// Unique within the app.
    pub id: u64,
    /// What was asked, e.g. "B cell × 20".
    pub title: String,
    /// Name of the per-cell label ("cell_type" or "perturbation").
    pub label_name: &'static str,
    /// Per cell: its cell type or perturbation.
    pub labels: Vec<String>,
    /// Per cell: the real control cell it was predicted from (perturbations only).
    pub controls: Vec<String>,
    /// Per cell: the prompt.
    pub prompts: Vec<String>,
    /// The cells done (all, or those before a cancel).
    pub cells: Vec<GeneratedCell>,
    /// Their expression over the dataset's genes, on C2S's scale.
    pub expression: CsrMatrix,
    /// Positions per `obsm` embedding (first two components).
    pub positions: BTreeMap<String, Vec<[f32; 2]>>,
    /// Why the cells could not be placed, if they could not.
    pub placement_error: Option<String>,
    /// Model, template and sampling, for the record.
    pub provenance: serde_json::Value,
    /// Whether the run was cancelled before the end.
    pub cancelled: bool,
    /// Drawn on the explorer.
    pub visible: bool,
}

impl GeneratedSet {
    /// The marker colour.
    pub fn color(&self) -> Color32 {
        COLORS[(self.id as usize) % COLORS.len()]
    }

    /// The cells as a dataset over `genes` (for an `.h5ad`): the label column, the control
    /// cell for perturbations, the sentences and raw outputs, and positions in `obsm`.
    pub fn dataset(&self, genes: &[String]) -> Dataset {
        let n = self.cells.len();
        let mut obs = vec![ObsColumn {
            name: self.label_name.into(),
            data: ColumnData::Text(self.labels[..n].to_vec()),
        }];
        if !self.controls.is_empty() {
            obs.push(ObsColumn {
                name: "control_cell".into(),
                data: ColumnData::Text(self.controls[..n].to_vec()),
            });
        }
        let mut d = generated_dataset(
            "generated",
            genes,
            &self.cells,
            obs,
            self.expression.clone(),
        );
        d.obsm = self
            .positions
            .iter()
            .map(|(name, p)| Embedding {
                name: name.clone(),
                n_cols: 2,
                data: p.iter().flatten().copied().collect(),
            })
            .collect();
        d
    }

    /// Writes the cells over `genes` to a new `.h5ad` at `path` (atomically), with the
    /// provenance in `uns['c2s_generation']`.
    pub fn write_h5ad(&self, genes: &[String], path: &Path) -> Result<(), JobError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let staging = tempfile::Builder::new()
            .prefix(".c2s-generated-")
            .suffix(".h5ad")
            .tempfile_in(dir.unwrap_or(Path::new(".")))
            .map_err(|e| {
                JobError::Failed(format!("cannot write beside {}: {e}", path.display()))
            })?;
        let options = CreateOptions {
            x: Some((Storage::Csr, ValueType::F32)),
            ..Default::default()
        };
        write_dataset_h5ad(staging.path(), &self.dataset(genes), &options)?;
        let additions = Additions {
            uns: vec![("c2s_generation".into(), self.provenance.clone())],
            ..Default::default()
        };
        write_annotated_h5ad(staging.path(), path, &additions)?;
        Ok(())
    }

    /// Sets the positions on the embeddings (see [`place_on_embeddings`]), or the reason there
    /// are none: the cells are kept either way. A cell that names no gene of the dataset has no
    /// expression to place it by: its position is NaN (not drawn) and the set says how many.
    pub fn place(&mut self, dataset: &Dataset, real: &RealCells, progress: &c2s_core::Progress) {
        let m = &self.expression;
        let rows: Vec<usize> = (0..m.n_rows)
            .filter(|&i| m.indptr[i + 1] > m.indptr[i])
            .collect();
        let empty = m.n_rows - rows.len();
        if empty > 0 {
            self.placement_error = Some(format!(
                "{empty} cell(s) name no gene of the dataset and are not placed"
            ));
        }
        match place_on_embeddings(dataset, real, &m.select_rows(&rows), progress) {
            Ok(placed) => {
                self.positions = placed
                    .into_iter()
                    .map(|(name, points)| {
                        let mut all = vec![[f32::NAN; 2]; m.n_rows];
                        for (&r, p) in rows.iter().zip(points) {
                            all[r] = p;
                        }
                        (name, all)
                    })
                    .collect();
            }
            Err(e) => self.placement_error = Some(format!("not placed on the plot: {e}")),
        }
    }

    /// Mean unknown words per cell (words of the output that are not genes of the dataset).
    pub fn unknown_per_cell(&self) -> f64 {
        let total: usize = self.cells.iter().map(|c| c.genes.unknown).sum();
        total as f64 / self.cells.len().max(1) as f64
    }
}

/// What a generation job asks the model.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// One prompt per cell.
    pub prompts: Vec<String>,
    /// Generation settings (batch `k` samples with seed `seed + k`).
    pub options: GenerateOptions,
    /// Prompts per batch.
    pub batch: usize,
    /// Post-processing of the outputs.
    pub post: PostProcess,
}

/// Generates the cells (reporting cells/s, stopping at a cancel with the finished batches) and
/// turns them into expression through `real`'s fit. Returns the cells, their expression and
/// whether the run was cancelled.
pub fn run_generation<P>(
    job: &JobContext<P>,
    engine: &Engine,
    genes: &[String],
    real: &RealCells,
    request: &GenerationRequest,
) -> Result<(Vec<GeneratedCell>, CsrMatrix, bool), JobError> {
    let total = request.prompts.len();
    let vocab = GeneVocab::new(genes);
    let started = Instant::now();
    let out = generate_cells(
        engine,
        &request.prompts,
        &request.options,
        request.batch,
        (&vocab, request.post),
        job.cancel_flag(),
        &mut |done| {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            job.set(
                0.1 + 0.8 * done as f32 / total.max(1) as f32,
                format!("{done} of {total} cells, {rate:.2} cells/s"),
            );
        },
    )
    .map_err(|e| JobError::Failed(e.to_string()))?;
    let x = expression(&out.cells, genes, &real.fit);
    Ok((out.cells, x, out.cancelled))
}

/// Positions of the rows of `new` on every 2-D (or wider) embedding of `dataset` whose values
/// are finite (a PCA of the real cells and their nearest real cells, found once, then
/// umap-learn's `transform` on each embedding). UMAPs computed here were laid out with
/// `min_dist` 0.1, stored ones are taken to be scanpy's (0.5).
pub fn place_on_embeddings(
    dataset: &Dataset,
    real: &RealCells,
    new: &CsrMatrix,
    progress: &c2s_core::Progress,
) -> c2s_core::Result<BTreeMap<String, Vec<[f32; 2]>>> {
    let mut out = BTreeMap::new();
    let n = dataset.n_cells();
    let targets: Vec<Embedding> = dataset
        .obsm
        .iter()
        .filter(|e| e.n_cols >= 2)
        .map(|e| Embedding {
            name: e.name.clone(),
            n_cols: 2,
            data: e
                .data
                .chunks_exact(e.n_cols)
                .flat_map(|r| [r[0], r[1]])
                .collect(),
        })
        .filter(|t| t.data.len() == 2 * n && t.data.iter().all(|v| v.is_finite()))
        .collect();
    if new.n_rows == 0 || targets.is_empty() {
        return Ok(targets.into_iter().map(|t| (t.name, Vec::new())).collect());
    }
    let options = PlaceOptions::default();
    let hood = Neighbourhood::new(&real.expression, Some(real.kind), new, &options, progress)?;
    for target in targets {
        let ours = target.name == COMPUTED_UMAP || target.name == MODEL_UMAP;
        let options = PlaceOptions {
            layout: LayoutOptions {
                min_dist: if ours { 0.1 } else { 0.5 },
                parallel: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let placed = hood.place(&target, &options, progress)?;
        out.insert(
            target.name,
            placed.chunks_exact(2).map(|p| [p[0], p[1]]).collect(),
        );
    }
    Ok(out)
}
