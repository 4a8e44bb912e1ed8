//! The app shell: menus, side bars and status bar around the workbench of tabs, open
//! datasets, models, jobs and dialogs.
//!
//! Layout (CELLxGENE-like): datasets and colour-by on the left, legend and selection on the
//! right, the [`Workbench`] of tabs in the centre (explorers, Table, Summary, Model, Jobs), jobs
//! and notices in the status bar. Panels push [`Action`]s; this file carries them out.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui_wgpu;
use egui::{Context, Ui};

use super::actions::Action;
use super::bench::{Bench, BenchMessage, BenchPlan};
use super::coloring::ColorSource;
use super::export;
use super::jobs::{JobContext, JobHandle, Jobs, Lane, Outcome, Status};
use super::loader::{self, LoadRequest};
use super::models::ModelRegistry;
use super::panels::status::Notice;
use super::panels::{
    PanelContext, color_by, colorbar, datasets, drop_overlay, explorer, legend, selection, status,
};
use super::render::scatter::ScatterRenderer;
use super::state::PersistedState;
use super::view::{DatasetView, EmbeddingLayout};
use super::workbench::{Tab, Workbench};

/// Storage key of the dock layout (kept apart from the preferences, so neither can spoil the
/// other).
pub const LAYOUT_KEY: &str = "c2s-studio-layout";

/// Result of a native file dialog, run on its own thread.
#[derive(Debug)]
enum DialogResult {
    Open(Vec<PathBuf>),
    SavePng(PathBuf),
    SaveSvg(PathBuf),
    SaveCsv(PathBuf),
    SaveH5ad(PathBuf),
    SaveGenerated(u64, u64, PathBuf),
}

/// What a load job hands back: a view built off the UI thread, or a dataset replacing an open
/// view's (another matrix of the same file).
#[derive(Debug)]
enum Loaded {
    View(Box<DatasetView>),
    Replacement(Box<c2s_core::dataset::Dataset>),
}

/// A dataset load in progress.
#[derive(Debug)]
struct PendingLoad {
    request: LoadRequest,
    /// The view it replaces, for matrix reloads.
    replace: Option<u64>,
    job: JobHandle<Loaded>,
}

/// The C2S Studio desktop app.
pub struct StudioApp {
    /// Persisted preferences and recent files.
    pub state: PersistedState,
    /// Open datasets.
    pub views: Vec<DatasetView>,
    /// Id of the view the side bars and dataset panels show.
    pub active: Option<u64>,
    /// Background jobs.
    pub jobs: Jobs,
    /// Loaded models.
    pub models: ModelRegistry,
    /// Messages for the user (errors stay until dismissed).
    pub notices: Vec<Notice>,
    /// The tabs.
    pub workbench: Workbench,
    gpu: Option<egui_wgpu::RenderState>,
    next_view_id: u64,
    loads: Vec<PendingLoad>,
    /// File writes; each ends with a message saying what was written where.
    writes: Vec<JobHandle<String>>,
    dialogs: (Sender<DialogResult>, Receiver<DialogResult>),
    repaint_set: bool,
    bench: Option<Bench>,
}

impl std::fmt::Debug for StudioApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudioApp")
            .field("views", &self.views.len())
            .field("active", &self.active)
            .field("jobs", &self.jobs.active().count())
            .finish_non_exhaustive()
    }
}

impl StudioApp {
    /// A new app with `state` and the default layout; `gpu` enables the wgpu scatter (the CPU
    /// fallback is used without).
    pub fn new(state: PersistedState, gpu: Option<egui_wgpu::RenderState>) -> Self {
        Self::with_layout(state, Workbench::default(), gpu)
    }

    /// A new app with `state` and `workbench` (a restored layout).
    pub fn with_layout(
        state: PersistedState,
        workbench: Workbench,
        gpu: Option<egui_wgpu::RenderState>,
    ) -> Self {
        if let Some(rs) = &gpu {
            ScatterRenderer::install(rs);
        }
        Self {
            state,
            views: Vec::new(),
            active: None,
            jobs: Jobs::default(),
            models: ModelRegistry::default(),
            notices: Vec::new(),
            workbench,
            gpu,
            next_view_id: 1,
            loads: Vec::new(),
            writes: Vec::new(),
            dialogs: channel(),
            repaint_set: false,
            bench: None,
        }
    }

    /// Restores preferences and layout from eframe storage.
    pub fn restore(
        storage: Option<&dyn eframe::Storage>,
        gpu: Option<egui_wgpu::RenderState>,
    ) -> Self {
        let layout = storage.and_then(|s| s.get_string(LAYOUT_KEY));
        Self::with_layout(
            PersistedState::load(storage),
            Workbench::from_ron(layout.as_deref()),
            gpu,
        )
    }

    /// Writes preferences and layout to eframe storage.
    pub fn persist(&self, storage: &mut dyn eframe::Storage) {
        self.state.save(storage);
        storage.set_string(LAYOUT_KEY, self.workbench.to_ron());
    }

    /// Creates the app from eframe's creation context and opens `paths`.
    pub fn from_creation_context(cc: &eframe::CreationContext<'_>, paths: Vec<PathBuf>) -> Self {
        let mut app = Self::restore(cc.storage, cc.wgpu_render_state.clone());
        app.jobs.set_repaint_context(cc.egui_ctx.clone());
        app.repaint_set = true;
        if !paths.is_empty() {
            app.apply(&cc.egui_ctx, vec![Action::OpenPaths(paths)]);
        }
        app
    }

    /// Creates the app in benchmark mode: default preferences (nothing is saved), and the first
    /// size of `plan` loading; results go to `reports` (see [`super::bench`]).
    pub fn for_benchmark(
        cc: &eframe::CreationContext<'_>,
        plan: BenchPlan,
        reports: std::sync::mpsc::Sender<BenchMessage>,
    ) -> Self {
        let mut app = Self::new(PersistedState::default(), cc.wgpu_render_state.clone());
        app.jobs.set_repaint_context(cc.egui_ctx.clone());
        app.repaint_set = true;
        let bench = Bench::new(plan, reports);
        if let Some(n) = bench.current() {
            app.start_load(LoadRequest::Demo(n));
        }
        app.bench = Some(bench);
        app
    }

    /// The active view.
    pub fn active_view(&self) -> Option<&DatasetView> {
        self.views.iter().find(|v| Some(v.id) == self.active)
    }

    /// Starts loading `request` in a job; returns the job id.
    pub fn start_load(&mut self, request: LoadRequest) -> u64 {
        self.start_load_into(request, None)
    }

    /// Starts loading `request`; the result replaces view `replace` when given. The new view
    /// (positions, spatial index, colours) is built in the job too, not on the UI thread.
    fn start_load_into(&mut self, request: LoadRequest, replace: Option<u64>) -> u64 {
        let worker_request = request.clone();
        let id = self.next_view_id;
        if replace.is_none() {
            self.next_view_id += 1;
        }
        let job = self
            .jobs
            .spawn(request.title(), Lane::Cpu, move |cx: &JobContext<()>| {
                let dataset = loader::load(&worker_request, cx)?;
                if replace.is_some() {
                    return Ok(Loaded::Replacement(Box::new(dataset)));
                }
                cx.set(1.0, "preparing the view");
                let title = worker_request.dataset_title();
                Ok(Loaded::View(Box::new(DatasetView::new(id, title, dataset))))
            });
        let job_id = job.id();
        self.loads.push(PendingLoad {
            request,
            replace,
            job,
        });
        job_id
    }

    /// Opens `dataset` as a new, active view (tests build datasets directly).
    #[cfg(test)]
    pub fn add_dataset(&mut self, title: String, dataset: c2s_core::dataset::Dataset) -> u64 {
        let id = self.next_view_id;
        self.next_view_id += 1;
        self.add_view(DatasetView::new(id, title, dataset));
        id
    }

    /// Adds a built view, shows its explorer tab and makes it active.
    fn add_view(&mut self, view: DatasetView) {
        let id = view.id;
        self.views.push(view);
        self.workbench.open_view(id);
        self.active = Some(id);
    }

    /// Takes the results of finished jobs: loads, view jobs, models, panels, writes, and the
    /// notices for jobs that failed or were cancelled. Returns what the panels asked for while
    /// taking their results (e.g. colouring by a column a job just wrote).
    pub fn poll_jobs(&mut self) -> Vec<Action> {
        let mut k = 0;
        while k < self.loads.len() {
            let Some(result) = self.loads[k].job.poll().result else {
                k += 1;
                continue;
            };
            let load = self.loads.remove(k);
            let Ok(loaded) = result else { continue };
            if let LoadRequest::File(path, _) = &load.request {
                self.state.add_recent(path);
            }
            match loaded {
                Loaded::View(view) => self.add_view(*view),
                Loaded::Replacement(dataset) => {
                    if let Some(view) = self.views.iter_mut().find(|v| Some(v.id) == load.replace) {
                        view.replace_dataset(*dataset);
                    }
                }
            }
        }
        for view in &mut self.views {
            view.poll_jobs();
        }
        self.models.poll();
        let mut actions = Vec::new();
        let mut cx = PanelContext {
            views: &mut self.views,
            active: self.active,
            jobs: &mut self.jobs,
            models: &mut self.models,
            prefs: &mut self.state,
            actions: &mut actions,
        };
        self.workbench.update_panels(&mut cx);
        let notices = &mut self.notices;
        self.writes.retain_mut(|job| match job.poll().result {
            Some(Ok(message)) => {
                notices.push(Notice::info(message));
                false
            }
            Some(Err(_)) => false,
            None => true,
        });
        for job in self.jobs.take_ended() {
            let Status::Ended(outcome, _) = job.status() else {
                continue;
            };
            if job.is_abandoned() {
                continue;
            }
            match outcome {
                Outcome::Finished => {}
                Outcome::FinishedDespiteCancel => self.notices.push(Notice::info(format!(
                    "{}: finished before the cancel reached it; its result was kept",
                    job.title
                ))),
                Outcome::Cancelled => self
                    .notices
                    .push(Notice::info(format!("{}: cancelled", job.title))),
                Outcome::Failed(message) => {
                    let text = format!("{} failed: {message}", job.title);
                    if let Some(bench) = &mut self.bench {
                        bench.fail(text.clone());
                    }
                    self.notices.push(Notice::error(text));
                }
            }
        }
        actions
    }

    fn poll_dialogs(&mut self, ctx: &Context) {
        let results: Vec<DialogResult> = self.dialogs.1.try_iter().collect();
        for result in results {
            match result {
                DialogResult::Open(paths) => self.apply(ctx, vec![Action::OpenPaths(paths)]),
                DialogResult::SavePng(path) => {
                    let rect = self
                        .active_view()
                        .and_then(|v| v.panels.explorer.canvas_rect);
                    if let Some(rect) = rect {
                        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                            egui::UserData::new((path, rect)),
                        ));
                    }
                }
                DialogResult::SaveSvg(path) => self.export_svg(path),
                DialogResult::SaveCsv(path) => self.export_csv(path),
                DialogResult::SaveH5ad(path) => self.export_h5ad(path),
                DialogResult::SaveGenerated(view, set, path) => {
                    self.export_generated(view, set, path)
                }
            }
        }
    }

    /// Saves screenshots requested for PNG export (cropped to the scatter).
    fn handle_screenshots(&mut self, ctx: &Context) {
        let shots: Vec<(std::sync::Arc<egui::ColorImage>, (PathBuf, egui::Rect))> =
            ctx.input(|i| {
                i.raw
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        egui::Event::Screenshot {
                            user_data, image, ..
                        } => user_data
                            .data
                            .as_ref()
                            .and_then(|d| d.downcast_ref::<(PathBuf, egui::Rect)>())
                            .map(|t| (image.clone(), t.clone())),
                        _ => None,
                    })
                    .collect()
            });
        let ppp = ctx.pixels_per_point();
        for (image, (path, rect)) in shots {
            self.write(&path.clone(), move |_| {
                let cropped = image.region(&rect, Some(ppp));
                export::write_png(&cropped, &path)?;
                Ok(format!("view saved to {}", path.display()))
            });
        }
    }

    fn export_svg(&mut self, path: PathBuf) {
        let Some(view) = self.active_view() else {
            return;
        };
        let Some(rect) = view.panels.explorer.canvas_rect else {
            return;
        };
        let (Some(camera), data) = (view.camera, view.points.clone()) else {
            return;
        };
        let n = view.n_cells();
        let radius = explorer::default_diameter(n, rect.size()) * self.state.point_scale / 2.0;
        let opacity = self.state.opacity;
        self.write(&path.clone(), move |cx| {
            export::write_svg(&data, &camera, rect, radius, opacity, &path, cx)?;
            Ok(format!("view saved to {}", path.display()))
        });
    }

    /// Writes the selected cells' ids and obs rows as CSV (in a job).
    pub fn export_csv(&mut self, path: PathBuf) {
        let Some(view) = self.active_view() else {
            return;
        };
        let dataset = view.dataset.clone();
        let cells = view.selection.indices();
        self.write(&path.clone(), move |cx| {
            export::write_selection_csv(&dataset, &cells, &path, cx)?;
            Ok(format!("{} cells saved to {}", cells.len(), path.display()))
        });
    }

    /// Writes the session's annotations into a copy of the active dataset's file.
    pub fn export_h5ad(&mut self, output: PathBuf) {
        let Some(view) = self.active_view() else {
            return;
        };
        let Some(input) = view.dataset.source.clone() else {
            self.notices.push(Notice::error(
                "this dataset has no source file to copy (the demo); export the selection as CSV instead",
            ));
            return;
        };
        let d = &view.dataset;
        let additions = c2s_core::io::h5ad::Additions {
            obs: view
                .added_obs
                .iter()
                .filter_map(|n| d.obs_column(n).cloned())
                .collect(),
            obsm: view
                .added_obsm
                .iter()
                .filter_map(|n| d.embedding(n).cloned())
                .collect(),
            uns: view.added_uns.clone(),
        };
        let what = format!(
            "{} obs column(s), {} embedding(s), {} model answer(s)",
            additions.obs.len(),
            additions.obsm.len(),
            additions.uns.len()
        );
        self.write(&output.clone(), move |cx| {
            cx.set(0.0, "copying and annotating");
            c2s_core::io::h5ad::write_annotated_h5ad(&input, &output, &additions)?;
            Ok(format!("{what} saved to {}", output.display()))
        });
    }

    /// Writes generated set `set` of view `view` to a new `.h5ad` at `output`, in a CPU job.
    pub fn export_generated(&mut self, view: u64, set: u64, output: PathBuf) {
        let Some(view) = self.views.iter().find(|v| v.id == view) else {
            return;
        };
        let Some(set) = view.generated.iter().find(|s| s.id == set).cloned() else {
            return;
        };
        let genes = view.dataset.var_names.clone();
        self.write(&output.clone(), move |cx| {
            cx.set(0.0, "writing the generated cells");
            set.write_h5ad(&genes, &output)?;
            Ok(format!(
                "{} generated cells saved to {}",
                set.cells.len(),
                output.display()
            ))
        });
    }

    /// Writes a file in a CPU job; its message becomes a notice when it is done.
    fn write(
        &mut self,
        path: &std::path::Path,
        work: impl FnOnce(&JobContext<()>) -> Result<String, super::jobs::JobError> + Send + 'static,
    ) {
        let job = self.jobs.spawn(
            format!("Saving {}", loader::display_name(path)),
            Lane::Cpu,
            work,
        );
        self.writes.push(job);
    }

    /// Closes view `id`: its tab goes, and its jobs (and any reload of it) are cancelled.
    fn close_view(&mut self, id: u64) {
        self.views.retain(|v| v.id != id);
        self.loads.retain(|l| l.replace != Some(id));
        self.workbench.close_view(id);
        if self.active == Some(id) {
            self.active = self.views.last().map(|v| v.id);
            if let Some(next) = self.active {
                self.workbench.focus(&Tab::Explorer(next));
            }
        }
        if let Some(rs) = &self.gpu {
            let keep: Vec<u64> = self.views.iter().map(|v| v.id).collect();
            ScatterRenderer::retain_views(rs, &keep);
        }
    }

    /// Runs a native dialog on its own thread (the UI keeps running).
    fn dialog(&self, make: impl FnOnce() -> Option<DialogResult> + Send + 'static) {
        let sender = self.dialogs.0.clone();
        let _ = std::thread::Builder::new()
            .name("file dialog".into())
            .spawn(move || {
                if let Some(result) = make() {
                    let _ = sender.send(result);
                }
            });
    }

    fn save_dialog(&self, name: &str, ext: &'static str, wrap: fn(PathBuf) -> DialogResult) {
        let name = name.to_string();
        self.dialog(move || {
            rfd::FileDialog::new()
                .add_filter(ext.to_uppercase(), &[ext])
                .set_file_name(name)
                .save_file()
                .map(wrap)
        });
    }

    /// Carries out panel requests.
    pub fn apply(&mut self, ctx: &Context, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        for action in actions {
            match action {
                Action::OpenDialog => self.dialog(|| {
                    rfd::FileDialog::new()
                        .add_filter("AnnData", &["h5ad"])
                        .pick_files()
                        .map(DialogResult::Open)
                }),
                Action::OpenPaths(paths) => {
                    for path in paths {
                        self.start_load(LoadRequest::File(path, None));
                    }
                }
                Action::OpenDemo(n) => {
                    self.start_load(LoadRequest::Demo(n));
                }
                Action::Activate(id) => {
                    self.active = Some(id);
                    self.workbench.focus(&Tab::Explorer(id));
                }
                Action::Close(id) => self.close_view(id),
                Action::SplitRight(id) => self.workbench.split_right(id),
                Action::OpenPanel(id) => self.workbench.open_panel(id),
                Action::ResetLayout => {
                    let mut fresh = Workbench::default();
                    for view in &self.views {
                        fresh.open_view(view.id);
                    }
                    self.workbench = fresh;
                    if let Some(id) = self.active {
                        self.workbench.focus(&Tab::Explorer(id));
                    }
                }
                Action::ShowEmbedding(id, name) => {
                    if let Some(view) = self.views.iter_mut().find(|v| v.id == id) {
                        let dataset = view.dataset.clone();
                        let job = self.jobs.spawn(
                            format!("Showing {name}"),
                            Lane::Cpu,
                            move |_: &JobContext<()>| {
                                EmbeddingLayout::build(&dataset, &name).ok_or_else(|| {
                                    format!("embedding '{name}' has fewer than two columns").into()
                                })
                            },
                        );
                        // A newer choice replaces (and cancels) a layout still being built.
                        view.jobs.layout = Some(job);
                    }
                }
                Action::ExportPng => self.save_dialog("view.png", "png", DialogResult::SavePng),
                Action::ExportSvg => self.save_dialog("view.svg", "svg", DialogResult::SaveSvg),
                Action::ExportSelectionCsv => {
                    self.save_dialog("selection.csv", "csv", DialogResult::SaveCsv)
                }
                Action::ExportH5ad => {
                    self.save_dialog("annotated.h5ad", "h5ad", DialogResult::SaveH5ad)
                }
                Action::ExportGenerated(view, set) => self.dialog(move || {
                    rfd::FileDialog::new()
                        .add_filter("H5AD", &["h5ad"])
                        .set_file_name("generated.h5ad")
                        .save_file()
                        .map(|path| DialogResult::SaveGenerated(view, set, path))
                }),
                Action::ReloadMatrix(id, matrix) => {
                    let source = self
                        .views
                        .iter()
                        .find(|v| v.id == id)
                        .and_then(|v| v.dataset.source.clone());
                    if let Some(path) = source {
                        self.start_load_into(LoadRequest::File(path, Some(matrix)), Some(id));
                    }
                }
                Action::ColorBy(id, source) => {
                    if let Some(view) = self.views.iter_mut().find(|v| v.id == id) {
                        let dataset = view.dataset.clone();
                        let wanted = source.clone();
                        let job = self.jobs.spawn(
                            format!("Colouring by {}", source.label()),
                            Lane::Cpu,
                            move |_: &JobContext<()>| {
                                Ok(super::coloring::build_legend(&dataset, &wanted)?)
                            },
                        );
                        view.jobs.legend = Some((source, job));
                    }
                }
                Action::ColorByGene(id, gene) => {
                    if let Some(view) = self.views.iter_mut().find(|v| v.id == id) {
                        let dataset = view.dataset.clone();
                        let wanted = gene.clone();
                        let job = self.jobs.spawn(
                            format!("Reading {gene}"),
                            Lane::Cpu,
                            move |cx: &JobContext<()>| {
                                let j = dataset
                                    .var_names
                                    .iter()
                                    .position(|g| *g == wanted)
                                    .ok_or_else(|| {
                                        format!("gene '{wanted}' is not in the loaded matrix")
                                    })?;
                                let values = super::coloring::gene_values(&dataset, j, cx)?;
                                Ok(super::coloring::continuous(values))
                            },
                        );
                        // Latest wins: replacing the slot cancels a stale read.
                        view.jobs.legend = Some((ColorSource::Gene(gene), job));
                    }
                }
                Action::ComputeEmbedding => {
                    if let Some(view) = self
                        .active
                        .and_then(|a| self.views.iter_mut().find(|v| v.id == a))
                    {
                        let dataset = view.dataset.clone();
                        let job = self.jobs.spawn(
                            format!("Computing UMAP of {}", view.title),
                            Lane::Cpu,
                            move |cx: &JobContext<()>| super::embedding::pca_and_umap(&dataset, cx),
                        );
                        view.jobs.embedding = Some(job);
                    }
                }
            }
        }
        ctx.request_repaint();
    }

    /// Draws the whole app into `ui` (the root of the window).
    pub fn show(&mut self, ui: &mut Ui) {
        let started = std::time::Instant::now();
        self.show_frame(ui);
        self.show_bench_stream(ui.ctx());
        self.bench_frame(ui.ctx(), started.elapsed());
    }

    /// Benchmark mode, streaming phase: what the streaming job sent, drawn as a generation is
    /// in the Model tab (part of the measured UI pass).
    fn show_bench_stream(&mut self, ctx: &Context) {
        let Some(bench) = &mut self.bench else {
            return;
        };
        bench.pump_stream(&mut self.jobs);
        if bench.stream.is_none() {
            return;
        }
        egui::Window::new("Streaming (benchmark)")
            .default_size([420.0, 200.0])
            .show(ctx, |ui| {
                egui::ScrollArea::vertical()
                    .stick_to_bottom(true)
                    .show(ui, |ui| {
                        ui.label(egui::RichText::new(&bench.streamed).monospace())
                    });
            });
    }

    /// Benchmark mode: pan a little every frame and keep redrawing; once a size is measured,
    /// close its view and load the next, and close the window after the last one.
    fn bench_frame(&mut self, ctx: &Context, ui_pass: std::time::Duration) {
        let Some(bench) = &mut self.bench else {
            return;
        };
        ctx.request_repaint();
        let Some(n) = bench.current() else {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        };
        let Some(view) = self
            .views
            .iter_mut()
            .find(|v| Some(v.id) == self.active && v.n_cells() == n)
        else {
            return;
        };
        if let Some(camera) = &mut view.camera {
            camera.pan(egui::vec2(0.5, 0.0));
        }
        if view.panels.table.is_busy() || !bench.frame(ui_pass) {
            return;
        }
        let id = view.id;
        let next = bench.current();
        self.apply(ctx, vec![Action::Close(id)]);
        if let Some(n) = next {
            self.start_load(LoadRequest::Demo(n));
        }
    }

    fn show_frame(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if !self.repaint_set {
            self.jobs.set_repaint_context(ctx.clone());
            self.repaint_set = true;
        }
        let mut actions = self.poll_jobs();
        self.poll_dialogs(&ctx);
        self.handle_screenshots(&ctx);
        if self.jobs.is_busy() {
            // Keep progress bars moving even when a job reports nothing for a while.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        let dropped = drop_overlay::show(&ctx);
        if !dropped.is_empty() {
            actions.push(Action::OpenPaths(dropped));
        }

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui, &mut actions));
        if self.jobs.is_busy() || !self.notices.is_empty() {
            egui::Panel::bottom("status").show(ui, |ui| {
                if let Some(k) = status::show(ui, &self.jobs, &self.notices) {
                    self.notices.remove(k);
                }
            });
        }
        self.side_bars(ui, &mut actions);
        let gpu = self.gpu.is_some();
        let Self {
            views,
            active,
            jobs,
            models,
            state,
            workbench,
            ..
        } = self;
        egui::CentralPanel::default().show(ui, |ui| {
            let mut cx = PanelContext {
                views,
                active: *active,
                jobs,
                models,
                prefs: state,
                actions: &mut actions,
            };
            workbench.show(ui, &mut cx, gpu);
        });
        if let Some(id) = self.workbench.focused_view() {
            self.active = Some(id);
        }
        self.apply(&ctx, actions);
    }

    /// The side bars around the workbench: datasets and colour-by on the left; legend, colour
    /// bar and selection on the right. Both show the active view.
    fn side_bars(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        let active_id = self.active;
        let Self { views, state, .. } = self;
        if state.layout.show_left {
            egui::Panel::left("left")
                .resizable(true)
                .default_size(250.0)
                .show(ui, |ui| {
                    datasets::show(ui, views, active_id, actions);
                    ui.separator();
                    if let Some(view) = views.iter_mut().find(|v| Some(v.id) == active_id) {
                        let mut genes = std::mem::take(&mut view.panels.genes);
                        color_by::show(ui, view, &mut genes, actions);
                        view.panels.genes = genes;
                    }
                });
        }
        let Some(view) = views.iter_mut().find(|v| Some(v.id) == active_id) else {
            return;
        };
        if state.layout.show_right {
            egui::Panel::right("right")
                .resizable(true)
                .default_size(240.0)
                .show(ui, |ui| {
                    ui.heading(format!("Legend: {}", view.color_source.label()));
                    let mut legend_state = std::mem::take(&mut view.panels.legend);
                    legend::show(ui, view, &mut legend_state);
                    view.panels.legend = legend_state;
                    colorbar::show(ui, view, &mut state.continuous);
                    ui.separator();
                    let mut form = std::mem::take(&mut view.panels.selection);
                    selection::show(ui, view, &mut form, actions);
                    view.panels.selection = form;
                });
        }
    }

    fn menu_bar(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open…").clicked() {
                    actions.push(Action::OpenDialog);
                }
                if ui.button("Open demo dataset").clicked() {
                    actions.push(Action::OpenDemo(super::demo::DEFAULT_CELLS));
                }
                ui.menu_button("Open recent", |ui| {
                    if self.state.recent_files.is_empty() {
                        ui.weak("no recent files");
                    }
                    for path in &self.state.recent_files {
                        if ui.button(path.display().to_string()).clicked() {
                            actions.push(Action::OpenPaths(vec![path.clone()]));
                        }
                    }
                });
                ui.separator();
                let has_view = self.active.is_some();
                let has_selection = self.active_view().is_some_and(|v| !v.selection.is_empty());
                if ui
                    .add_enabled(has_view, egui::Button::new("Export view as PNG…"))
                    .clicked()
                {
                    actions.push(Action::ExportPng);
                }
                if ui
                    .add_enabled(has_view, egui::Button::new("Export view as SVG…"))
                    .clicked()
                {
                    actions.push(Action::ExportSvg);
                }
                if ui
                    .add_enabled(has_selection, egui::Button::new("Export selection as CSV…"))
                    .clicked()
                {
                    actions.push(Action::ExportSelectionCsv);
                }
                let can_annotate = self.active_view().is_some_and(|v| {
                    v.dataset.source.is_some()
                        && !(v.added_obs.is_empty()
                            && v.added_obsm.is_empty()
                            && v.added_uns.is_empty())
                });
                if ui
                    .add_enabled(
                        can_annotate,
                        egui::Button::new("Export annotations to new .h5ad…"),
                    )
                    .on_disabled_hover_text(
                        "Save a selection as a label (or compute an embedding) in a dataset opened from a file first",
                    )
                    .clicked()
                {
                    actions.push(Action::ExportH5ad);
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                let l = &mut self.state.layout;
                ui.checkbox(&mut l.show_left, "Datasets & colour-by bar");
                ui.checkbox(&mut l.show_right, "Legend & selection bar");
                ui.separator();
                for (id, title) in self.workbench.panel_titles() {
                    if ui.button(title).clicked() {
                        actions.push(Action::OpenPanel(id));
                    }
                }
                ui.separator();
                if ui.button("Reset layout").clicked() {
                    actions.push(Action::ResetLayout);
                }
            });
            if let Some(view) = self.active_view() {
                ui.separator();
                ui.weak(format!(
                    "{} — {} cells × {} genes",
                    view.title,
                    view.n_cells(),
                    view.dataset.var_names.len()
                ));
            }
        });
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A benchmark runs with default preferences and leaves the saved ones alone.
        if self.bench.is_none() {
            self.persist(storage);
        }
    }
}
