//! Training examples from the cells of a dataset, shared by the CLI's `finetune` and the app's
//! Fine-tune tab: cell-type prediction and cell-type-conditioned generation from an obs label
//! column, and perturbation prediction from pairs (each perturbed cell with a seeded random
//! control cell of the same context), as the perturbed cell's sentence or as a delta sentence
//! (the genes that rise and fall most, [`crate::tasks::delta`], with the rank → change fit the
//! screen needs to read such predictions back). Prompts and responses come from the task
//! templates through a [`PromptBuilder`].

use super::TrainError;
use super::data::Example;
use crate::dataset::Dataset;
use crate::matrix::CsrMatrix;
use crate::rng::{SplitMix64, mix64};
use crate::tasks::Task;
use crate::tasks::delta::{Changes, DeltaFit, DeltaFitter};
use crate::tasks::prompt::{PromptBuilder, top_k_words};
use std::collections::{BTreeMap, BTreeSet};

/// How perturbed cells are paired with controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// obs column naming each cell's perturbation.
    pub column: String,
    /// The value of `column` that marks control cells.
    pub control: String,
    /// obs column of the context (cell line, cell type, ...): a perturbed cell is paired with
    /// a control of the same context. None: any control.
    pub context: Option<String>,
    /// Seed of the control draw (each perturbed cell's draw depends on its id and the seed
    /// only, so a subset keeps its pairs).
    pub seed: u64,
}

/// What the examples teach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellTask {
    /// The cell sentence → the label in obs column `label`.
    CellType {
        /// obs column with each cell's type.
        label: String,
    },
    /// The label in obs column `label` → the cell sentence.
    Generation {
        /// obs column with each cell's type.
        label: String,
    },
    /// A control cell's sentence and the perturbation → the perturbed cell's sentence.
    Perturbation(Pairing),
    /// A control cell's sentence and the perturbation → the delta sentence from the control
    /// to the perturbed cell: its `genes` largest rises and falls.
    PerturbationDelta {
        /// How perturbed cells meet their controls.
        pairing: Pairing,
        /// Genes per list.
        genes: usize,
    },
}

impl CellTask {
    /// The prompt task whose template builds the examples.
    pub fn prompt_task(&self) -> Task {
        match self {
            CellTask::CellType { .. } => Task::CellTypePrediction,
            CellTask::Generation { .. } => Task::CellTypeGeneration,
            CellTask::Perturbation(_) => Task::PerturbationPrediction,
            CellTask::PerturbationDelta { .. } => Task::PerturbationDelta,
        }
    }

    /// The obs columns the task reads.
    pub fn columns(&self) -> Vec<String> {
        match self {
            CellTask::CellType { label } | CellTask::Generation { label } => vec![label.clone()],
            CellTask::Perturbation(p) | CellTask::PerturbationDelta { pairing: p, .. } => {
                std::iter::once(p.column.clone())
                    .chain(p.context.clone())
                    .collect()
            }
        }
    }
}

/// The cells to learn from.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a> {
    /// The dataset (its obs columns and cell ids).
    pub dataset: &'a Dataset,
    /// The chosen rows of `dataset`.
    pub rows: &'a [usize],
    /// `sentences[i]` is the cell sentence of `rows[i]` (at least the prompt's top-k genes).
    pub sentences: &'a [String],
}

/// The examples built from cells, with the cell each one is about.
#[derive(Debug, Clone, PartialEq)]
pub struct CellExamples {
    /// One example per labelled cell (per perturbed cell for perturbation).
    pub examples: Vec<Example>,
    /// Dataset row of each example's cell (the perturbed cell for perturbation).
    pub rows: Vec<usize>,
    /// Each example's label: the cell type, or the perturbation.
    pub labels: Vec<String>,
    /// For perturbation, the dataset row of each example's control cell.
    pub controls: Vec<usize>,
    /// For delta sentences, the rank → change fit over every pair, which the screen needs to
    /// turn predicted delta sentences into profiles (saved as
    /// [`crate::tasks::delta::FIT_FILE`]).
    pub delta_fit: Option<DeltaFit>,
}

/// Builds the examples of `task` from `cells` with `builder`, whose settings must be for the
/// task's prompt task. Refuses cells without a label, a label column with a single class, and
/// for perturbation: no control cells, no perturbed cells, or a context without controls.
pub fn cell_examples(
    cells: Cells<'_>,
    task: &CellTask,
    builder: &mut PromptBuilder,
) -> Result<CellExamples, TrainError> {
    if cells.rows.len() != cells.sentences.len() {
        return Err(TrainError::InvalidData(format!(
            "{} cells but {} cell sentences",
            cells.rows.len(),
            cells.sentences.len()
        )));
    }
    let wanted = task.prompt_task();
    if builder.settings().task != wanted {
        return Err(TrainError::InvalidConfig(format!(
            "the prompts are built for {}, but this task needs {} prompts",
            builder.settings().task.name(),
            wanted.name()
        )));
    }
    if cells.rows.is_empty() {
        return Err(TrainError::InvalidData(
            "no cells to learn from: choose some cells".into(),
        ));
    }
    match task {
        CellTask::CellType { label } | CellTask::Generation { label } => {
            labelled(cells, label, builder)
        }
        CellTask::Perturbation(pairing) => pairs(cells, pairing, None, builder),
        CellTask::PerturbationDelta { pairing, genes } => {
            if *genes == 0 {
                return Err(TrainError::InvalidConfig(
                    "a delta sentence needs at least one gene per list".into(),
                ));
            }
            pairs(cells, pairing, Some(*genes), builder)
        }
    }
}

/// Each chosen cell's text in obs `column` (trimmed; empty when missing).
fn column_values(cells: Cells<'_>, column: &str) -> Result<Vec<String>, TrainError> {
    let data = &cells
        .dataset
        .obs_column(column)
        .ok_or_else(|| {
            let names: Vec<&str> = cells.dataset.obs.iter().map(|c| c.name.as_str()).collect();
            TrainError::InvalidData(format!(
                "obs has no column `{column}`; available: {}",
                names.join(", ")
            ))
        })?
        .data;
    Ok(cells
        .rows
        .iter()
        .map(|&r| data.text_at(r).unwrap_or_default().trim().to_string())
        .collect())
}

/// Refuses cells without a value in `column`; `what` names the value ("label", "value").
fn require_values(values: &[String], column: &str, what: &str) -> Result<(), TrainError> {
    let missing = values.iter().filter(|v| v.is_empty()).count();
    if missing > 0 {
        return Err(TrainError::InvalidData(format!(
            "{missing} of {} cells have no {what} in obs column `{column}`; choose cells that \
             have one, or fill the column",
            values.len()
        )));
    }
    Ok(())
}

fn labelled(
    cells: Cells<'_>,
    column: &str,
    builder: &mut PromptBuilder,
) -> Result<CellExamples, TrainError> {
    let labels = column_values(cells, column)?;
    require_values(&labels, column, "label")?;
    let classes: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
    if classes.len() < 2 {
        return Err(TrainError::InvalidData(format!(
            "obs column `{column}` has a single class (`{}`) among the chosen cells; a model \
             learns nothing from one label: choose a column with at least two classes",
            classes.iter().next().copied().unwrap_or_default()
        )));
    }
    let ids = &cells.dataset.obs_names;
    let mut examples = Vec::with_capacity(labels.len());
    for ((&row, sentence), label) in cells.rows.iter().zip(cells.sentences).zip(&labels) {
        let fields = BTreeMap::from([("cell_type", label.as_str())]);
        // The sentence fills `cell_sentence`: the prompt's for cell-type prediction, the
        // response's for generation.
        let prompt = builder
            .single(&ids[row], Some(sentence), &fields)
            .map_err(|e| TrainError::InvalidData(e.to_string()))?;
        examples.push(Example {
            model_input: prompt.model_input,
            response: prompt.response,
        });
    }
    Ok(CellExamples {
        examples,
        rows: cells.rows.to_vec(),
        labels,
        controls: Vec::new(),
        delta_fit: None,
    })
}

/// Pairs every perturbed cell with a seeded control; the response is the perturbed cell's
/// sentence, or with `delta` genes per list its delta sentence against the control.
fn pairs(
    cells: Cells<'_>,
    pairing: &Pairing,
    delta: Option<usize>,
    builder: &mut PromptBuilder,
) -> Result<CellExamples, TrainError> {
    let perturbations = column_values(cells, &pairing.column)?;
    require_values(&perturbations, &pairing.column, "perturbation")?;
    let contexts = match &pairing.context {
        Some(column) => {
            let values = column_values(cells, column)?;
            require_values(&values, column, "context")?;
            values
        }
        None => vec![String::new(); perturbations.len()],
    };
    let control = pairing.control.trim();
    // Controls by context, as positions in `cells.rows`.
    let mut controls: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut perturbed = Vec::new();
    for (i, (p, c)) in perturbations.iter().zip(&contexts).enumerate() {
        if p == control {
            controls.entry(c.as_str()).or_default().push(i);
        } else {
            perturbed.push(i);
        }
    }
    if controls.is_empty() {
        let values: BTreeSet<&str> = perturbations.iter().map(String::as_str).collect();
        let shown: Vec<&str> = values.iter().take(12).copied().collect();
        return Err(TrainError::InvalidData(format!(
            "no chosen cell has `{}` = `{control}`, so there are no control cells; name the \
             control value of the column (its values include: {})",
            pairing.column,
            shown.join(", ")
        )));
    }
    if perturbed.is_empty() {
        return Err(TrainError::InvalidData(format!(
            "every chosen cell is a control (`{}` = `{control}`): there are no perturbed cells \
             to learn from; choose cells with perturbations too",
            pairing.column
        )));
    }
    if let Some(column) = &pairing.context {
        let lacking: BTreeSet<&str> = perturbed
            .iter()
            .map(|&i| contexts[i].as_str())
            .filter(|c| !controls.contains_key(c))
            .collect();
        if let Some(first) = lacking.iter().next() {
            return Err(TrainError::InvalidData(format!(
                "{} context(s) of obs column `{column}` have perturbed cells but no control \
                 cell (first: `{first}`); leave those cells out or pair without a context \
                 column",
                lacking.len()
            )));
        }
    }
    let ids = &cells.dataset.obs_names;
    let top_k = builder.settings().top_k;
    let mut out = CellExamples {
        examples: Vec::with_capacity(perturbed.len()),
        rows: Vec::with_capacity(perturbed.len()),
        labels: Vec::with_capacity(perturbed.len()),
        controls: Vec::with_capacity(perturbed.len()),
        delta_fit: None,
    };
    let mut fitter = DeltaFitter::default();
    let matrix = &cells.dataset.expression;
    for &i in &perturbed {
        let row = cells.rows[i];
        let pool = &controls[contexts[i].as_str()];
        let mut rng = SplitMix64::new(mix64(pairing.seed ^ key_hash(&ids[row])));
        let c = pool[rng.below(pool.len())];
        let (key, target) = match delta {
            None => (
                "perturbed_cell_sentence",
                top_k_words(&cells.sentences[i], top_k),
            ),
            Some(n) => {
                let changes = Changes::between(
                    &dense_row(matrix, cells.rows[c])?,
                    &dense_row(matrix, row)?,
                    n,
                );
                fitter.add(&changes);
                (
                    "delta_sentence",
                    changes.sentence(&cells.dataset.var_names).text(),
                )
            }
        };
        let fields = BTreeMap::from([
            ("perturbation_name", perturbations[i].as_str()),
            (key, target.as_str()),
        ]);
        let prompt = builder
            .single(&ids[row], Some(&cells.sentences[c]), &fields)
            .map_err(|e| TrainError::InvalidData(e.to_string()))?;
        out.examples.push(Example {
            model_input: prompt.model_input,
            response: prompt.response,
        });
        out.rows.push(row);
        out.labels.push(perturbations[i].clone());
        out.controls.push(cells.rows[c]);
    }
    if let Some(n) = delta {
        out.delta_fit = Some(
            fitter
                .finish(n)
                .map_err(|e| TrainError::InvalidData(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Row `row` of `matrix` as a dense vector; a row past the matrix (a dataset whose expression
/// was not loaded) is an error.
fn dense_row(matrix: &CsrMatrix, row: usize) -> Result<Vec<f32>, TrainError> {
    if row >= matrix.n_rows {
        return Err(TrainError::InvalidData(format!(
            "cell {row} has no expression row ({} rows loaded); delta sentences need the \
             expression matrix",
            matrix.n_rows
        )));
    }
    let mut dense = vec![0.0; matrix.n_cols];
    let (cols, values) = matrix.row(row);
    for (&c, &v) in cols.iter().zip(values) {
        dense[c as usize] = v;
    }
    Ok(dense)
}

/// A stable 64-bit FNV-1a hash of a cell id.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{ColumnData, ObsColumn};
    use crate::tasks::prompt::PromptSettings;
    use crate::tasks::template::TemplateChoice;

    fn text(name: &str, values: &[&str]) -> ObsColumn {
        ObsColumn {
            name: name.into(),
            data: ColumnData::Text(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn dataset(columns: Vec<ObsColumn>) -> Dataset {
        let n = columns[0].data.len();
        Dataset {
            obs_names: (0..n).map(|i| format!("cell{i}")).collect(),
            obs: columns,
            ..Dataset::default()
        }
    }

    fn builder(task: Task) -> PromptBuilder {
        PromptBuilder::new(PromptSettings {
            task,
            template: task.builtin_template(),
            choice: TemplateChoice::First,
            seed: 0,
            top_k: 2,
            organism: "Homo sapiens".into(),
        })
        .unwrap()
    }

    fn sentences(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("G{i} A B C")).collect()
    }

    fn build(ds: &Dataset, task: &CellTask) -> Result<CellExamples, TrainError> {
        let rows: Vec<usize> = (0..ds.n_cells()).collect();
        let s = sentences(rows.len());
        let cells = Cells {
            dataset: ds,
            rows: &rows,
            sentences: &s,
        };
        cell_examples(cells, task, &mut builder(task.prompt_task()))
    }

    #[test]
    fn cell_type_and_generation_examples_carry_the_label_and_the_cut_sentence() {
        let ds = dataset(vec![text("type", &["B cell", "T cell", "B cell"])]);
        let label = "type".to_string();
        let ct = build(
            &ds,
            &CellTask::CellType {
                label: label.clone(),
            },
        )
        .unwrap();
        assert_eq!(ct.examples.len(), 3);
        assert_eq!(ct.labels, ["B cell", "T cell", "B cell"]);
        assert_eq!(ct.rows, [0, 1, 2]);
        assert_eq!(ct.examples[1].response, "T cell.");
        assert!(ct.examples[1].model_input.contains("G1 A."));
        let g = build(&ds, &CellTask::Generation { label }).unwrap();
        assert!(g.examples[0].model_input.contains("B cell"));
        assert_eq!(g.examples[0].response, "G0 A.");
    }

    #[test]
    fn missing_labels_and_a_single_class_are_refused() {
        let one = dataset(vec![text("type", &["B", "B"])]);
        let e = build(
            &one,
            &CellTask::CellType {
                label: "type".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("single class") && e.contains("`B`"), "{e}");
        let gap = dataset(vec![text("type", &["B", "", "T"])]);
        let e = build(
            &gap,
            &CellTask::CellType {
                label: "type".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("1 of 3 cells have no label"), "{e}");
        let e = build(
            &gap,
            &CellTask::CellType {
                label: "nope".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no column `nope`") && e.contains("type"), "{e}");
    }

    #[test]
    fn the_builder_must_be_for_the_task() {
        let ds = dataset(vec![text("type", &["B", "T"])]);
        let rows = [0, 1];
        let s = sentences(2);
        let cells = Cells {
            dataset: &ds,
            rows: &rows,
            sentences: &s,
        };
        let task = CellTask::CellType {
            label: "type".into(),
        };
        let e = cell_examples(cells, &task, &mut builder(Task::CellTypeGeneration))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cell_type_prediction"), "{e}");
    }

    fn pairing(context: Option<&str>) -> CellTask {
        CellTask::Perturbation(Pairing {
            column: "drug".into(),
            control: "DMSO".into(),
            context: context.map(String::from),
            seed: 3,
        })
    }

    #[test]
    fn perturbed_cells_pair_with_seeded_controls_of_their_context() {
        let ds = dataset(vec![
            text("drug", &["DMSO", "X", "DMSO", "Y", "X", "DMSO"]),
            text("line", &["a", "a", "b", "b", "b", "b"]),
        ]);
        let out = build(&ds, &pairing(Some("line"))).unwrap();
        assert_eq!(out.rows, [1, 3, 4]);
        assert_eq!(out.labels, ["X", "Y", "X"]);
        // Cell 1 (line a) has one control: cell 0; cells 3 and 4 (line b) draw from 2 and 5.
        assert_eq!(out.controls[0], 0);
        assert!(out.controls[1..].iter().all(|c| [2, 5].contains(c)));
        let first = &out.examples[0];
        assert!(first.model_input.contains("perturbation X"), "{first:?}");
        assert!(
            first.model_input.contains("G0 A."),
            "the control's sentence"
        );
        assert_eq!(first.response, "G1 A.", "the perturbed cell's top-k genes");
        // Seeded: the same pairs again, and the draw covers both controls over many cells.
        assert_eq!(out, build(&ds, &pairing(Some("line"))).unwrap());
        let many: Vec<&str> = (0..40).map(|i| if i < 2 { "DMSO" } else { "X" }).collect();
        let wide = dataset(vec![text("drug", &many)]);
        let drawn: BTreeSet<usize> = build(&wide, &pairing(None))
            .unwrap()
            .controls
            .into_iter()
            .collect();
        assert_eq!(drawn, BTreeSet::from([0, 1]));
    }

    #[test]
    fn pairs_need_controls_perturbed_cells_and_controls_in_every_context() {
        let no_control = dataset(vec![text("drug", &["X", "Y"])]);
        let e = build(&no_control, &pairing(None)).unwrap_err().to_string();
        assert!(e.contains("no control cells") && e.contains("X, Y"), "{e}");
        let only_controls = dataset(vec![text("drug", &["DMSO", "DMSO"])]);
        let e = build(&only_controls, &pairing(None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no perturbed cells"), "{e}");
        let lonely = dataset(vec![
            text("drug", &["DMSO", "X", "X"]),
            text("line", &["a", "a", "b"]),
        ]);
        let e = build(&lonely, &pairing(Some("line")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no control cell (first: `b`)"), "{e}");
        assert!(build(&lonely, &pairing(None)).is_ok());
    }

    #[test]
    fn delta_pairs_answer_with_the_largest_changes_and_carry_their_fit() {
        let mut ds = dataset(vec![text("drug", &["DMSO", "X", "Y"])]);
        ds.var_names = ["A", "B", "C", "D"].map(String::from).to_vec();
        let rows: [[f32; 4]; 3] = [
            [1.0, 1.0, 1.0, 1.0],
            [3.0, 1.0, 0.0, 1.5],
            [1.0, 2.0, 1.0, 0.0],
        ];
        let mut m = CsrMatrix {
            n_rows: 3,
            n_cols: 4,
            indptr: vec![0],
            ..Default::default()
        };
        for row in rows {
            for (j, v) in row.into_iter().enumerate() {
                if v != 0.0 {
                    m.indices.push(j as u32);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.data.len() as u64);
        }
        ds.expression = m;
        let CellTask::Perturbation(p) = pairing(None) else {
            unreachable!()
        };
        let task = CellTask::PerturbationDelta {
            pairing: p,
            genes: 1,
        };
        let built = build(&ds, &task).unwrap();
        let responses: Vec<&str> = built.examples.iter().map(|e| e.response.as_str()).collect();
        // X: A +2, C -1; Y: B +1, D -1, each against the only control.
        assert_eq!(responses, ["Up: A. Down: C.", "Up: B. Down: D."]);
        assert!(built.examples[0].model_input.contains("perturbation X"));
        let fit = built.delta_fit.expect("a delta task fits");
        assert_eq!((fit.pairs, fit.genes_per_list), (2, 1));
        // One rank: a flat line at the mean log size.
        assert!(
            (fit.up.intercept - (2f64.ln() + 0.0) / 2.0).abs() < 1e-9,
            "{fit:?}"
        );
        assert_eq!(fit.up.slope, 0.0);
        assert!(fit.down.intercept.abs() < 1e-9, "{fit:?}");
        assert!(build(&ds, &pairing(None)).unwrap().delta_fit.is_none());
    }
}
