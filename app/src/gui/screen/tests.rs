//! The Virtual screen tab driven as a user would (egui_kittest): the form filled for two
//! contexts of a small dataset, a 3-drug library and a one-set GMT on the tiny GPT-NeoX
//! checkpoint; the run to the end, the volcano, hover and click; a cancelled run continued;
//! and bad input.

use std::path::{Path, PathBuf};

use c2s_core::dataset::{ColumnData, Dataset, ObsColumn};
use c2s_core::io::h5ad::{CreateOptions, Storage, ValueType, write_dataset_h5ad};
use c2s_core::matrix::CsrMatrix;
use c2s_core::screen::report::{HitThresholds, report};
use c2s_core::screen::run::{RunOptions, load_contexts, run_screen};
use c2s_core::screen::spec::ScreenSpec;
use c2s_core::screen::store::{RESULTS, SPEC_FILE, Store};
use c2s_core::screen::units::Shard;
use egui::Pos2;
use egui::accesskit::{Role, Toggled};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_plot::{PlotMemory, PlotPoint};

use super::volcano;
use crate::gui::app::StudioApp;
use crate::gui::tests::{
    drop_file, fixture_model, harness, panel_on_the_right, set_number, type_into, wait_for_jobs,
};
use crate::gui::workbench::Tab;

/// Upper-case words of 3+ letters or digits that are single tokens of the fixture's tokenizer,
/// so the random model writes some of them and predicted sentences name genes of the data.
fn token_genes() -> Vec<String> {
    let text =
        std::fs::read_to_string(fixture_model("gpt_neox_parallel").join("tokenizer.json")).unwrap();
    let tokenizer: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut genes: Vec<String> = tokenizer["model"]["vocab"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            k.len() >= 3
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .cloned()
        .collect();
    genes.sort();
    assert!(genes.len() >= 10, "{genes:?}");
    genes
}

/// 20 cells over `genes`, obs `group` alternating a / b, counts varying by cell and gene.
fn write_cells(dir: &Path, genes: &[String]) -> PathBuf {
    let n = 20;
    let mut m = CsrMatrix {
        n_rows: n,
        n_cols: genes.len(),
        indptr: vec![0],
        ..Default::default()
    };
    for i in 0..n {
        for j in 0..genes.len() {
            let v = ((i * 5 + j * 11) % 13) as f32;
            if v > 3.0 {
                m.indices.push(j as u32);
                m.data.push(v);
            }
        }
        m.indptr.push(m.data.len() as u64);
    }
    let ds = Dataset {
        obs_names: (0..n).map(|i| format!("c{i}")).collect(),
        var_names: genes.to_vec(),
        obs: vec![ObsColumn {
            name: "group".into(),
            data: ColumnData::Text((0..n).map(|i| ["a", "b"][i % 2].to_string()).collect()),
        }],
        expression: m,
        ..Default::default()
    };
    let path = dir.join("cells.h5ad");
    let options = CreateOptions {
        x: Some((Storage::Csr, ValueType::F32)),
        ..Default::default()
    };
    write_dataset_h5ad(&path, &ds, &options).unwrap();
    path
}

/// The inputs of a tiny screen in `dir`: cells, a 3-drug library, a one-set GMT and a short
/// perturbation template (the fixture's context is short).
struct Inputs {
    library: PathBuf,
    gmt: PathBuf,
    template: PathBuf,
}

fn inputs(dir: &Path) -> Inputs {
    let genes = token_genes();
    write_cells(dir, &genes);
    let library = dir.join("drugs.txt");
    std::fs::write(&library, "DrugA\nDrugB\nDrugC\n").unwrap();
    let gmt = dir.join("sets.gmt");
    std::fs::write(&gmt, format!("UP\tx\t{}\n", genes[..6].join("\t"))).unwrap();
    let template = dir.join("pert.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    Inputs {
        library,
        gmt,
        template,
    }
}

/// Opens the cells, and the Virtual screen tab in a leaf on the right.
fn session(h: &mut Harness<'_, StudioApp>, dir: &Path) {
    h.run_steps(2);
    drop_file(h, dir.join("cells.h5ad"));
    wait_for_jobs(h);
    assert_eq!(h.state().views.len(), 1, "{:?}", h.state().notices);
    h.state_mut().workbench.open_panel("screen");
    h.run_steps(1);
    panel_on_the_right(h, "screen");
    h.state_mut().workbench.focus(&Tab::Panel("jobs".into()));
    h.run_steps(2);
}

/// The `k`-th text field labelled `label` (the context grid labels its columns' fields by
/// their headers).
fn nth_field<'h>(
    h: &'h Harness<'_, StudioApp>,
    label: &'h str,
    k: usize,
) -> egui_kittest::Node<'h> {
    h.get_all_by_label(label)
        .filter(|n| n.accesskit_node().role() == Role::TextInput)
        .nth(k)
        .unwrap_or_else(|| panic!("no text field {k} labelled {label}"))
}

/// Types `text` into the `k`-th text field labelled `label`.
fn type_nth(h: &mut Harness<'_, StudioApp>, label: &str, k: usize, text: &str) {
    nth_field(h, label, k).focus();
    h.run_steps(1);
    nth_field(h, label, k).type_text(text);
    h.run_steps(2);
}

/// Fills the form for `inputs` with two contexts (groups a and b of the open dataset).
fn fill_form(h: &mut Harness<'_, StudioApp>, inputs: &Inputs, out: &Path) {
    h.get_by_label("Add context").click();
    h.run_steps(2);
    h.get_by_label("Add context").click();
    h.run_steps(2);
    type_nth(h, "Filter (COL=VALUE)", 0, "group=a");
    type_nth(h, "Filter (COL=VALUE)", 1, "group=b");
    set_number(h, "Samples per context", 2.0);
    set_number(h, "Replicates", 2.0);
    set_number(h, "Seed", 11.0);
    set_number(h, "Max new tokens", 24.0);
    set_number(h, "Genes per prompt", 3.0);
    set_number(h, "Batch size", 4.0);
    set_number(h, "Temperature", 0.9);
    // The tiny data has too few genes for the C2S filters.
    h.get_by_label("none (the matrix as stored)").click();
    h.run_steps(2);
    type_into(h, "Template file", &inputs.template.display().to_string());
    type_into(h, "Library file", &inputs.library.display().to_string());
    h.get_by_label("Load library").click();
    h.run_steps(2);
    wait_for_jobs(h);
    h.get_by_label_contains("3 perturbations: DrugA, DrugB, DrugC");
    type_into(h, "GMT file", &inputs.gmt.display().to_string());
    h.get_by_label("Load sets").click();
    h.run_steps(2);
    wait_for_jobs(h);
    h.get_by_label("UP (6 genes)").click();
    h.run_steps(2);
    h.get_by_label_contains("1 chosen");
    type_into(h, "Output folder", &out.display().to_string());
}

/// Loads the fixture on the CPU into the app's model registry (as the Model tab does).
fn load_model(h: &mut Harness<'_, StudioApp>) {
    let app = h.state_mut();
    app.models.start_load(
        &mut app.jobs,
        &fixture_model("gpt_neox_parallel").display().to_string(),
        c2s_core::engine::LoadOptions {
            device: c2s_core::engine::DeviceRequest::Cpu,
            ..Default::default()
        },
    );
    wait_for_jobs(h);
    assert_eq!(
        h.state().models.models().len(),
        1,
        "{:?}",
        h.state().notices
    );
}

/// Clicks at `pos` (press, then release a frame later).
fn click_at(h: &mut Harness<'_, StudioApp>, pos: Pos2) {
    h.hover_at(pos);
    h.run_steps(1);
    h.drag_at(pos);
    h.run_steps(1);
    h.drop_at(pos);
    h.run_steps(2);
}

/// Where the volcano draws (effect, p) on screen.
fn point_of(h: &Harness<'_, StudioApp>, effect: f64, p: f64) -> Pos2 {
    let memory = PlotMemory::load(&h.ctx, volcano::plot_id()).expect("the volcano is drawn");
    let transform = memory.transform();
    let pos = transform.position_from_point(&PlotPoint::new(effect, volcano::neg_log10(p)));
    assert!(
        transform.frame().contains(pos),
        "{pos:?} in {:?}",
        transform.frame()
    );
    pos
}

/// The drug the hover line names (`NAME in A: effect …`).
fn hovered_name(h: &Harness<'_, StudioApp>) -> String {
    let node = h.get_by_label_contains(" in A: effect ");
    let line = node
        .accesskit_node()
        .label()
        .or_else(|| node.value())
        .expect("the hover line has text");
    line.split(" in A: ").next().unwrap().to_string()
}

/// Whether the table row of `drug` is shown selected.
fn row_toggled(h: &Harness<'_, StudioApp>, drug: &str) -> Option<Toggled> {
    h.get_all_by_label(drug)
        .find(|n| n.accesskit_node().role() == Role::Button)
        .unwrap_or_else(|| panic!("no table row for {drug}"))
        .accesskit_node()
        .toggled()
}

/// Asserts that `text` is shown (in the panel, and also in the status bar when a job failed).
fn said(h: &Harness<'_, StudioApp>, text: &str) -> usize {
    let n = h.get_all_by_label_contains(text).count();
    assert!(n > 0, "{text:?} is not shown");
    n
}

#[test]
fn a_screen_runs_from_the_form_and_its_volcano_names_and_selects_drugs() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let out = dir.path().join("screen-out");
    let mut h = harness();
    session(&mut h, dir.path());
    load_model(&mut h);
    fill_form(&mut h, &inputs, &out);

    // The estimate times two batches in a scratch folder and leaves the output folder alone.
    h.get_by_label("Estimate time").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("Estimated run time: about 1 min");
    h.get_by_label_contains("of 24 units to run");
    assert!(
        !out.exists(),
        "estimating writes nothing into the output folder"
    );

    h.get_by_label("Run").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("screen complete: 24 units");
    // The folder holds the results, and the spec the form saved reloads as the same screen.
    assert!(out.join(RESULTS).exists());
    let store = Store::open(&out).unwrap();
    let saved = ScreenSpec::load(&out.join(SPEC_FILE)).unwrap();
    assert_eq!(saved.hash(), store.manifest().spec_hash);
    assert_eq!(saved.perturbations, ["DrugA", "DrugB", "DrugC"]);
    assert_eq!(saved.sampling.temperature, 0.9);
    assert_eq!(saved.contexts[1].filter.as_deref(), Some("group=b"));
    assert_eq!(
        saved.contexts[0].preprocess,
        c2s_core::screen::spec::Preprocess::None
    );

    // The setup folds away, as a user would fold it to see the results.
    h.get_by_label("Screen setup").click();
    h.run_steps(3);
    // The volcano is drawn; hovering a point names its drug (the random model writes few
    // genes, so drugs may share a point: the nearest is named), a click selects its row.
    let effects = report(&store, HitThresholds::default()).unwrap().effects;
    let drug = effects
        .iter()
        .find(|e| e.context == "A" && e.p.is_finite() && e.effect.is_finite())
        .unwrap_or_else(|| panic!("no drawable drug: {effects:?}"));
    let pos = point_of(&h, drug.effect, drug.p);
    h.hover_at(pos);
    h.run_steps(2);
    let named = hovered_name(&h);
    let there: Vec<&str> = effects
        .iter()
        .filter(|e| e.context == "A" && point_of(&h, e.effect, e.p).distance(pos) < 8.0)
        .map(|e| e.perturbation.as_str())
        .collect();
    assert!(
        there.contains(&named.as_str()),
        "{named} not among {there:?}"
    );
    assert_eq!(
        row_toggled(&h, &named),
        Some(Toggled::False),
        "nothing selected yet"
    );
    click_at(&mut h, pos);
    assert_eq!(
        row_toggled(&h, &named),
        Some(Toggled::True),
        "the click selected {named}'s row"
    );
    h.get_by_label_contains(&format!("{named} — UP"));

    // A partial screen (half its units, run by the core as shard 1/2) reopens and resumes to
    // the same results as the uninterrupted run.
    let half = dir.path().join("half");
    {
        let engine = h.state().models.models()[0].engine.clone();
        let contexts = load_contexts(&saved, &c2s_core::Progress::new()).unwrap();
        let store = Store::create_or_open(&half, &saved).unwrap();
        let options = RunOptions::new(4, Shard { index: 1, count: 2 });
        run_screen(
            &saved,
            &contexts,
            &store,
            &engine,
            options,
            &c2s_core::Progress::new(),
            &mut |_| {},
        )
        .unwrap();
    }
    h.get_by_label("Screen setup").click();
    h.run_steps(2);
    h.get_by_label("Output folder").focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Output folder")
        .type_text(&half.display().to_string());
    h.run_steps(2);
    h.get_by_label("Open results folder").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("opened a partial screen");
    h.get_by_label_contains("12 units finished; Resume continues it");
    h.get_by_label("Resume").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("screen complete: 24 units (12 run now, 12 already in the folder)");
    assert_eq!(
        Store::open(&half).unwrap().results().unwrap(),
        store.results().unwrap(),
        "resumed results equal the uninterrupted run's"
    );
}

#[test]
fn cancel_keeps_the_finished_units_and_run_continues_them() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let out = dir.path().join("screen-out");
    let mut h = harness();
    session(&mut h, dir.path());
    load_model(&mut h);
    fill_form(&mut h, &inputs, &out);
    // 3 drugs × 2 contexts × 2 samples × 10 replicates, one unit per batch: still running
    // when Cancel is clicked.
    set_number(&mut h, "Replicates", 10.0);
    set_number(&mut h, "Batch size", 1.0);
    h.get_by_label("Run").click();
    h.run_steps(2);
    let stored = |out: &Path| {
        Store::open(out)
            .ok()
            .and_then(|s| s.finished().ok())
            .map_or(0, |f| f.len())
    };
    for _ in 0..100_000 {
        h.step();
        if stored(&out) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    h.get_all_by_label("Cancel")
        .next()
        .expect("a Cancel button")
        .click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let kept = stored(&out);
    assert!((1..120).contains(&kept), "{kept} of 120 units kept");
    h.get_by_label_contains("finished units are kept in the folder");
    assert!(
        !out.join(RESULTS).exists(),
        "an unfinished screen has no results table"
    );
    // Run again continues from the kept units.
    h.get_by_label("Run").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains(&format!(
        "screen complete: 120 units ({} run now, {kept} already in the folder)",
        120 - kept
    ));
}

#[test]
fn bad_inputs_are_said_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let mut h = harness();
    session(&mut h, dir.path());
    // No context yet.
    h.get_by_label("Run").click();
    h.run_steps(2);
    h.get_by_label_contains("add two or more contexts");

    let out = dir.path().join("out");
    fill_form(&mut h, &inputs, &out);
    // The model as a folder (no model is loaded in this test).
    h.get_by_label("model folder").click();
    h.run_steps(2);
    type_nth(
        &mut h,
        "model folder",
        0,
        &fixture_model("gpt_neox_parallel").display().to_string(),
    );

    // An empty library: the core's words, in the preview and on Run.
    std::fs::write(&inputs.library, "# nothing here\n").unwrap();
    h.get_by_label("Load library").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let shown = said(&h, "the library names no perturbation");
    h.get_by_label("Run").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    assert_eq!(
        said(&h, "the library names no perturbation"),
        shown + 1,
        "and on Run"
    );
    std::fs::write(&inputs.library, "DrugA\nDrugB\n").unwrap();

    // A GMT sharing no gene with the data: said before anything is written.
    std::fs::write(&inputs.gmt, "UP\tx\tNOT_A_GENE\tALSO_NOT\n").unwrap();
    h.get_by_label("Run").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    said(&h, "gene set 'UP' shares no gene with the data");
    assert!(!out.exists(), "a failed start leaves no folder behind");

    // An output folder holding another screen is refused and left as it was.
    std::fs::write(
        &inputs.gmt,
        format!("UP\tx\t{}\n", token_genes()[..6].join("\t")),
    )
    .unwrap();
    let other_dir = dir.path().join("other");
    let other = ScreenSpec::parse(
        &format!(
            "[[context]]\nname = \"X\"\nh5ad = \"cells.h5ad\"\nsamples = 1\n[library]\npath = \
             \"drugs.txt\"\n[model]\ndir = \"{}\"\n[genesets]\ngmt = \"sets.gmt\"\nsets = [\"UP\"]\n",
            fixture_model("gpt_neox_parallel").display()
        ),
        dir.path(),
    )
    .unwrap();
    Store::create_or_open(&other_dir, &other).unwrap();
    let before: Vec<_> = std::fs::read_dir(&other_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    h.get_by_label("Output folder").focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run_steps(1);
    h.get_by_label("Output folder")
        .type_text(&other_dir.display().to_string());
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    said(&h, "holds results of a different screen");
    let after: Vec<_> = std::fs::read_dir(&other_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "the other screen's folder is untouched");
    // The app carries on.
    h.run_steps(3);
    assert_eq!(h.state().views.len(), 1);
}

/// A finished screen written through the core's store: contexts A and B, drugs `up`, `flat`
/// and `down` with well-separated effects in A (as the report's own tests use).
fn finished_screen(dir: &Path) -> PathBuf {
    use c2s_core::screen::store::{ControlResult, UnitResult};
    use c2s_core::screen::units::Unit;
    std::fs::write(dir.join("lib.txt"), "up\nflat\ndown\n").unwrap();
    let text = "[[context]]\nname = \"A\"\nh5ad = \"a.h5ad\"\nsamples = 2\nreplicates = 2\n\
                [[context]]\nname = \"B\"\nh5ad = \"b.h5ad\"\nsamples = 2\nreplicates = 2\n\
                [library]\npath = \"lib.txt\"\n[model]\ndir = \"m\"\n\
                [genesets]\ngmt = \"g.gmt\"\nsets = [\"S\"]\n";
    let spec = ScreenSpec::parse(text, dir).unwrap();
    let out = dir.join("finished");
    let store = Store::create_or_open(&out, &spec).unwrap();
    let values = [
        ("up", "A", [10.0, 11.0, 12.0, 13.0]),
        ("up", "B", [1.0, 2.0, 1.0, 2.0]),
        ("flat", "A", [1.0, 3.0, 2.0, 2.0]),
        ("flat", "B", [0.5, -0.5, 0.0, 0.0]),
        ("down", "A", [-5.0, -4.0, -6.0, -5.0]),
        ("down", "B", [0.0, 1.0, -1.0, 0.0]),
    ];
    let mut rows = Vec::new();
    for (p, c, v) in values {
        for (k, x) in v.iter().enumerate() {
            rows.push(UnitResult {
                unit: Unit {
                    perturbation: p.into(),
                    context: c.into(),
                    sample: (k / 2) as u32,
                    replicate: (k % 2) as u32,
                },
                generated: String::new(),
                // `down` reverses the controls' gene order.
                sentence: if p == "down" { "G3 G2 G1" } else { "G1 G2 G3" }.into(),
                scores: vec![*x],
            });
        }
    }
    store.append(&rows).unwrap();
    let control = |c: &str, s: u32, x: f64| ControlResult {
        context: c.into(),
        sample: s,
        sentence: "G1 G2 G3".into(),
        scores: vec![x],
    };
    store
        .write_controls(&[
            control("A", 0, 1.0),
            control("A", 1, 3.0),
            control("B", 0, 0.0),
            control("B", 1, 0.5),
        ])
        .unwrap();
    store.write_results().unwrap();
    out
}

#[test]
fn a_finished_screen_reopens_and_each_point_names_its_drug() {
    let dir = tempfile::tempdir().unwrap();
    let out = finished_screen(dir.path());
    let mut h = harness();
    h.run_steps(2);
    h.state_mut().workbench.open_panel("screen");
    h.run_steps(1);
    panel_on_the_right(&mut h, "screen");
    type_into(&mut h, "Output folder", &out.display().to_string());
    h.get_by_label("Open results folder").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("opened the finished screen");
    // The form shows how the screen was made.
    h.get_by_label_contains("3 perturbations: up, flat, down");
    h.get_by_label("Screen setup").click();
    h.run_steps(3);
    let effects = report(&Store::open(&out).unwrap(), HitThresholds::default())
        .unwrap()
        .effects;
    let a = |name: &str| {
        effects
            .iter()
            .find(|e| e.perturbation == name && e.context == "A")
            .unwrap()
    };
    for name in ["up", "down", "flat"] {
        let pos = point_of(&h, a(name).effect, a(name).p);
        h.hover_at(pos);
        h.run_steps(2);
        assert_eq!(hovered_name(&h), name);
    }
    let pos = point_of(&h, a("down").effect, a("down").p);
    click_at(&mut h, pos);
    assert_eq!(row_toggled(&h, "down"), Some(Toggled::True));
    assert_eq!(row_toggled(&h, "up"), Some(Toggled::False));
    // Its detail names the genes it moves in each context: G3 from last to first (rank score
    // 1/3 → 1), G1 the other way.
    assert_eq!(h.get_all_by_label("up: G3 (+0.67)").count(), 2);
    assert_eq!(h.get_all_by_label("down: G1 (-0.67)").count(), 2);
    // `up` is the one hit of A at the paper's thresholds (the table's header and its row say
    // "hit"); a stricter z on the slider leaves none.
    assert!(a("up").hit && !a("down").hit && !a("flat").hit);
    assert_eq!(h.get_all_by_label("hit").count(), 2);
    set_number(&mut h, "hit: z ≥", 2.0);
    assert_eq!(h.get_all_by_label("hit").count(), 1, "the header only");
}

#[test]
fn a_delta_model_screens_from_the_form_with_its_fit() {
    use c2s_core::tasks::delta::{Changes, DeltaFitter, FIT_FILE};
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = inputs(dir.path());
    inputs.template = dir.path().join("delta.json");
    std::fs::write(
        &inputs.template,
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{delta_sentence}"]}"#,
    )
    .unwrap();
    let fit = dir.path().join(FIT_FILE);
    let mut fitter = DeltaFitter::default();
    fitter.add(&Changes {
        up: vec![(0, 2.0), (1, 1.0)],
        down: vec![(2, -2.0), (3, -1.0)],
    });
    fitter.finish(3).unwrap().write(&fit).unwrap();
    let out = dir.path().join("screen-out");
    let mut h = harness();
    session(&mut h, dir.path());
    load_model(&mut h);
    fill_form(&mut h, &inputs, &out);
    h.get_by_label("delta sentence (genes up and down)").click();
    h.run_steps(2);

    // Without its fit the form says what is missing and writes nothing.
    h.get_by_label("Run").click();
    h.run_steps(2);
    h.get_by_label_contains("delta output needs the delta fit file");
    assert!(!out.exists());

    type_into(&mut h, "Delta fit file", &fit.display().to_string());
    h.get_by_label("Run").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("screen complete: 24 units");
    let saved = std::fs::read_to_string(out.join("screen.toml")).unwrap();
    assert!(saved.contains("output = \"delta\""), "{saved}");
    assert!(saved.contains(FIT_FILE), "{saved}");
}

#[test]
fn the_demo_library_loads_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let mut h = harness();
    session(&mut h, dir.path());
    type_into(&mut h, "Library file", "builtin:l1000-demo");
    h.get_by_label("Load library").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("59 perturbations: CP-724714, neratinib");
}
