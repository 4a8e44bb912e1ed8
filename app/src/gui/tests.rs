//! UI flows driven through the AccessKit tree with `egui_kittest` (no GPU needed: the scatter
//! uses its CPU fallback here). No assertion depends on timing: jobs are awaited by stepping
//! frames until they end.

use std::path::PathBuf;

use eframe::Storage as _;
use egui::{Event, Modifiers, PointerButton, Pos2, Vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

use c2s_core::dataset::{ColumnData, MatrixChoice};

use super::actions::Action;
use super::app::StudioApp;
use super::coloring::{ColorSource, FLAG_HIDDEN, Legend};
use super::jobs::{JobContext, JobError, JobHandle, Lane, Outcome, Status};
use super::selection::{SelectMode, point_in_polygon};
use super::state::PersistedState;
use super::table_model::Sort;
use super::workbench::Tab;

pub(super) fn harness() -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size(Vec2::new(1400.0, 900.0))
        .with_step_dt(1.0 / 60.0)
        .with_max_steps(64)
        .build_ui_state(
            |ui, app: &mut StudioApp| app.show(ui),
            StudioApp::new(PersistedState::default(), None),
        )
}

/// Steps frames until no job is running (bounded, so a hung job fails the test).
pub(super) fn wait_for_jobs(h: &mut Harness<'_, StudioApp>) {
    for _ in 0..200_000 {
        h.step();
        if !h.state().jobs.is_busy() {
            h.run_steps(3);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("jobs did not finish");
}

/// Steps frames until `done` holds for the app (bounded, so a state never reached fails the
/// test with `what`).
pub(super) fn step_until(
    h: &mut Harness<'_, StudioApp>,
    what: &str,
    done: impl Fn(&StudioApp) -> bool,
) {
    for _ in 0..200_000 {
        if done(h.state()) {
            h.run_steps(2);
            return;
        }
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("never reached: {what}");
}

fn open_demo(h: &mut Harness<'_, StudioApp>) {
    h.run_steps(2);
    h.get_by_label("Open demo dataset").click();
    h.run_steps(2);
    wait_for_jobs(h);
    assert_eq!(h.state().views.len(), 1, "the demo opened");
}

fn shared_pbmc() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/expression/pbmc68k_reduced.h5ad");
    let alt = PathBuf::from("/work/shared/data/expression/pbmc68k_reduced.h5ad");
    [p, alt].into_iter().find(|p| p.exists())
}

pub(super) fn drop_file(h: &mut Harness<'_, StudioApp>, path: PathBuf) {
    h.input_mut().hovered_files.push(egui::HoveredFile {
        path: Some(path.clone()),
        ..Default::default()
    });
    h.step();
    let overlay = h.output().shapes.iter().any(
        |s| matches!(&s.shape, egui::Shape::Text(t) if t.galley.text().starts_with("Drop to open")),
    );
    assert!(overlay, "the drop overlay is drawn while a file hovers");
    h.input_mut().hovered_files.clear();
    h.input_mut().dropped_files.push(egui::DroppedFile {
        path: Some(path),
        ..Default::default()
    });
    h.step();
}

#[test]
fn dropping_a_bad_file_shows_a_readable_error() {
    let mut h = harness();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.h5ad");
    std::fs::write(&bad, "this is not HDF5").unwrap();
    drop_file(&mut h, bad);
    wait_for_jobs(&mut h);
    assert!(h.state().views.is_empty());
    h.get_by_label_contains("not a readable .h5ad file");
    // The error can be dismissed.
    h.get_by_label("Dismiss").click();
    h.run_steps(2);
    assert!(h.state().notices.is_empty());
}

#[test]
fn dropping_an_h5ad_opens_it() {
    let Some(pbmc) = shared_pbmc() else {
        c2s_core::test_support::skip("the shared pbmc68k_reduced.h5ad is absent");
        return;
    };
    let mut h = harness();
    drop_file(&mut h, pbmc.clone());
    wait_for_jobs(&mut h);
    let notices: Vec<String> = h.state().notices.iter().map(|n| n.text.clone()).collect();
    assert_eq!(h.state().views.len(), 1, "opened; notices: {notices:?}");
    let view = &h.state().views[0];
    assert_eq!(view.n_cells(), 700);
    assert_eq!(view.embedding.as_deref(), Some("X_umap"));
    assert_eq!(h.state().state.recent_files, vec![pbmc]);
}

#[test]
fn colour_by_a_category_shows_its_legend() {
    let mut h = harness();
    open_demo(&mut h);
    h.get_by_label("sample").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let view = &h.state().views[0];
    assert_eq!(view.color_source, ColorSource::Obs("sample".into()));
    let Legend::Categorical(l) = &view.legend else {
        panic!("categorical legend")
    };
    assert_eq!(l.categories.len(), 3);
    h.get_by_label("donor_B");
    h.get_by_label("Legend: sample");
}

#[test]
fn legend_click_hides_and_double_click_solos() {
    let mut h = harness();
    open_demo(&mut h);
    // Colour is cell_type by default; click NK to hide it.
    h.get_by_label("NK").click();
    h.run_steps(2);
    let nk_hidden = |h: &Harness<'_, StudioApp>| {
        let v = &h.state().views[0];
        let Legend::Categorical(l) = &v.legend else {
            panic!()
        };
        (l.hidden.clone(), v.points.flags.1.clone(), l.codes.clone())
    };
    let (hidden, flags, codes) = nk_hidden(&h);
    assert_eq!(hidden.iter().filter(|&&x| x).count(), 1);
    assert!(hidden[2], "NK is category 2");
    assert!(
        (0..codes.len()).all(|i| (flags[i] & FLAG_HIDDEN != 0) == (codes[i] == 2)),
        "exactly the NK cells are flagged hidden"
    );
    // Click again to show it, then double-click B to show B alone.
    h.get_by_label("NK").click();
    // Wait longer than a triple-click window, so the next two clicks are a double-click.
    h.run_steps(60);
    let b = h.get_by_label("B").rect().center();
    for _ in 0..2 {
        h.event(Event::PointerButton {
            pos: b,
            button: PointerButton::Primary,
            pressed: true,
            modifiers: Modifiers::NONE,
        });
        h.event(Event::PointerButton {
            pos: b,
            button: PointerButton::Primary,
            pressed: false,
            modifiers: Modifiers::NONE,
        });
    }
    h.hover_at(b);
    h.run_steps(4);
    let (hidden, _, _) = nk_hidden(&h);
    let shown: Vec<usize> = (0..hidden.len()).filter(|&c| !hidden[c]).collect();
    assert_eq!(shown, vec![3], "only B (category 3) is shown");
}

#[test]
fn searching_a_gene_colours_by_its_expression() {
    let mut h = harness();
    open_demo(&mut h);
    h.get_by_label("Search gene").focus();
    h.step();
    h.get_by_label("Search gene").type_text("ms4a");
    h.run_steps(2);
    h.get_by_label("MS4A1").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let view = &h.state().views[0];
    assert_eq!(view.color_source, ColorSource::Gene("MS4A1".into()));
    assert!(matches!(view.legend, Legend::Continuous(_)));
    assert!(
        view.clip_range.is_some(),
        "colours were computed with clipping"
    );
    // The colour bar with its range is shown.
    h.get_by_label_contains("data range");
}

#[test]
fn lasso_selects_the_cells_inside_and_alt_subtracts() {
    let mut h = harness();
    open_demo(&mut h);
    h.get_by_label("Lasso").click();
    h.run_steps(2);
    let rect = h.state().views[0]
        .panels
        .explorer
        .canvas_rect
        .expect("canvas drawn");
    let c = rect.center();
    let (w, hgt) = (rect.width() * 0.3, rect.height() * 0.3);
    let lasso = [
        Pos2::new(c.x - w, c.y - hgt),
        Pos2::new(c.x + w, c.y - hgt * 0.5),
        Pos2::new(c.x + w * 0.5, c.y + hgt),
        Pos2::new(c.x - w * 0.8, c.y + hgt * 0.8),
    ];
    let draw = |h: &mut Harness<'_, StudioApp>, points: &[Pos2], modifiers: Modifiers| {
        h.hover_at(points[0]);
        h.drag_at(points[0]);
        for p in points.iter().skip(1) {
            // Intermediate points so the lasso follows the edges.
            let last = h.state().views[0]
                .panels
                .explorer
                .canvas_rect
                .map(|_| *p)
                .unwrap();
            h.hover_at(last);
        }
        h.hover_at(points[0] + Vec2::new(1.0, 1.0));
        h.event_modifiers(
            Event::PointerButton {
                pos: points[0] + Vec2::new(1.0, 1.0),
                button: PointerButton::Primary,
                pressed: false,
                modifiers,
            },
            modifiers,
        );
        h.run_steps(2);
    };
    draw(&mut h, &lasso, Modifiers::NONE);
    let view = &h.state().views[0];
    let camera = view.camera.unwrap();
    // The lasso polygon as recorded: the drag start, the corners, the release point.
    let poly: Vec<[f32; 2]> = lasso
        .iter()
        .chain(std::iter::once(&(lasso[0] + Vec2::new(1.0, 1.0))))
        .map(|&p| camera.to_data(p, rect))
        .collect();
    let expected = view
        .points
        .positions
        .1
        .iter()
        .filter(|&&p| point_in_polygon(p, &poly))
        .count();
    assert!(expected > 100, "the lasso covers cells ({expected})");
    let got = view.selection.count();
    assert!(
        got.abs_diff(expected) <= expected / 50,
        "selected {got}, expected about {expected}"
    );
    h.get_by_label_contains("cells selected");
    // Alt + a smaller lasso removes cells.
    let inner: Vec<Pos2> = lasso.iter().map(|&p| c + (p - c) * 0.4).collect();
    draw(&mut h, &inner, Modifiers::ALT);
    let after = h.state().views[0].selection.count();
    assert!(after < got && after > 0, "{after} < {got}");
}

#[test]
fn select_a_category_and_save_it_as_a_label() {
    let mut h = harness();
    open_demo(&mut h);
    h.get_by_label("B").click_secondary();
    h.run_steps(2);
    h.get_by_label("Select these cells").click();
    h.run_steps(2);
    let (count, b_count) = {
        let v = &h.state().views[0];
        let Legend::Categorical(l) = &v.legend else {
            panic!()
        };
        (v.selection.count(), l.counts[3])
    };
    assert_eq!(count, b_count);
    h.get_by_label("Save label").click();
    h.run_steps(2);
    let v = &h.state().views[0];
    assert!(v.dataset.obs_column("annotation").is_some());
    h.get_by_label_contains("cells labelled 'selection 1'");
    // The new column is offered for colouring.
    h.get_by_label("annotation").click();
    h.run_steps(1);
    wait_for_jobs(&mut h);
    h.run_steps(2);
    assert_eq!(
        h.state().views[0].color_source,
        ColorSource::Obs("annotation".into())
    );
}

#[test]
fn cancelling_a_long_job_from_the_status_bar() {
    let mut h = harness();
    h.step();
    let _long: JobHandle<()> =
        h.state_mut()
            .jobs
            .spawn("Long job", Lane::Cpu, |cx: &JobContext<()>| {
                loop {
                    cx.check()?;
                    std::thread::yield_now();
                }
            });
    h.run_steps(2);
    assert!(h.state().jobs.is_busy());
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label("Long job: cancelled");
    assert!(h.state().views.is_empty());
    // Cancelling a dataset load leaves no dataset behind.
    let id = h
        .state_mut()
        .start_load(super::loader::LoadRequest::Demo(3_000_000));
    h.state().jobs.cancel(id);
    wait_for_jobs(&mut h);
    assert!(h.state().views.is_empty());
    let _ = JobError::Cancelled;
}

/// Steps frames until the obs table has its rows (bounded, so a hung worker fails the test).
fn wait_for_table(h: &mut Harness<'_, StudioApp>) {
    for _ in 0..200_000 {
        h.step();
        if !h.state().views[0].panels.table.is_busy() {
            h.run_steps(2);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the table did not update");
}

#[test]
fn table_filters_sorts_and_selects_a_clicked_row() {
    let mut h = harness();
    open_demo(&mut h);
    wait_for_table(&mut h);
    let n = h.state().views[0].n_cells();
    h.get_by_label(&format!("{n} of {n} cells"));
    // Filter to the NK cells: the row count follows.
    h.get_by_label("Filter").focus();
    h.step();
    h.get_by_label("Filter").type_text("cell_type=NK");
    wait_for_table(&mut h);
    let d = h.state().views[0].dataset.clone();
    let Some(ColumnData::Categorical { codes, categories }) =
        d.obs_column("cell_type").map(|c| &c.data)
    else {
        panic!("cell_type is categorical")
    };
    let nk_code = categories.iter().position(|c| c == "NK").unwrap() as i32;
    let nk: Vec<usize> = (0..n).filter(|&i| codes[i] == nk_code).collect();
    assert!(!nk.is_empty() && nk.len() < n);
    h.get_by_label(&format!("{} of {n} cells", nk.len()));
    // Sort by n_counts: the NK cell with the fewest counts comes first.
    h.get_by_label("n_counts ↕").click();
    wait_for_table(&mut h);
    let k = 1 + d.obs.iter().position(|c| c.name == "n_counts").unwrap();
    assert_eq!(
        h.state().views[0].panels.table.sort,
        Some(Sort {
            column: k,
            descending: false
        })
    );
    h.get_by_label("n_counts ⏶");
    let Some(ColumnData::Numeric(counts)) = d.obs_column("n_counts").map(|c| &c.data) else {
        panic!("n_counts is numeric")
    };
    let first = *nk
        .iter()
        .min_by(|&&a, &&b| counts[a].total_cmp(&counts[b]).then(a.cmp(&b)))
        .unwrap();
    // Clicking its row selects that one cell.
    h.get_by_label(&d.obs_names[first]).click();
    h.run_steps(2);
    let view = &h.state().views[0];
    assert_eq!(view.selection.indices(), vec![first]);
    h.get_by_label(&format!("1 of {n} cells selected"));
    // Only the selection: one row.
    h.get_by_label("Only selected").click();
    wait_for_table(&mut h);
    h.get_by_label(&format!("1 of {n} cells"));
    // A filter naming no column says so and keeps the window usable.
    h.get_by_label("Filter").focus();
    h.step();
    h.get_by_label("Filter").type_text(" size>3");
    wait_for_table(&mut h);
    h.get_by_label_contains("no column 'size'");
}

fn open_pbmc(h: &mut Harness<'_, StudioApp>) -> Option<PathBuf> {
    let Some(pbmc) = shared_pbmc() else {
        c2s_core::test_support::skip("the shared pbmc68k_reduced.h5ad is absent");
        return None;
    };
    h.step();
    h.state_mut()
        .start_load(super::loader::LoadRequest::File(pbmc.clone(), None));
    wait_for_jobs(h);
    assert_eq!(h.state().views.len(), 1);
    Some(pbmc)
}

#[test]
fn switching_the_matrix_reloads_in_place() {
    let mut h = harness();
    let Some(_) = open_pbmc(&mut h) else {
        return;
    };
    // The reader picks raw (log-normalised) over the scaled X by default.
    let view = &h.state().views[0];
    assert_eq!(view.dataset.loaded, Some(MatrixChoice::Raw));
    let id = view.id;
    h.get_by_label("CD19+ B").click_secondary();
    h.run_steps(2);
    h.get_by_label("Select these cells").click();
    h.run_steps(2);
    let selected = h.state().views[0].selection.count();
    assert_eq!(selected, 95);
    let ctx = h.ctx.clone();
    h.state_mut()
        .apply(&ctx, vec![Action::ReloadMatrix(id, MatrixChoice::X)]);
    wait_for_jobs(&mut h);
    let view = &h.state().views[0];
    assert_eq!(h.state().views.len(), 1, "replaced, not added");
    assert_eq!(view.dataset.loaded, Some(MatrixChoice::X));
    assert_eq!(view.selection.count(), selected, "the selection survives");
    assert_eq!(view.color_source, ColorSource::Obs("bulk_labels".into()));
}

#[test]
fn annotations_are_exported_to_a_new_h5ad() {
    let mut h = harness();
    let Some(pbmc) = open_pbmc(&mut h) else {
        return;
    };
    h.get_by_label("Dendritic").click_secondary();
    h.run_steps(2);
    h.get_by_label("Select these cells").click();
    h.run_steps(2);
    h.get_by_label("Save label").click();
    h.run_steps(2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("annotated.h5ad");
    h.state_mut().export_h5ad(out.clone());
    wait_for_jobs(&mut h);
    let notices: Vec<String> = h.state().notices.iter().map(|n| n.text.clone()).collect();
    assert!(
        notices.iter().any(|n| n.contains("1 obs column(s)")),
        "{notices:?}"
    );
    let back = c2s_core::io::h5ad::read_h5ad(&out, &Default::default(), &c2s_core::Progress::new())
        .unwrap();
    let Some(ColumnData::Categorical { codes, categories }) =
        back.obs_column("annotation").map(|c| c.data.clone())
    else {
        panic!("annotation column written");
    };
    let labelled = codes
        .iter()
        .filter(|&&c| c >= 0 && categories[c as usize] == "selection 1")
        .count();
    assert_eq!(labelled, 240);
    // The input file is untouched.
    assert!(
        c2s_core::io::h5ad::read_h5ad(&pbmc, &Default::default(), &c2s_core::Progress::new())
            .unwrap()
            .obs_column("annotation")
            .is_none()
    );
}

#[test]
fn selection_csv_is_exported() {
    let mut h = harness();
    open_demo(&mut h);
    h.get_by_label("NK").click_secondary();
    h.run_steps(2);
    h.get_by_label("Select these cells").click();
    h.run_steps(2);
    let n = h.state().views[0].selection.count();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nk.csv");
    h.state_mut().export_csv(out.clone());
    wait_for_jobs(&mut h);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), n + 1);
    assert!(text.lines().skip(1).all(|l| l.contains(",NK,")));
}

/// The app rendered by the real wgpu renderer offscreen, or `None` on a machine without any
/// wgpu adapter.
fn wgpu_harness() -> Option<Harness<'static, StudioApp>> {
    std::panic::catch_unwind(|| {
        Harness::builder()
            .with_size(Vec2::new(1200.0, 800.0))
            .with_step_dt(1.0 / 60.0)
            .with_max_steps(64)
            .wgpu()
            .build_eframe(|cc| StudioApp::from_creation_context(cc, Vec::new()))
    })
    .ok()
}

/// Renders the real wgpu scatter offscreen (Mesa lavapipe is enough) and checks its pixels.
/// Skips when the machine has no wgpu adapter at all.
#[test]
fn gpu_scatter_draws_the_points_and_hides_categories() {
    let Some(mut h) = wgpu_harness() else {
        c2s_core::test_support::skip("no wgpu adapter");
        return;
    };
    open_demo(&mut h);
    let rect = h.state().views[0]
        .panels
        .explorer
        .canvas_rect
        .expect("canvas drawn");
    // CD4 T cells are drawn in the uns palette's first colour, #1f77b4.
    let count_blue = |h: &mut Harness<'_, StudioApp>| {
        let image = h.render().expect("render");
        let mut n = 0;
        for y in rect.top() as u32..rect.bottom() as u32 {
            for x in rect.left() as u32..rect.right() as u32 {
                let p = image.get_pixel(x, y).0;
                let d = (p[0] as i32 - 0x1f).abs()
                    + (p[1] as i32 - 0x77).abs()
                    + (p[2] as i32 - 0xb4).abs();
                if d < 60 {
                    n += 1;
                }
            }
        }
        n
    };
    let shown = count_blue(&mut h);
    eprintln!("gpu scatter: {shown} CD4 T pixels");
    assert!(shown > 500, "CD4 T pixels drawn: {shown}");
    h.get_by_label("CD4 T").click();
    h.run_steps(3);
    let hidden = count_blue(&mut h);
    assert!(
        hidden < shown / 20,
        "after hiding CD4 T: {hidden} (was {shown})"
    );
}

#[test]
fn computing_an_embedding_adds_pca_and_umap_and_exports_them() {
    // A file with counts and no embedding: the explorer offers to compute one.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("no_embedding.h5ad");
    let mut d = super::demo::generate(500, &Default::default()).unwrap();
    d.obsm.clear();
    c2s_core::io::h5ad::write_dataset_h5ad(&input, &d, &Default::default()).unwrap();
    let mut h = harness();
    h.step();
    h.state_mut()
        .start_load(super::loader::LoadRequest::File(input, None));
    wait_for_jobs(&mut h);
    assert_eq!(h.state().views[0].embedding, None);
    h.get_by_label("Compute embedding").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let view = &h.state().views[0];
    assert_eq!(
        view.embedding.as_deref(),
        Some("X_umap_computed"),
        "the UMAP is shown"
    );
    let pca_cols = view.dataset.embedding("X_pca_computed").map(|e| e.n_cols);
    assert!(pca_cols.is_some_and(|k| k >= 2), "the PCA is kept");
    assert_eq!(view.added_obsm, ["X_pca_computed", "X_umap_computed"]);
    let out = dir.path().join("with_umap.h5ad");
    h.state_mut().export_h5ad(out.clone());
    wait_for_jobs(&mut h);
    let back = c2s_core::io::h5ad::read_h5ad(&out, &Default::default(), &c2s_core::Progress::new())
        .unwrap();
    let umap = back
        .embedding("X_umap_computed")
        .expect("UMAP written to obsm");
    assert_eq!((umap.n_cols, umap.data.len()), (2, 1_000));
    assert_eq!(back.embedding("X_pca_computed").map(|e| e.n_cols), pca_cols);
}

/// Spots on a grid, each holding one "under" cell and then 30 "over" cells at the same place,
/// coloured blue and red from the file's palette.
fn overlapping_spots() -> (c2s_core::dataset::Dataset, Vec<[f32; 2]>) {
    const OVER: usize = 30;
    let spots: Vec<[f32; 2]> = (0..48).map(|k| [(k % 8) as f32, (k / 8) as f32]).collect();
    let mut codes = Vec::new();
    let mut umap = Vec::new();
    for s in &spots {
        for k in 0..=OVER {
            codes.push(i32::from(k > 0));
            umap.extend_from_slice(s);
        }
    }
    let n = codes.len();
    let dataset = c2s_core::dataset::Dataset {
        obs_names: (0..n).map(|i| format!("cell{i}")).collect(),
        obs: vec![c2s_core::dataset::ObsColumn {
            name: "layer".into(),
            data: ColumnData::Categorical {
                codes,
                categories: vec!["under".into(), "over".into()],
            },
        }],
        obsm: vec![c2s_core::dataset::Embedding {
            name: "X_umap".into(),
            n_cols: 2,
            data: umap,
        }],
        expression: c2s_core::matrix::CsrMatrix {
            n_rows: n,
            indptr: vec![0; n + 1],
            ..Default::default()
        },
        palettes: [(
            "layer".to_string(),
            vec!["#0000ff".to_string(), "#ff0000".to_string()],
        )]
        .into(),
        ..Default::default()
    };
    (dataset, spots)
}

/// Selected cells are drawn above unselected ones on the GPU: a selected blue cell under 30 red
/// ones shows blue at its spot. Skips when the machine has no wgpu adapter at all.
#[test]
fn gpu_scatter_draws_selected_cells_on_top() {
    let Some(mut h) = wgpu_harness() else {
        c2s_core::test_support::skip("no wgpu adapter");
        return;
    };
    h.run_steps(2);
    let (dataset, spots) = overlapping_spots();
    let under: Vec<usize> = (0..dataset.n_cells()).step_by(31).collect();
    h.state_mut().add_dataset("spots".into(), dataset);
    // Let the table arrive, so the layout around the canvas is final.
    wait_for_table(&mut h);
    // The colour at each spot's centre: +1 clearly blue (the under cell), -1 clearly red, else 0
    // (a spot off the canvas or under an overlay).
    let spot_colours = |h: &mut Harness<'_, StudioApp>| -> Vec<i32> {
        let image = h.render().expect("render");
        let rect = h.state().views[0]
            .panels
            .explorer
            .canvas_rect
            .expect("canvas drawn");
        let camera = h.state().views[0].camera.expect("camera fitted");
        spots
            .iter()
            .map(|&s| {
                let p = camera.to_screen(s, rect);
                let [r, _, b, _] = image.get_pixel(p.x as u32, p.y as u32).0;
                let (r, b) = (i32::from(r), i32::from(b));
                i32::from(b > r + 60) - i32::from(r > b + 60)
            })
            .collect()
    };
    // Unselected, the red cells drawn later cover the blue ones.
    let before = spot_colours(&mut h);
    let visible = before.iter().filter(|&&c| c == -1).count();
    assert!(visible >= spots.len() / 2, "red spots in view: {visible}");
    assert!(before.iter().all(|&c| c != 1), "no blue before selecting");
    // Selected, the blue cells are drawn on top of every spot that was red.
    h.state_mut().views[0].select(under, SelectMode::Replace);
    h.run_steps(3);
    let after = spot_colours(&mut h);
    let still_red: Vec<usize> = (0..spots.len())
        .filter(|&k| before[k] == -1 && after[k] != 1)
        .collect();
    assert!(
        still_red.is_empty(),
        "spots not blue after selecting: {still_red:?}"
    );
}

/// Eframe storage in memory, to save and restore the app as a restart would.
#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

fn open_demo_of(h: &mut Harness<'_, StudioApp>, cells: usize) -> u64 {
    let ctx = h.ctx.clone();
    h.state_mut().apply(&ctx, vec![Action::OpenDemo(cells)]);
    wait_for_jobs(h);
    h.state().views.last().expect("a view opened").id
}

#[test]
fn two_datasets_side_by_side_each_with_its_own_camera() {
    let mut h = harness();
    h.run_steps(2);
    let a = open_demo_of(&mut h, 2_000);
    let b = open_demo_of(&mut h, 3_000);
    assert_ne!(a, b);
    // Both explorers are tabs; the second opened next to the first, then goes to the right.
    let ctx = h.ctx.clone();
    h.state_mut().apply(&ctx, vec![Action::SplitRight(b)]);
    h.run_steps(3);
    let rect_of = |h: &Harness<'_, StudioApp>, id: u64| {
        let v = h.state().views.iter().find(|v| v.id == id).unwrap();
        v.panels.explorer.canvas_rect.expect("both canvases drawn")
    };
    let (ra, rb) = (rect_of(&h, a), rect_of(&h, b));
    assert!(
        ra.max.x <= rb.min.x + 1.0,
        "side by side: {ra:?} left of {rb:?}"
    );
    // Panning the left view moves its camera only.
    let camera_of = |h: &Harness<'_, StudioApp>, id: u64| {
        h.state()
            .views
            .iter()
            .find(|v| v.id == id)
            .unwrap()
            .camera
            .expect("fitted")
    };
    let before_b = camera_of(&h, b);
    let before_a = camera_of(&h, a);
    let start = ra.center();
    h.hover_at(start);
    h.drag_at(start);
    h.hover_at(start + Vec2::new(40.0, 25.0));
    h.drop_at(start + Vec2::new(60.0, 30.0));
    h.run_steps(2);
    assert_ne!(
        camera_of(&h, a).center,
        before_a.center,
        "the left view panned"
    );
    assert_eq!(
        camera_of(&h, b).center,
        before_b.center,
        "the right one did not"
    );
    assert_eq!(
        h.state().active,
        Some(a),
        "the explorer used last is active"
    );
}

#[test]
fn closing_a_dataset_cancels_its_jobs_and_brings_back_the_start_page() {
    let mut h = harness();
    h.run_steps(2);
    let id = open_demo_of(&mut h, 5_000);
    let ctx = h.ctx.clone();
    h.state_mut().apply(&ctx, vec![Action::ComputeEmbedding]);
    h.run_steps(1);
    let job = h
        .state()
        .jobs
        .records()
        .iter()
        .find(|r| r.title.starts_with("Computing UMAP"))
        .cloned()
        .expect("the embedding job started");
    h.state_mut().apply(&ctx, vec![Action::Close(id)]);
    wait_for_jobs(&mut h);
    assert!(h.state().views.is_empty());
    assert!(job.is_abandoned(), "closing the view cancelled its job");
    assert!(matches!(job.status(), Status::Ended(Outcome::Cancelled, _)));
    assert!(
        h.state().notices.is_empty(),
        "a job cancelled by closing its view needs no notice: {:?}",
        h.state().notices
    );
    assert!(h.state().workbench.has_tab(&Tab::Welcome));
    h.get_by_label("Open demo dataset");
}

#[test]
fn picking_another_gene_cancels_the_stale_read() {
    let mut h = harness();
    h.run_steps(2);
    let id = open_demo_of(&mut h, 2_000);
    let ctx = h.ctx.clone();
    let genes = h.state().views[0].dataset.var_names.clone();
    h.state_mut().apply(
        &ctx,
        vec![
            Action::ColorByGene(id, genes[0].clone()),
            Action::ColorByGene(id, genes[1].clone()),
        ],
    );
    wait_for_jobs(&mut h);
    let view = &h.state().views[0];
    assert_eq!(view.color_source, ColorSource::Gene(genes[1].clone()));
    let first = h
        .state()
        .jobs
        .records()
        .iter()
        .find(|r| r.title == format!("Reading {}", genes[0]))
        .expect("listed");
    // Either it was cancelled as stale, or it had already finished; it never recoloured.
    assert!(first.is_abandoned() || matches!(first.status(), Status::Ended(Outcome::Finished, _)));
}

#[test]
fn a_second_accelerator_job_waits_in_the_lane() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut h = harness();
    h.run_steps(2);
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let mut first: JobHandle<()> = h.state_mut().jobs.spawn(
        "Inference A",
        Lane::Accelerator,
        move |cx: &JobContext<()>| {
            while !g.load(Ordering::Acquire) {
                cx.check()?;
                std::thread::yield_now();
            }
            Ok(())
        },
    );
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let mut second: JobHandle<()> = h.state_mut().jobs.spawn(
        "Inference B",
        Lane::Accelerator,
        move |_: &JobContext<()>| {
            s.store(true, Ordering::Release);
            Ok(())
        },
    );
    while h.state().jobs.queued() != vec![second.id()] {
        std::thread::yield_now();
    }
    h.run_steps(2);
    h.get_by_label_contains("waiting for the accelerator (#1 in the queue)");
    assert!(
        !started.load(Ordering::Acquire),
        "B waits while A holds the device"
    );
    gate.store(true, Ordering::Release);
    wait_for_jobs(&mut h);
    assert!(started.load(Ordering::Acquire), "B ran once A ended");
    assert!(first.poll().result.unwrap().is_ok());
    assert!(second.poll().result.unwrap().is_ok());
}

#[test]
fn the_layout_and_recent_files_survive_a_restart() {
    let mut storage = MemoryStorage::default();
    {
        let mut app = StudioApp::new(PersistedState::default(), None);
        app.state
            .add_recent(std::path::Path::new("/data/pbmc.h5ad"));
        // The user moves the Model tab into a leaf of its own on the right.
        let wb = &mut app.workbench;
        let path = wb.dock.find_tab(&Tab::Panel("model".into())).unwrap();
        let tab = wb.dock.remove_tab(path).unwrap();
        wb.dock
            .main_surface_mut()
            .split_right(egui_dock::NodeIndex::root(), 0.7, vec![tab]);
        app.persist(&mut storage);
    }
    let restored = StudioApp::restore(Some(&storage), None);
    assert_eq!(
        restored.state.recent_files,
        vec![PathBuf::from("/data/pbmc.h5ad")]
    );
    let saved = storage.get_string(super::app::LAYOUT_KEY).unwrap();
    assert_eq!(
        restored.workbench.to_ron(),
        saved,
        "same layout after a restart"
    );
    let model_leaf = restored
        .workbench
        .dock
        .find_tab(&Tab::Panel("model".into()))
        .unwrap();
    let table_leaf = restored
        .workbench
        .dock
        .find_tab(&Tab::Panel("table".into()))
        .unwrap();
    assert_ne!(model_leaf.node, table_leaf.node, "Model kept its own leaf");
}

#[test]
fn a_state_file_of_the_previous_version_keeps_its_recent_files() {
    let mut storage = MemoryStorage::default();
    // Exactly what version 1 (before the workbench) stored.
    storage.set_string(
        super::state::STATE_KEY,
        r#"(version:1,recent_files:["/data/lung.h5ad"],layout:(show_left:true,show_right:false,show_table:true,show_summary:true),point_scale:1.0,opacity:0.85,continuous:(colormap:Viridis,clip_low:0.0,clip_high:99.0))"#.into(),
    );
    let app = StudioApp::restore(Some(&storage), None);
    assert_eq!(
        app.state.recent_files,
        vec![PathBuf::from("/data/lung.h5ad")]
    );
    assert!(!app.state.layout.show_right);
    assert!(
        app.workbench.has_tab(&Tab::Welcome),
        "no saved layout: the default one"
    );
}

/// A prompt whose greedy continuation by [`tiny_model`] is 16 tokens with no end-of-text.
const PROMPT: &str = "The cell type is CD3E IL7R LTB MALAT1 B2M";

/// The tiny random GPT-NeoX checkpoint the engine tests use.
fn tiny_model() -> PathBuf {
    fixture_model("gpt_neox_sequential")
}

/// Tiny random checkpoint `name` of `tests/fixtures/models`.
pub(super) fn fixture_model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

/// Sets the number field or slider labelled `label` through AccessKit, as a screen reader
/// would, and checks that it shows the value.
pub(super) fn set_number(h: &mut Harness<'_, StudioApp>, label: &str, value: f64) {
    use egui::accesskit::{Action, ActionData, ActionRequest};
    let (target_node, target_tree) = h.get_by_label(label).accesskit_node().locate();
    h.input_mut()
        .events
        .push(Event::AccessKitActionRequest(ActionRequest {
            action: Action::SetValue,
            target_node,
            target_tree,
            data: Some(ActionData::NumericValue(value)),
        }));
    h.run_steps(2);
    let shown = h.get_by_label(label).accesskit_node().numeric_value();
    assert!(
        shown.is_some_and(|v| (v - value).abs() < 1e-6),
        "{label}: {shown:?}"
    );
}

/// Moves tool panel `id` into a full-height leaf on the right, as a user would drag it, so the
/// whole panel is on screen.
pub(super) fn panel_on_the_right(h: &mut Harness<'_, StudioApp>, id: &str) {
    let wb = &mut h.state_mut().workbench;
    let path = wb.dock.find_tab(&Tab::Panel(id.into())).unwrap();
    let tab = wb.dock.remove_tab(path).unwrap();
    wb.dock
        .main_surface_mut()
        .split_right(egui_dock::NodeIndex::root(), 0.4, vec![tab]);
    h.run_steps(2);
}

/// The Model tab's Adapter folder: an adapter for the model is merged in at load and shown;
/// one made for another base model fails the load with a notice, and nothing is loaded.
#[test]
fn the_model_tab_loads_a_model_with_an_adapter_and_refuses_a_foreign_one() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let model = fixtures.join("models/gpt_neox_parallel");
    let load = |h: &mut Harness<'_, StudioApp>, adapter: &str| {
        for (label, text) in [
            ("Model folder or id", model.display().to_string()),
            (
                "Adapter folder",
                fixtures.join(adapter).display().to_string(),
            ),
        ] {
            h.get_by_label(label).focus();
            h.run_steps(1);
            h.key_press_modifiers(Modifiers::COMMAND, egui::Key::A);
            h.run_steps(1);
            h.get_by_label(label).type_text(&text);
            h.run_steps(2);
        }
        h.get_by_label("Load model").click();
        h.run_steps(2);
        wait_for_jobs(h);
    };
    let mut h = harness();
    h.run_steps(2);
    panel_on_the_right(&mut h, "model");
    load(&mut h, "lora/gemma2/final");
    assert!(h.state().models.models().is_empty());
    assert!(
        h.state()
            .notices
            .iter()
            .any(|n| n.is_error && n.text.contains("cannot apply the adapter")),
        "{:?}",
        h.state().notices
    );
    load(&mut h, "lora/gpt_neox/final");
    let models = h.state().models.models();
    assert_eq!(models.len(), 1, "{:?}", h.state().notices);
    assert_eq!(
        models[0].adapter.as_deref(),
        Some(fixtures.join("lora/gpt_neox/final").as_path())
    );
    assert_eq!(models[0].name(), "gpt_neox_parallel + final");
    assert!(
        h.get_all_by_label("gpt_neox_parallel + final")
            .next()
            .is_some(),
        "listed with its adapter"
    );
}

#[test]
fn load_a_model_and_stream_a_generation_from_the_model_tab() {
    let mut h = harness();
    h.run_steps(2);
    panel_on_the_right(&mut h, "model");
    h.get_by_label("Model folder or id").focus();
    h.run_steps(1);
    h.get_by_label("Model folder or id")
        .type_text(&tiny_model().display().to_string());
    h.run_steps(2);
    h.get_by_label("Load model").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    assert_eq!(
        h.state().models.models().len(),
        1,
        "{:?}",
        h.state().notices
    );
    assert!(
        h.get_all_by_label("gpt_neox_sequential").next().is_some(),
        "listed among the loaded models"
    );
    h.get_by_label("Prompt").focus();
    h.run_steps(1);
    h.get_by_label("Prompt").type_text(PROMPT);
    h.run_steps(2);
    h.get_by_label("Generate").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    // The text shown equals the engine's own greedy generation of the same prompt.
    let engine = h.state().models.models()[0].engine.clone();
    let (expected, _) = engine
        .generate(
            &[PROMPT],
            &c2s_core::engine::GenerateOptions::default(),
            &mut |_| {},
            None,
        )
        .unwrap();
    // The tiny random model writes some bytes that are not text; look for its first words.
    let shown: String = expected[0]
        .text
        .chars()
        .take_while(|c| c.is_ascii_graphic() || *c == ' ')
        .take(24)
        .collect();
    assert!(shown.trim().len() >= 4, "{:?}", expected[0].text);
    h.get_by_label_contains(shown.trim());
    h.get_by_label_contains("tokens/s");
    // Unloading removes it from the registry.
    h.get_by_label("Unload").click();
    h.run_steps(2);
    assert!(h.state().models.models().is_empty());
}

#[test]
fn a_folder_that_is_not_a_model_gives_a_clear_error() {
    let mut h = harness();
    h.run_steps(2);
    let dir = tempfile::tempdir().unwrap();
    panel_on_the_right(&mut h, "model");
    h.get_by_label("Model folder or id").focus();
    h.run_steps(1);
    h.get_by_label("Model folder or id")
        .type_text(&dir.path().display().to_string());
    h.run_steps(2);
    h.get_by_label("Load model").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    assert!(h.state().models.models().is_empty());
    let notice = &h.state().notices[0];
    assert!(
        notice.is_error && notice.text.contains("config.json"),
        "{notice:?}"
    );
}

/// A 12-cell `.h5ad` with obs `cell_type` (T, B, NK cells) and a UMAP: 8 genes, whose sentences
/// are short enough for the tiny checkpoints' 64-token context, then `extra` genes, gene `k`
/// expressed (at 0.5, below the others) in the cells of type `k % 3`.
fn tiny_h5ad_with(dir: &std::path::Path, extra: &[String]) -> PathBuf {
    use c2s_core::dataset::{Dataset, Embedding, ObsColumn};
    use c2s_core::io::h5ad::{CreateOptions, Storage, ValueType, write_dataset_h5ad};
    use c2s_core::matrix::CsrMatrix;
    let mut genes: Vec<String> = [
        "CD3E", "IL7R", "LTB", "MS4A1", "CD79A", "NKG7", "GNLY", "B2M",
    ]
    .map(String::from)
    .to_vec();
    let g = genes.len();
    genes.extend(extra.iter().cloned());
    let n = 12usize;
    let mut m = CsrMatrix {
        n_rows: n,
        n_cols: genes.len(),
        indptr: vec![0],
        ..Default::default()
    };
    for i in 0..n {
        for j in 0..g {
            if (i + j) % 3 != 0 {
                m.indices.push(j as u32);
                m.data.push(((i * 7 + j * 3) % 11 + 1) as f32);
            }
        }
        for k in (0..extra.len()).filter(|k| k % 3 == i % 3) {
            m.indices.push((g + k) as u32);
            m.data.push(0.5);
        }
        m.indptr.push(m.data.len() as u64);
    }
    let ds = Dataset {
        obs_names: (0..n).map(|i| format!("cell{i}")).collect(),
        var_names: genes,
        obs: vec![ObsColumn {
            name: "cell_type".into(),
            data: ColumnData::Categorical {
                codes: (0..n).map(|i| (i % 3) as i32).collect(),
                categories: ["T cell", "B cell", "NK cell"].map(String::from).to_vec(),
            },
        }],
        obsm: vec![Embedding {
            name: "X_umap".into(),
            n_cols: 2,
            data: (0..n).flat_map(|i| [i as f32, (i % 4) as f32]).collect(),
        }],
        expression: m,
        ..Default::default()
    };
    let path = dir.join("tiny.h5ad");
    write_dataset_h5ad(
        &path,
        &ds,
        &CreateOptions {
            x: Some((Storage::Csr, ValueType::F32)),
            ..Default::default()
        },
    )
    .unwrap();
    path
}

/// Opens [`tiny_h5ad_with`] (no extra genes), loads [`tiny_model`] on the CPU and moves tool panel `panel` into a
/// leaf on the right, as a user would drag it; returns the folder holding the file.
fn tiny_session(h: &mut Harness<'_, StudioApp>, panel: &str) -> tempfile::TempDir {
    tiny_session_with(h, panel, &[])
}

/// [`tiny_session`] with `extra` genes in the file.
fn tiny_session_with(
    h: &mut Harness<'_, StudioApp>,
    panel: &str,
    extra: &[String],
) -> tempfile::TempDir {
    h.run_steps(2);
    let dir = tempfile::tempdir().unwrap();
    drop_file(h, tiny_h5ad_with(dir.path(), extra));
    wait_for_jobs(h);
    assert_eq!(h.state().views.len(), 1, "{:?}", h.state().notices);
    {
        let app = h.state_mut();
        app.models.start_load(
            &mut app.jobs,
            &tiny_model().display().to_string(),
            c2s_core::engine::LoadOptions {
                device: c2s_core::engine::DeviceRequest::Cpu,
                ..Default::default()
            },
        );
    }
    wait_for_jobs(h);
    assert_eq!(h.state().models.models().len(), 1);
    panel_on_the_right(h, panel);
    // The Jobs tab in front of the Table, whose cell ids would repeat the panel's.
    h.state_mut().workbench.focus(&Tab::Panel("jobs".into()));
    h.run_steps(2);
    dir
}

#[test]
fn annotate_all_cells_by_ranking_labels_colours_the_plot() {
    let mut h = harness();
    let dir = tiny_session(&mut h, "annotate");
    let template = dir.path().join("short.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_sentence}:"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    // An empty selection is refused with a clear message.
    h.get_by_label("Annotate").click();
    h.run_steps(2);
    h.get_by_label_contains("no cell is selected");
    h.get_by_label("all (12)").click();
    h.get_by_label("rank the values of").click();
    h.run_steps(2);
    h.get_by_label("Template file").focus();
    h.run_steps(1);
    h.get_by_label("Template file")
        .type_text(&template.display().to_string());
    h.run_steps(2);
    h.get_by_label("Annotate").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    step_until(&mut h, "the plot is coloured by the labels", |app| {
        app.views[0].color_source == ColorSource::Obs("c2s_cell_type".into())
    });
    let view = &h.state().views[0];
    let labels = view.dataset.obs_column("c2s_cell_type").expect("labels");
    let ColumnData::Categorical { codes, categories } = &labels.data else {
        panic!("labels are categorical")
    };
    assert!(codes.iter().all(|&c| c >= 0), "every cell got a label");
    assert!(
        categories
            .iter()
            .all(|c| ["T cell", "B cell", "NK cell"].contains(&c.as_str()))
    );
    assert!(view.dataset.obs_column("c2s_cell_type_score").is_some());
    h.get_by_label_contains("12 cells annotated with gpt_neox_sequential");
    // Compared with the known labels: the accuracy and a confusion table.
    h.get_by_label("Compare with").click();
    h.run_steps(2);
    h.get_all_by_label("cell_type").last().unwrap().click();
    h.run_steps(2);
    let view = &h.state().views[0];
    let truth = view.dataset.obs_column("cell_type").unwrap();
    let predicted = view.dataset.obs_column("c2s_cell_type").unwrap();
    let right = (0..12)
        .filter(|&i| truth.data.text_at(i) == predicted.data.text_at(i))
        .count();
    h.get_by_label_contains(&format!("accuracy against cell_type: {right} of 12"));
    h.get_by_label("recall");
    // Each cell's prompt and answer can be inspected.
    let prompt = format!("{}:", h.state().views[0].sentence(0, 200));
    h.get_by_label("cell0").click();
    h.run_steps(2);
    h.get_by_label(&prompt);
}

#[test]
fn embedding_cells_with_a_model_adds_a_umap_of_model_space() {
    let mut h = harness();
    let dir = tiny_session(&mut h, "embed_cells");
    let template = dir.path().join("short.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_sentence}:"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    h.get_by_label("Template file").focus();
    h.run_steps(1);
    h.get_by_label("Template file")
        .type_text(&template.display().to_string());
    h.run_steps(2);
    h.get_by_label("Embed all cells").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.run_steps(2);
    let view = &h.state().views[0];
    let emb = view.dataset.embedding("X_c2s").expect("model embedding");
    assert_eq!(emb.n_cols, 64);
    assert!(emb.data.iter().all(|v| v.is_finite()));
    let umap = view.dataset.embedding("X_c2s_umap").expect("its UMAP");
    assert_eq!(umap.data.len(), 24);
    assert_eq!(
        view.embedding.as_deref(),
        Some("X_c2s_umap"),
        "shown at once"
    );
}

#[test]
fn asking_about_selected_cells_streams_an_answer_kept_for_export() {
    let mut h = harness();
    let dir = tiny_session(&mut h, "ask");
    let template = dir.path().join("question.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{multi_cell_sentences}Q: {question}\nA:"], "response": ["{answer}"]}"#,
    )
    .unwrap();
    h.get_by_label("Question").focus();
    h.run_steps(1);
    h.get_by_label("Question").type_text("Which?");
    h.get_by_label("Template file").focus();
    h.run_steps(1);
    h.get_by_label("Template file")
        .type_text(&template.display().to_string());
    h.run_steps(2);
    h.get_by_label("Ask").click();
    h.run_steps(2);
    h.get_by_label_contains("no cell is selected");
    // One cell: two already overflow the tiny model's 64-token context.
    h.state_mut().views[0].select(vec![0], SelectMode::Replace);
    h.run_steps(1);
    h.get_by_label("Ask").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.run_steps(2);
    let view = &h.state().views[0];
    assert_eq!(
        view.added_uns.len(),
        1,
        "the answer is kept; notices: {:?}",
        h.state().notices
    );
    let (key, record) = &view.added_uns[0];
    assert_eq!(key, "c2s_answer_1");
    assert_eq!(record["task"], "question");
    assert_eq!(record["question"], "Which?");
    let prompt = record["prompt"].as_str().unwrap().to_string();
    assert!(prompt.ends_with("Q: Which?\nA:"), "{prompt:?}");
    assert_eq!(record["cells"], "cell0");
    // The kept answer is the model's greedy continuation of that prompt.
    let engine = h.state().models.models()[0].engine.clone();
    let (expected, _) = engine
        .generate(
            &[prompt.as_str()],
            &c2s_core::engine::GenerateOptions {
                max_new_tokens: 200,
                ..Default::default()
            },
            &mut |_| {},
            None,
        )
        .unwrap();
    assert_eq!(record["answer"].as_str().unwrap(), expected[0].text);
    h.get_by_label_contains("c2s_answer_1: Which?");
}

/// The distinct words (upper-cased, letters, digits and '-') that the tiny model writes for
/// `n` cells of each prompt with the Generate tab's default settings (200 genes, temperature
/// 0.7, top-p 0.95, seed 0, batches of 8).
fn generated_words(prompts: &[&str], n: usize) -> Vec<String> {
    use c2s_core::engine::{DeviceRequest, Engine, GenerateOptions, LoadOptions, SamplingParams};
    use c2s_core::tasks::generate::generate_cells;
    use c2s_core::tasks::postprocess::{GeneVocab, PostProcess};
    let engine = Engine::load_dir(
        &tiny_model(),
        &LoadOptions {
            device: DeviceRequest::Cpu,
            ..Default::default()
        },
    )
    .unwrap();
    let prompts: Vec<String> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.to_string(), n))
        .collect();
    let options = GenerateOptions {
        max_new_tokens: 4 * 200 + 8,
        sampling: SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            seed: Some(0),
            ..Default::default()
        },
        ..Default::default()
    };
    let vocab = GeneVocab::new(&[]);
    let out = generate_cells(
        &engine,
        &prompts,
        &options,
        8,
        (&vocab, PostProcess::Clean),
        &std::sync::atomic::AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let mut words: Vec<String> = out
        .cells
        .iter()
        .flat_map(|c| {
            c.text
                .split_whitespace()
                .map(|w| w.trim_end_matches('.').to_uppercase())
        })
        .filter(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .collect();
    words.sort();
    words.dedup();
    words.retain(|w| {
        ![
            "CD3E", "IL7R", "LTB", "MS4A1", "CD79A", "NKG7", "GNLY", "B2M",
        ]
        .contains(&w.as_str())
    });
    words
}

/// Types `text` into the text field labelled `label`.
pub(super) fn type_into(h: &mut Harness<'_, StudioApp>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    h.get_by_label(label).type_text(text);
    h.run_steps(2);
}

/// Whether the explorer painted a text starting with `prefix` this frame.
pub(super) fn painted_text(h: &Harness<'_, StudioApp>, prefix: &str) -> bool {
    h.output()
        .shapes
        .iter()
        .any(|s| matches!(&s.shape, egui::Shape::Text(t) if t.galley.text().starts_with(prefix)))
}

#[test]
fn generated_cells_appear_on_the_embedding_and_export_to_h5ad() {
    // The tiny random model writes no real gene names; the dataset gets the words it will write
    // (the tab's settings, seeded) as extra genes, so the new cells have expression to be
    // placed by.
    let words = generated_words(&["T cell:", "B cell:"], 10);
    assert!(!words.is_empty());
    let mut h = harness();
    let dir = tiny_session_with(&mut h, "generate", &words);
    let template = dir.path().join("generate.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_type}:"], "response": ["{cell_sentence}."]}"#,
    )
    .unwrap();
    // No cell type: a clear message, nothing started.
    h.get_by_label("Generate").click();
    h.run_steps(2);
    h.get_by_label_contains("name at least one cell type");
    type_into(&mut h, "Cell types", "T cell, B cell");
    type_into(&mut h, "Template file", &template.display().to_string());
    h.get_by_label("Generate").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.run_steps(2);
    let view = &h.state().views[0];
    assert_eq!(view.generated.len(), 1, "{:?}", h.state().notices);
    let set = &view.generated[0];
    assert_eq!(set.cells.len(), 20, "10 cells of each type");
    assert_eq!(set.labels.iter().filter(|l| *l == "B cell").count(), 10);
    assert_eq!(set.prompts[0], "T cell:");
    let placed = set
        .positions
        .get("X_umap")
        .unwrap_or_else(|| panic!("not placed: {:?}", set.placement_error));
    assert_eq!(placed.len(), 20);
    // Cells that name a gene of the dataset are placed among the real cells (x 0..11, y 0..3),
    // as umap's transform keeps them near their neighbours; the others have no position.
    let expressed: Vec<bool> = (0..20)
        .map(|i| set.expression.indptr[i + 1] > set.expression.indptr[i])
        .collect();
    for (p, &e) in placed.iter().zip(&expressed) {
        if e {
            assert!(
                p[0] > -3.0 && p[0] < 14.0 && p[1] > -3.0 && p[1] < 6.0,
                "{placed:?}"
            );
        } else {
            assert!(p[0].is_nan(), "{p:?}");
        }
    }
    let n_placed = expressed.iter().filter(|&&e| e).count();
    assert!(n_placed > 0, "some generated cell names a gene");
    assert!(painted_text(
        &h,
        &format!("2 cell types × 10 ({n_placed} cells)")
    ));
    let (view_id, set_id) = (view.id, set.id);
    // Each cell's prompt and raw output can be inspected.
    h.get_by_label("cells").click();
    h.run_steps(2);
    h.get_by_label("B cell #10").click();
    h.run_steps(2);
    h.get_by_label("B cell:");
    // Export: a new .h5ad with the cells, their labels, positions and provenance.
    let out = dir.path().join("generated.h5ad");
    h.state_mut().export_generated(view_id, set_id, out.clone());
    wait_for_jobs(&mut h);
    let read = c2s_core::io::h5ad::read_h5ad(
        &out,
        &c2s_core::io::h5ad::ReadOptions {
            load_matrix: true,
            ..Default::default()
        },
        &c2s_core::Progress::new(),
    )
    .unwrap();
    assert_eq!(read.n_cells(), 20);
    assert_eq!(read.var_names.len(), 8 + words.len());
    assert_eq!(
        read.obs_column("cell_type")
            .unwrap()
            .data
            .text_at(15)
            .as_deref(),
        Some("B cell")
    );
    assert!(read.obs_column("c2s_generated_text").is_some());
    assert_eq!(read.embedding("X_umap").unwrap().data.len(), 40);
}

#[test]
fn predicted_perturbations_list_gene_changes_and_appear_on_the_plot() {
    let mut h = harness();
    let dir = tiny_session(&mut h, "perturb");
    let template = dir.path().join("perturb.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{control_cell_sentence} {perturbation_name}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    type_into(&mut h, "Perturbations", "drugA");
    type_into(&mut h, "Template file", &template.display().to_string());
    // No selection: a clear message.
    h.get_by_label("Predict").click();
    h.run_steps(2);
    h.get_by_label_contains("no cell is selected");
    h.state_mut().views[0].select(vec![0, 3, 6], SelectMode::Replace);
    h.run_steps(1);
    h.get_by_label("Predict").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.run_steps(2);
    let view = &h.state().views[0];
    assert_eq!(view.generated.len(), 1, "{:?}", h.state().notices);
    let set = &view.generated[0];
    assert_eq!(set.cells.len(), 3, "one prediction per control");
    let mut controls = set.controls.clone();
    controls.sort();
    assert_eq!(controls, ["cell0", "cell3", "cell6"]);
    assert!(set.prompts[0].ends_with(" drugA:"), "{:?}", set.prompts[0]);
    assert_eq!(
        set.positions.get("X_umap").map(Vec::len),
        Some(3),
        "{:?}",
        set.placement_error
    );
    h.get_by_label_contains("drugA (3 predicted cells)");
    assert!(painted_text(&h, "drugA on 3 cells ("));
}

#[test]
fn scoring_a_gene_set_adds_an_obs_column_that_colours_the_plot() {
    use c2s_core::genesets::GeneSetLibrary;
    use c2s_core::genesets::dataset_scores::{Method, mean_mode, score_dataset};
    let mut h = harness();
    let view = open_demo_of(&mut h, 400);
    let dir = tempfile::tempdir().unwrap();
    let gmt = dir.path().join("markers.gmt");
    std::fs::write(
        &gmt,
        "CD4_T_MARKERS\tdemo\tCD3E\tIL7R\tLTB\tNOT_A_GENE\nB_MARKERS\tdemo\tMS4A1\tCD79A\tCD19\n",
    )
    .unwrap();
    h.state_mut().workbench.open_panel("gene_sets");
    h.run_steps(1);
    panel_on_the_right(&mut h, "gene_sets");
    h.get_by_label("GMT file").focus();
    h.run_steps(1);
    h.get_by_label("GMT file")
        .type_text(&gmt.display().to_string());
    h.run_steps(2);
    h.get_by_label("Load sets").click();
    h.run_steps(2);
    h.get_by_label("Search sets").focus();
    h.run_steps(1);
    h.get_by_label("Search sets").type_text("cd4_t");
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("B_MARKERS").is_none(),
        "the search lists matching sets only"
    );
    h.get_by_label_contains("CD4_T_MARKERS").click();
    h.run_steps(2);
    h.get_by_label("Score cells").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    // Under load the job's result reaches the panel, and then the colouring job it starts ends,
    // some frames after the scoring job counts as done: step until both have happened.
    let name = "ssgsea:CD4_T_MARKERS";
    step_until(&mut h, "the plot is coloured by the new column", |app| {
        app.views
            .iter()
            .any(|v| v.id == view && v.color_source == ColorSource::Obs(name.into()))
    });
    h.get_by_label_contains("3 of 4 genes in the data");
    let v = h.state().views.iter().find(|v| v.id == view).unwrap();
    let Some(ColumnData::Numeric(scores)) = v.dataset.obs_column(name).map(|c| &c.data) else {
        panic!("no numeric obs column {name}");
    };
    // The same numbers as the core scorer (proven equal to gseapy by the fixture tests) ...
    let library = GeneSetLibrary::read(&gmt).unwrap();
    let method = Method::Ssgsea(c2s_core::genesets::SsgseaOptions {
        weight: 0.25,
        min_size: 1,
        max_size: usize::MAX,
    });
    let want = score_dataset(
        &v.dataset,
        mean_mode(&v.dataset, false),
        &library,
        &["CD4_T_MARKERS".to_string()],
        method,
        &c2s_core::Progress::new(),
    )
    .unwrap();
    assert_eq!(scores, &want.columns[0].values);
    // ... and CD4 T cells, which express these markers, score highest on average.
    let Some(ColumnData::Categorical { codes, categories }) =
        v.dataset.obs_column("cell_type").map(|c| &c.data)
    else {
        panic!("the demo has cell types");
    };
    let mean_of = |label: &str| {
        let code = categories.iter().position(|c| c == label).unwrap() as i32;
        let xs: Vec<f64> = (0..scores.len())
            .filter(|&i| codes[i] == code)
            .map(|i| scores[i])
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    let (t, b) = (mean_of("CD4 T"), mean_of("B"));
    assert!(
        t > 0.0 && b < 0.0,
        "mean ES of CD4 T cells {t}, of B cells {b}"
    );
}

#[test]
fn a_builtin_gene_set_library_loads_by_its_name() {
    let mut h = harness();
    open_demo_of(&mut h, 100);
    h.state_mut().workbench.open_panel("gene_sets");
    h.run_steps(1);
    panel_on_the_right(&mut h, "gene_sets");
    h.get_by_label("GMT file").focus();
    h.run_steps(1);
    h.get_by_label("GMT file").type_text("builtin:hallmark");
    h.run_steps(2);
    h.get_by_label("Load sets").click();
    h.run_steps(2);
    h.get_by_label("50 sets loaded");
    h.get_by_label("Search sets").focus();
    h.run_steps(1);
    h.get_by_label("Search sets").type_text("interferon_gamma");
    h.run_steps(2);
    h.get_by_label_contains("HALLMARK_INTERFERON_GAMMA_RESPONSE (200 genes)");
}
