//! The Fine-tune tab driven as a user would (egui_kittest) on the tiny GPT-NeoX checkpoint and
//! a 12-cell dataset: preview, a run whose loss streams in, pause, resume to the end, the
//! adapter loaded into the app and the held-out cells annotated; and bad input said in the
//! panel with nothing written.

use std::path::{Path, PathBuf};

use c2s_core::dataset::{ColumnData, Dataset, ObsColumn};
use c2s_core::io::h5ad::{CreateOptions, Storage, ValueType, write_dataset_h5ad};
use c2s_core::matrix::CsrMatrix;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_plot::PlotMemory;

use super::curves;
use crate::gui::app::StudioApp;
use crate::gui::tests::{
    drop_file, fixture_model, harness, panel_on_the_right, set_number, type_into, wait_for_jobs,
};
use crate::gui::workbench::Tab;

/// 12 cells over 8 genes; obs `cell_type` (3 types), `batch` (one value for all) and `drug`
/// (`DMSO` for every fourth cell, else `drugA` or `drugB`).
fn write_cells(dir: &Path) -> PathBuf {
    let genes: Vec<String> = [
        "CD3E", "IL7R", "LTB", "MS4A1", "CD79A", "NKG7", "GNLY", "B2M",
    ]
    .map(String::from)
    .to_vec();
    let n = 12usize;
    let mut m = CsrMatrix {
        n_rows: n,
        n_cols: genes.len(),
        indptr: vec![0],
        ..Default::default()
    };
    for i in 0..n {
        for j in 0..genes.len() {
            if (i + j) % 3 != 0 {
                m.indices.push(j as u32);
                m.data.push(((i * 7 + j * 3) % 11 + 1) as f32);
            }
        }
        m.indptr.push(m.data.len() as u64);
    }
    let ds = Dataset {
        obs_names: (0..n).map(|i| format!("cell{i}")).collect(),
        var_names: genes,
        obs: vec![
            ObsColumn {
                name: "cell_type".into(),
                data: ColumnData::Categorical {
                    codes: (0..n).map(|i| (i % 3) as i32).collect(),
                    categories: ["T cell", "B cell", "NK cell"].map(String::from).to_vec(),
                },
            },
            ObsColumn {
                name: "batch".into(),
                data: ColumnData::Text(vec!["b1".to_string(); n]),
            },
            ObsColumn {
                name: "drug".into(),
                data: ColumnData::Text(
                    (0..n)
                        .map(|i| match i % 4 {
                            0 => "DMSO",
                            1 | 2 => "drugA",
                            _ => "drugB",
                        })
                        .map(String::from)
                        .collect(),
                ),
            },
        ],
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

/// Opens the cells and the Fine-tune tab in a leaf on the right; writes a short template (the
/// fixture's context is 64 tokens).
fn session(h: &mut Harness<'_, StudioApp>, dir: &Path) -> PathBuf {
    h.run_steps(2);
    drop_file(h, write_cells(dir));
    wait_for_jobs(h);
    assert_eq!(h.state().views.len(), 1, "{:?}", h.state().notices);
    h.state_mut().workbench.open_panel("finetune");
    h.run_steps(1);
    panel_on_the_right(h, "finetune");
    h.state_mut().workbench.focus(&Tab::Panel("jobs".into()));
    h.run_steps(2);
    let template = dir.join("short.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{cell_sentence}:"], "response": ["{cell_type}."]}"#,
    )
    .unwrap();
    template
}

/// Picks `value` in the drop-down labelled `label`.
fn choose(h: &mut Harness<'_, StudioApp>, label: &str, value: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
    h.get_all_by_label(value).last().unwrap().click();
    h.run_steps(2);
}

/// Chooses "model folder" and types the fixture's folder into its field.
fn model_folder(h: &mut Harness<'_, StudioApp>) {
    h.get_by_label("model folder").click();
    h.run_steps(2);
    model_field(h).focus();
    h.run_steps(1);
    model_field(h).type_text(&fixture_model("gpt_neox_parallel").display().to_string());
    h.run_steps(2);
}

fn model_field<'h>(h: &'h Harness<'_, StudioApp>) -> egui_kittest::Node<'h> {
    h.get_all_by_label("model folder")
        .find(|n| n.accesskit_node().role() == Role::TextInput)
        .expect("the model folder field")
}

/// Fills the form: the model as a folder, `label` as the label column, tiny settings.
fn fill_form(h: &mut Harness<'_, StudioApp>, template: &Path, out: &Path, label: &str) {
    model_folder(h);
    choose(h, "Label column", label);
    choose(h, "Train on", "CPU");
    set_number(h, "Genes per cell", 3.0);
    set_number(h, "Steps", 40.0);
    set_number(h, "Batch", 2.0);
    set_number(h, "Validate every", 5.0);
    set_number(h, "Validation fraction", 0.25);
    type_into(h, "Template file", &template.display().to_string());
    type_into(h, "Output folder", &out.display().to_string());
}

fn log_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn a_run_streams_its_loss_pauses_resumes_and_its_adapter_annotates_held_out_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    let template = session(&mut h, dir.path());
    let out = dir.path().join("run");
    fill_form(&mut h, &template, &out, "cell_type");

    // The preview builds the examples and times two steps in a scratch folder.
    h.get_by_label("Preview and estimate").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("12 examples (9 train / 3 held out)");
    h.get_by_label_contains("Memory: about");
    h.get_by_label_contains("for 40 steps (timed: the second of two trial steps)");
    assert!(
        !out.exists(),
        "the preview writes nothing into the output folder"
    );

    // Loss points stream in while the run goes on.
    h.get_by_label("Start training").click();
    let mut seen = false;
    for _ in 0..100_000 {
        h.step();
        if h.query_all_by_label_contains("of 40, loss")
            .next()
            .is_some()
        {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(seen, "no step was reported");
    assert!(h.state().jobs.is_busy(), "the run is still going");
    h.run_steps(1);
    assert!(
        PlotMemory::load(&h.ctx, curves::plot_id()).is_some(),
        "the loss curve is drawn"
    );
    h.get_by_label("Pause").click();
    h.run_steps(1);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("paused after step");
    let paused_at = log_lines(&out);
    assert!((1..40).contains(&paused_at), "{paused_at}");
    assert!(out.join("checkpoints").is_dir());

    // Resume continues from the checkpoint to the end.
    h.get_by_label("Resume").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("finished: 40 steps");
    assert_eq!(log_lines(&out), 40);
    assert!(out.join("adapter_model.safetensors").is_file());

    // The adapter in the app's model registry (the setup folded away, as a user would, so
    // the results are on screen).
    h.get_by_label("Setup").click();
    h.run_steps(2);
    h.get_by_label("Use this adapter").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let models = h.state().models.models();
    assert_eq!(models.len(), 1, "{:?}", h.state().notices);
    assert_eq!(models[0].adapter.as_deref(), Some(out.as_path()));
    h.get_by_label_contains("loaded as gpt_neox_parallel + run");

    // The held-out cells ranked with it.
    h.get_by_label("Annotate held-out cells").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("accuracy against the true labels: ");
    h.get_by_label_contains("of 3 (");
    h.get_by_label_contains("majority-class rate: always answering");
    h.get_by_label("recall");
}

#[test]
fn bad_input_is_said_in_the_panel_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    let template = session(&mut h, dir.path());
    let out = dir.path().join("run");
    type_into(&mut h, "Output folder", &out.display().to_string());
    choose(&mut h, "Label column", "cell_type");
    // No model loaded, none named.
    h.get_by_label("Start training").click();
    h.run_steps(2);
    h.get_by_label_contains("no base model");
    assert!(!out.exists());

    // A label column with one class: refused by the job before anything is written.
    model_folder(&mut h);
    choose(&mut h, "Label column", "batch");
    choose(&mut h, "Train on", "CPU");
    set_number(&mut h, "Genes per cell", 3.0);
    type_into(&mut h, "Template file", &template.display().to_string());
    h.get_by_label("Start training").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_all_by_label_contains("single class (`b1`)")
        .next()
        .expect("the one-class error is shown");
    assert!(!out.exists(), "a refused run leaves no folder behind");
    assert!(!h.state().jobs.is_busy());
}

/// Replaces the text of the field labelled `label` with `text` (empty: clears it).
fn retype(h: &mut Harness<'_, StudioApp>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run_steps(1);
    if text.is_empty() {
        h.key_press(egui::Key::Backspace);
    } else {
        h.get_by_label(label).type_text(text);
    }
    h.run_steps(2);
}

fn log_records(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Steps the harness until `label` shows (a step record arrived) or panics.
fn wait_for_label(h: &mut Harness<'_, StudioApp>, label: &str) {
    for _ in 0..100_000 {
        h.step();
        if h.query_all_by_label_contains(label).next().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("`{label}` never showed");
}

#[test]
fn a_cancelled_run_keeps_its_checkpoint_and_its_folder_resumes_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    let template = session(&mut h, dir.path());
    let out = dir.path().join("run");
    fill_form(&mut h, &template, &out, "cell_type");
    h.get_by_label("Start training").click();
    wait_for_label(&mut h, "of 40, loss");
    h.get_by_label("Cancel training").click();
    h.run_steps(1);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("cancelled after step");
    assert!(
        h.query_by_label("Resume").is_none(),
        "a cancelled run is not paused"
    );
    let stopped_at = log_lines(&out);
    assert!((1..40).contains(&stopped_at), "{stopped_at}");

    // Starting again into the same folder is refused and offers to resume it instead.
    h.get_by_label("Start training").click();
    h.run_steps(2);
    h.get_by_label_contains("already holds a run: resume it");
    assert_eq!(
        log_lines(&out),
        stopped_at,
        "the refused start wrote nothing"
    );
    h.get_by_label("Resume the run in this folder").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("finished: 40 steps");
    let steps: Vec<u64> = log_records(&out)
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (1..=40).collect::<Vec<_>>(),
        "every step once, in order"
    );
}

#[test]
fn the_advanced_settings_reach_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    let template = session(&mut h, dir.path());
    let out = dir.path().join("run");
    fill_form(&mut h, &template, &out, "cell_type");
    set_number(&mut h, "Steps", 6.0);
    h.get_by_label("Advanced").click();
    h.run_steps(2);
    choose(&mut h, "Schedule", "constant");
    set_number(&mut h, "Warmup fraction", 0.5);
    set_number(&mut h, "Checkpoint every", 2.0);

    // A folder that is not an adapter is refused before anything runs.
    type_into(&mut h, "Initial adapter", &dir.path().display().to_string());
    h.get_by_label("Start training").click();
    h.run_steps(2);
    h.get_by_label_contains("is not a peft adapter folder");
    assert!(!out.exists());
    retype(&mut h, "Initial adapter", "");

    h.get_by_label("Start training").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("finished: 6 steps");
    // transformers' constant schedule with 3 warmup steps: 0, 1/3, 2/3 of the peak, then the
    // peak (the default linear schedule would decay instead).
    let lr: Vec<f64> = log_records(&out)
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    let peak = 2e-4;
    let want = [0.0, peak / 3.0, 2.0 * peak / 3.0, peak, peak, peak];
    assert_eq!(lr.len(), want.len());
    for (got, want) in lr.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{lr:?}");
    }
    let kept: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(kept.len() >= 2, "checkpoints every 2 steps: {kept:?}");
}

/// Full fine-tuning from the panel writes a checkpoint (no adapter) that "Use this model" loads
/// and that ranks the held-out cells.
#[test]
fn a_full_fine_tune_writes_a_model_the_app_loads_and_annotates_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    let template = session(&mut h, dir.path());
    let out = dir.path().join("run");
    fill_form(&mut h, &template, &out, "cell_type");
    set_number(&mut h, "Steps", 3.0);
    h.get_by_label("Advanced").click();
    h.run_steps(2);
    h.get_by_label("Full fine-tune").click();
    h.run_steps(2);
    h.get_by_label("Start training").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("finished: 3 steps");
    assert!(out.join("model.safetensors").is_file());
    assert!(!out.join("adapter_model.safetensors").exists());
    h.get_by_label_contains(&format!("Model in {}", out.display()));
    // The setup folded away, as a user would, so the results are on screen.
    h.get_by_label("Setup").click();
    h.run_steps(2);
    h.get_by_label("Use this model").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    let models = h.state().models.models();
    assert_eq!(models.len(), 1, "{:?}", h.state().notices);
    assert_eq!(models[0].source, out.display().to_string());
    assert_eq!(models[0].adapter, None);
    h.get_by_label("Annotate held-out cells").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("accuracy against the true labels: ");
}

#[test]
fn perturbation_pairs_preview_and_a_missing_control_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    session(&mut h, dir.path());
    let template = dir.path().join("pert.json");
    std::fs::write(
        &template,
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    model_folder(&mut h);
    choose(&mut h, "Train on", "CPU");
    h.get_by_label("perturbation prediction (pairs)").click();
    h.run_steps(2);
    choose(&mut h, "Perturbation column", "drug");
    type_into(&mut h, "Control value", "vehicle");
    set_number(&mut h, "Genes per cell", 3.0);
    type_into(&mut h, "Template file", &template.display().to_string());
    type_into(&mut h, "Output folder", &out.display().to_string());

    // A control value the column lacks: the preview names the column's values.
    h.get_by_label("Preview and estimate").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_all_by_label_contains("no control cells")
        .next()
        .expect("the missing control is said");
    h.get_all_by_label_contains("DMSO")
        .next()
        .expect("the column's values are listed");

    // Every perturbed cell (9 of 12) paired with a control.
    retype(&mut h, "Control value", "DMSO");
    h.get_by_label("Preview and estimate").click();
    h.run_steps(2);
    wait_for_jobs(&mut h);
    h.get_by_label_contains("9 examples (");
    assert!(
        !out.exists(),
        "the preview writes nothing into the output folder"
    );
}
