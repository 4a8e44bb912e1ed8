//! One open dataset and everything the explorer shows about it: the embedding, the colouring,
//! the selection and the camera. Panels read and change a [`DatasetView`]; they never talk to
//! each other directly.

use std::sync::{Arc, OnceLock};

use c2s_core::dataset::{ColumnData, Dataset, Embedding, ObsColumn};
use c2s_core::sentence::CellSentencer;

use super::coloring::{self, ColorSource, ContinuousStyle, Legend};
use super::generated::GeneratedSet;
use super::jobs::JobHandle;
use super::panels::explorer::ExplorerState;
use super::panels::gene_search::GeneSearchState;
use super::panels::legend::LegendState;
use super::panels::selection::SelectionPanelState;
use super::panels::table::TableState;
use super::render::camera::Camera;
use super::render::scatter::{PointData, next_generation};
use super::selection::{GridIndex, SelectMode, Selection};

/// An open dataset with its view state.
#[derive(Debug)]
pub struct DatasetView {
    /// Unique id (also keys the GPU buffers).
    pub id: u64,
    /// Name shown in the dataset list.
    pub title: String,
    /// The data.
    pub dataset: Arc<Dataset>,
    /// Changes whenever the `obs` columns change (keys the obs table's frame).
    pub obs_generation: u64,
    /// The `obsm` key shown.
    pub embedding: Option<String>,
    /// What the GPU draws.
    pub points: PointData,
    /// Spatial index of the shown embedding.
    pub index: Option<GridIndex>,
    /// Camera; `None` until the first draw fits the data.
    pub camera: Option<Camera>,
    /// What the points are coloured by.
    pub color_source: ColorSource,
    /// The legend of that colouring.
    pub legend: Legend,
    /// Style the colours were computed with.
    colored_with: Option<ContinuousStyle>,
    /// The clipped value range of a continuous colouring.
    pub clip_range: Option<(f32, f32)>,
    /// Selected cells.
    pub selection: Selection,
    /// Cell under the pointer.
    pub hovered: Option<usize>,
    /// `obs` columns created in this session (saved selections), for export.
    pub added_obs: Vec<String>,
    /// `obsm` embeddings computed in this session, for export.
    pub added_obsm: Vec<String>,
    /// `uns` entries made in this session (model answers with their provenance), for export.
    pub added_uns: Vec<(String, serde_json::Value)>,
    /// Cells a model generated or predicted for this dataset, drawn over the real ones.
    pub generated: Vec<GeneratedSet>,
    /// Gene spellings and hashes for [`DatasetView::sentence`], made on first use.
    sentencer: OnceLock<CellSentencer>,
    /// Gene names lower-cased for the gene search, made on first use.
    gene_keys: OnceLock<Vec<String>>,
    /// Panel state that belongs to this dataset.
    pub panels: ViewPanels,
    /// Jobs working for this view; closing the view drops them, which cancels them.
    pub jobs: ViewJobs,
}

/// The state of the panels showing a view, kept per dataset: a table sort column, a legend
/// filter or a lasso in progress never carries over to another file.
#[derive(Debug, Default)]
pub struct ViewPanels {
    /// Explorer tool, lasso and canvas.
    pub explorer: ExplorerState,
    /// Legend filter and order.
    pub legend: LegendState,
    /// Gene search box.
    pub genes: GeneSearchState,
    /// "Save selection as label" form.
    pub selection: SelectionPanelState,
    /// Obs table sort, filter and rows.
    pub table: TableState,
}

/// The jobs a view owns. Each slot holds the latest request only: a new one replaces (and so
/// cancels) the stale one.
#[derive(Debug, Default)]
pub struct ViewJobs {
    /// Building the legend of a colouring (reading a gene's expression for a gene).
    pub legend: Option<(ColorSource, JobHandle<Legend>)>,
    /// Computing a PCA and UMAP.
    pub embedding: Option<JobHandle<Vec<Embedding>>>,
    /// Building the positions and spatial index of another embedding to show.
    pub layout: Option<JobHandle<EmbeddingLayout>>,
}

/// What showing an embedding needs: its first two components per cell and a spatial index for
/// lasso and hover (built in a job for large datasets).
#[derive(Debug)]
pub struct EmbeddingLayout {
    /// The `obsm` key.
    pub name: String,
    /// Positions per cell.
    pub positions: Arc<Vec<[f32; 2]>>,
    /// Grid index over them.
    pub index: GridIndex,
}

impl EmbeddingLayout {
    /// The layout of embedding `name`, if it exists with at least two components.
    pub fn build(dataset: &Dataset, name: &str) -> Option<Self> {
        let e = dataset.embedding(name)?;
        if e.n_cols < 2 {
            return None;
        }
        let positions: Vec<[f32; 2]> = e
            .data
            .chunks_exact(e.n_cols)
            .map(|row| [row[0], row[1]])
            .collect();
        let positions = Arc::new(positions);
        Some(Self {
            name: name.to_string(),
            index: GridIndex::build(positions.clone()),
            positions,
        })
    }
}

impl DatasetView {
    /// Opens `dataset`, showing its first 2-D embedding (UMAP preferred) coloured by its first
    /// categorical column.
    pub fn new(id: u64, title: String, dataset: Dataset) -> Self {
        let n = dataset.n_cells();
        let embedding = preferred_embedding(&dataset);
        let first_categorical = dataset
            .obs
            .iter()
            .find(|c| matches!(c.data, ColumnData::Categorical { .. }))
            .map(|c| ColorSource::Obs(c.name.clone()))
            .unwrap_or_default();
        let mut view = Self {
            id,
            title,
            dataset: Arc::new(dataset),
            obs_generation: next_generation(),
            embedding: None,
            points: PointData::default(),
            index: None,
            camera: None,
            color_source: ColorSource::None,
            legend: Legend::None,
            colored_with: None,
            clip_range: None,
            selection: Selection::new(n),
            hovered: None,
            added_obs: Vec::new(),
            added_obsm: Vec::new(),
            added_uns: Vec::new(),
            generated: Vec::new(),
            sentencer: OnceLock::new(),
            gene_keys: OnceLock::new(),
            panels: ViewPanels::default(),
            jobs: ViewJobs::default(),
        };
        if let Some(e) = embedding {
            view.set_embedding(&e);
        }
        let _ = view.set_color_source(first_categorical);
        view.refresh_flags();
        view
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.dataset.n_cells()
    }

    /// Shows embedding `name` (its first two components), building its layout here; the app
    /// builds it in a job instead ([`EmbeddingLayout::build`]) and hands it to
    /// [`DatasetView::apply_layout`].
    pub fn set_embedding(&mut self, name: &str) {
        if let Some(layout) = EmbeddingLayout::build(&self.dataset, name) {
            self.apply_layout(layout);
        }
    }

    /// Shows an embedding whose layout was built elsewhere.
    pub fn apply_layout(&mut self, layout: EmbeddingLayout) {
        if layout.positions.len() != self.n_cells() {
            return;
        }
        self.index = Some(layout.index);
        self.points.positions = (next_generation(), layout.positions);
        self.embedding = Some(layout.name);
        self.camera = None;
        self.hovered = None;
    }

    /// Takes the results of this view's jobs (failures are reported by the job list).
    pub fn poll_jobs(&mut self) {
        if let Some((source, job)) = &mut self.jobs.legend
            && let Some(result) = job.poll().result
        {
            let source = std::mem::take(source);
            self.jobs.legend = None;
            if let Ok(legend) = result {
                self.apply_legend(source, legend);
            }
        }
        if let Some(job) = &mut self.jobs.layout
            && let Some(result) = job.poll().result
        {
            self.jobs.layout = None;
            if let Ok(layout) = result {
                self.apply_layout(layout);
            }
        }
        if let Some(job) = &mut self.jobs.embedding
            && let Some(result) = job.poll().result
        {
            self.jobs.embedding = None;
            if let Ok(embeddings) = result {
                self.add_embeddings(embeddings);
            }
        }
    }

    /// Adds computed embeddings (replacing any of the same name) and shows the last one.
    pub fn add_embeddings(&mut self, embeddings: Vec<Embedding>) {
        let shown = embeddings.last().map(|e| e.name.clone());
        for embedding in embeddings {
            let name = embedding.name.clone();
            let obsm = &mut Arc::make_mut(&mut self.dataset).obsm;
            obsm.retain(|e| e.name != name);
            obsm.push(embedding);
            if !self.added_obsm.contains(&name) {
                self.added_obsm.push(name);
            }
        }
        if let Some(name) = shown {
            self.set_embedding(&name);
        }
    }

    /// Colours by `source`; on error the colouring is unchanged.
    pub fn set_color_source(&mut self, source: ColorSource) -> Result<(), String> {
        self.legend = coloring::build_legend(&self.dataset, &source)?;
        self.color_source = source;
        self.colored_with = None;
        self.refresh_flags();
        Ok(())
    }

    /// Colours by `source` with a legend built elsewhere (in a job).
    pub fn apply_legend(&mut self, source: ColorSource, legend: Legend) {
        self.legend = legend;
        self.color_source = source;
        self.colored_with = None;
        self.refresh_flags();
    }

    /// Recomputes point colours if `style` or the legend changed since last time.
    pub fn update_colors(&mut self, style: &ContinuousStyle) {
        if self.colored_with.as_ref() == Some(style) {
            return;
        }
        let (colors, range) = coloring::point_colors(&self.legend, self.n_cells(), style);
        self.points.colors = (next_generation(), Arc::new(colors));
        self.clip_range = range;
        self.colored_with = Some(*style);
    }

    /// Recomputes the per-point flags after the legend's hidden set or the selection changed.
    pub fn refresh_flags(&mut self) {
        let flags = coloring::point_flags(&self.legend, &self.selection, self.n_cells());
        self.points.flags = (next_generation(), Arc::new(flags));
    }

    /// Whether cell `i` is currently drawn.
    pub fn is_visible(&self, i: usize) -> bool {
        !matches!(&self.legend, Legend::Categorical(l) if l.is_hidden(i))
    }

    /// Applies a selection of `hits` (hidden cells are never selected).
    pub fn select(&mut self, hits: Vec<usize>, mode: SelectMode) {
        let visible: Vec<usize> = hits.into_iter().filter(|&i| self.is_visible(i)).collect();
        self.selection.apply(visible, mode);
        self.refresh_flags();
    }

    /// Selects every cell of `category` in the current categorical colouring.
    pub fn select_category(&mut self, category: usize, mode: SelectMode) {
        if let Legend::Categorical(l) = &self.legend {
            let hits = (0..self.n_cells())
                .filter(|&i| l.codes[i] == category as i32)
                .collect();
            self.select(hits, mode);
        }
    }

    /// Writes the selection into categorical column `column` as `label` (creating the column
    /// with "unassigned" elsewhere, or adding the category to an existing categorical column).
    pub fn save_selection_as_label(&mut self, column: &str, label: &str) -> Result<(), String> {
        let column = column.trim();
        let label = label.trim();
        if column.is_empty() || label.is_empty() {
            return Err("give the label column and the label a name".into());
        }
        if self.selection.is_empty() {
            return Err("nothing is selected".into());
        }
        let n = self.n_cells();
        let dataset = Arc::make_mut(&mut self.dataset);
        let position = dataset.obs.iter().position(|c| c.name == column);
        let col = match position {
            Some(p) => &mut dataset.obs[p],
            None => {
                dataset.obs.push(ObsColumn {
                    name: column.to_string(),
                    data: ColumnData::Categorical {
                        codes: vec![0; n],
                        categories: vec!["unassigned".into()],
                    },
                });
                dataset.obs.last_mut().expect("just pushed")
            }
        };
        let ColumnData::Categorical { codes, categories } = &mut col.data else {
            return Err(format!("'{column}' exists and is not categorical"));
        };
        let code = match categories.iter().position(|c| c == label) {
            Some(c) => c,
            None => {
                categories.push(label.to_string());
                categories.len() - 1
            }
        } as i32;
        for i in self.selection.indices() {
            codes[i] = code;
        }
        self.obs_generation = next_generation();
        if !self.added_obs.iter().any(|c| c == column) {
            self.added_obs.push(column.to_string());
        }
        // A palette from the file no longer matches the categories.
        dataset.palettes.remove(column);
        if self.color_source == ColorSource::Obs(column.to_string()) {
            self.set_color_source(self.color_source.clone())?;
        }
        Ok(())
    }

    /// Adds obs column `column` (replacing one of the same name), as a session annotation that
    /// exports with the dataset; the colours follow when the view is coloured by it.
    pub fn set_obs_column(&mut self, column: ObsColumn) -> Result<(), String> {
        if column.data.len() != self.n_cells() {
            return Err(format!(
                "column '{}' has {} values for {} cells",
                column.name,
                column.data.len(),
                self.n_cells()
            ));
        }
        let name = column.name.clone();
        let dataset = Arc::make_mut(&mut self.dataset);
        dataset.obs.retain(|c| c.name != name);
        dataset.obs.push(column);
        dataset.palettes.remove(&name);
        self.obs_generation = next_generation();
        if !self.added_obs.contains(&name) {
            self.added_obs.push(name.clone());
        }
        if self.color_source == ColorSource::Obs(name) {
            self.set_color_source(self.color_source.clone())?;
        }
        Ok(())
    }

    /// The first `n` genes of cell `i`'s cell sentence (genes by decreasing expression in the
    /// loaded matrix, ties broken as the core does), upper-cased as the C2S models read them.
    pub fn sentence(&self, i: usize, n: usize) -> String {
        let d = &self.dataset;
        if i >= d.expression.n_rows || d.var_names.len() < d.expression.n_cols {
            return String::new();
        }
        self.sentencer
            .get_or_init(|| CellSentencer::new(&d.var_names))
            .sentence(&d.expression, i, &d.obs_names[i], 0, Some(n))
    }

    /// The gene names lower-cased, in `var_names` order (for case-blind search).
    pub fn gene_keys(&self) -> &[String] {
        self.gene_keys.get_or_init(|| {
            self.dataset
                .var_names
                .iter()
                .map(|g| g.to_lowercase())
                .collect()
        })
    }

    /// Replaces the data (e.g. after loading another matrix of the same file), keeping the
    /// session's annotations, embedding, colouring, camera and selection.
    pub fn replace_dataset(&mut self, mut dataset: Dataset) {
        if dataset.n_cells() != self.n_cells() {
            *self = Self::new(self.id, self.title.clone(), dataset);
            return;
        }
        for name in &self.added_obs {
            if let Some(c) = self.dataset.obs_column(name) {
                dataset.obs.retain(|x| &x.name != name);
                dataset.obs.push(c.clone());
            }
        }
        for name in &self.added_obsm {
            if let Some(e) = self.dataset.embedding(name) {
                dataset.obsm.retain(|x| &x.name != name);
                dataset.obsm.push(e.clone());
            }
        }
        let mut fresh = Self::new(self.id, self.title.clone(), dataset);
        fresh.added_obs = std::mem::take(&mut self.added_obs);
        fresh.added_obsm = std::mem::take(&mut self.added_obsm);
        fresh.added_uns = std::mem::take(&mut self.added_uns);
        if let Some(e) = &self.embedding {
            fresh.set_embedding(e);
        }
        fresh.camera = self.camera;
        if fresh.set_color_source(self.color_source.clone()).is_err() {
            let _ = fresh.set_color_source(ColorSource::None);
        }
        fresh.selection = std::mem::take(&mut self.selection);
        // Same file, so the panels keep their state; a gene read from the old matrix is dropped.
        fresh.panels = std::mem::take(&mut self.panels);
        fresh.jobs.embedding = self.jobs.embedding.take();
        fresh.refresh_flags();
        *self = fresh;
    }

    /// A short description of cell `i`'s value in the current colouring.
    pub fn color_value_text(&self, i: usize) -> Option<String> {
        match &self.legend {
            Legend::None => None,
            Legend::Categorical(l) => Some(match usize::try_from(l.codes[i]) {
                Ok(c) => l.categories.get(c).cloned().unwrap_or_default(),
                Err(_) => "(missing)".into(),
            }),
            Legend::Continuous(l) => Some(format!("{:.3}", l.values[i])),
        }
    }
}

/// The embedding shown by default: `X_umap`, then `X_tsne`, then any 2-D+ one (e.g. `X_pca`).
pub fn preferred_embedding(dataset: &Dataset) -> Option<String> {
    let usable = |e: &&c2s_core::dataset::Embedding| e.n_cols >= 2;
    ["X_umap", "X_tsne", "X_draw_graph_fa"]
        .iter()
        .find_map(|k| dataset.obsm.iter().filter(usable).find(|e| e.name == *k))
        .or_else(|| dataset.obsm.iter().find(usable))
        .map(|e| e.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::demo;
    use crate::gui::jobs::Progress;

    fn view() -> DatasetView {
        DatasetView::new(
            1,
            "demo".into(),
            demo::generate(400, &Progress::default()).unwrap(),
        )
    }

    #[test]
    fn opens_with_umap_and_first_categorical() {
        let v = view();
        assert_eq!(v.embedding.as_deref(), Some("X_umap"));
        assert_eq!(v.color_source, ColorSource::Obs("cell_type".into()));
        assert_eq!(v.points.positions.1.len(), 400);
    }

    #[test]
    fn hidden_cells_are_not_selected_and_labels_are_saved() {
        let mut v = view();
        if let Legend::Categorical(l) = &mut v.legend {
            l.hidden[0] = true;
        }
        v.select((0..400).collect(), SelectMode::Replace);
        let hidden = (0..400).filter(|&i| !v.is_visible(i)).count();
        assert!(hidden > 0);
        assert_eq!(v.selection.count(), 400 - hidden);
        v.save_selection_as_label("annotation", "my cells").unwrap();
        let ColumnData::Categorical { codes, categories } =
            &v.dataset.obs_column("annotation").unwrap().data
        else {
            panic!()
        };
        assert_eq!(
            categories,
            &vec!["unassigned".to_string(), "my cells".to_string()]
        );
        assert_eq!(codes.iter().filter(|&&c| c == 1).count(), 400 - hidden);
        assert!(v.save_selection_as_label("cell_type", "").is_err());
        assert!(v.save_selection_as_label("n_counts", "x").is_err());
    }

    #[test]
    fn sentence_starts_with_the_most_expressed_gene() {
        let v = view();
        let sentence = v.sentence(0, 5);
        let words: Vec<&str> = sentence.split(' ').collect();
        assert_eq!(words.len(), 5);
        let (cols, vals) = v.dataset.expression.row(0);
        let max = vals.iter().copied().fold(f32::MIN, f32::max);
        let top: Vec<String> = cols
            .iter()
            .zip(vals)
            .filter(|(_, x)| **x == max)
            .map(|(c, _)| v.dataset.var_names[*c as usize].to_uppercase())
            .collect();
        assert!(top.iter().any(|g| g == words[0]), "{sentence} vs {top:?}");
    }

    #[test]
    fn replacing_the_dataset_keeps_session_annotations() {
        let mut v = view();
        v.select((0..10).collect(), SelectMode::Replace);
        v.save_selection_as_label("annotation", "x").unwrap();
        let fresh = demo::generate(400, &Progress::default()).unwrap();
        v.replace_dataset(fresh);
        assert!(v.dataset.obs_column("annotation").is_some());
        assert_eq!(v.selection.count(), 10);
        assert_eq!(v.added_obs, vec!["annotation".to_string()]);
    }
}
