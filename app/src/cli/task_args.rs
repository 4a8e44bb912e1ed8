//! What the task commands share: the prompt flags (template, variant choice, genes per cell,
//! organism, which cells) and reading an `.h5ad` into cell sentences.

use super::data_args::DataArgs;
use c2s_core::Progress;
use c2s_core::convert::{Prepared, prepare_h5ad};
use c2s_core::sentence::cell_sentences;
use c2s_core::tasks::Task;
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::template::{PromptTemplate, TemplateChoice};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Parses `COL=VALUE`.
fn parse_filter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((col, value)) if !col.is_empty() => Ok((col.to_string(), value.to_string())),
        _ => Err(format!(
            "'{s}' is not COL=VALUE (e.g. --cells bulk_labels=CD14+ Monocyte)"
        )),
    }
}

/// Template, variant choice, genes per cell, organism and cell filter.
#[derive(Debug, Clone, clap::Args)]
pub struct PromptArgs {
    /// Genes per cell sentence in the prompt (`num_genes`).
    #[arg(long, default_value_t = 200)]
    pub top_k_genes: usize,
    /// Organism named in the prompt.
    #[arg(long, default_value = "Homo sapiens")]
    pub organism: String,
    /// A template file in the cell2sentence JSON format (default: the built-in template).
    #[arg(long)]
    pub template_file: Option<PathBuf>,
    /// Which template variant each example gets: first, seeded (per cell, from --seed) or
    /// reference (the package's random.seed(42) sequence).
    #[arg(long, default_value = "first")]
    pub template_choice: TemplateChoice,
    /// Only the cells whose obs column has this value (COL=VALUE).
    #[arg(long, value_parser = parse_filter)]
    pub cells: Option<(String, String)>,
}

impl PromptArgs {
    /// The prompt settings for `task`.
    pub fn settings(&self, task: Task, seed: u32) -> Result<PromptSettings, String> {
        let template = match &self.template_file {
            Some(path) => PromptTemplate::from_file(path).map_err(|e| e.to_string())?,
            None => task.builtin_template(),
        };
        task.check(&template)
            .map_err(|e| match &self.template_file {
                Some(path) => format!("{}: {e}", path.display()),
                None => e.to_string(),
            })?;
        Ok(PromptSettings {
            task,
            template,
            choice: self.template_choice,
            seed: u64::from(seed),
            top_k: self.top_k_genes,
            organism: self.organism.clone(),
        })
    }
}

/// An `.h5ad` read, preprocessed and turned into sentences, with the chosen cells.
pub struct TaskCells {
    /// The preprocessed dataset.
    pub prepared: Prepared,
    /// Every kept cell's sentence (top `k` genes), in obs order.
    pub sentences: Vec<String>,
    /// The chosen cells (rows of the preprocessed dataset) that express at least one gene.
    pub rows: Vec<usize>,
}

impl TaskCells {
    /// Reads `input`, keeping the `top_k` genes per sentence; `obs` lists the columns the
    /// command needs (checked before the heavy work).
    pub fn load(
        input: &Path,
        data: &DataArgs,
        prompt: &PromptArgs,
        obs: &[String],
        fit: bool,
    ) -> Result<Self, String> {
        let mut needed = obs.to_vec();
        if let Some((col, _)) = &prompt.cells {
            needed.push(col.clone());
        }
        let options = data.convert_options(Some(prompt.top_k_genes), fit, needed);
        let progress = Progress::new();
        let prepared = prepare_h5ad(input, &options, &progress).map_err(|e| e.to_string())?;
        for w in &prepared.warnings {
            eprintln!("warning: {w}");
        }
        let ds = &prepared.dataset;
        let sentences = cell_sentences(
            &ds.expression,
            &ds.obs_names,
            &ds.var_names,
            &options.sentences,
            &progress,
        )
        .map_err(|e| e.to_string())?;
        let chosen = match &prompt.cells {
            Some((col, value)) => ds.rows_where(col, value).map_err(|e| e.to_string())?,
            None => (0..ds.n_cells()).collect(),
        };
        let rows: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&r| !sentences[r].is_empty())
            .collect();
        let empty = chosen.len() - rows.len();
        if empty > 0 {
            eprintln!("warning: {empty} chosen cells express no gene and are left out");
        }
        if rows.is_empty() {
            return Err(format!(
                "no cell to work on: {} chosen, none expresses a gene",
                chosen.len()
            ));
        }
        Ok(Self {
            prepared,
            sentences,
            rows,
        })
    }

    /// The single-cell model inputs of the chosen cells (no answers), in order.
    pub fn model_inputs(&self, settings: PromptSettings) -> Result<Vec<String>, String> {
        let ids = &self.prepared.dataset.obs_names;
        let mut builder = PromptBuilder::new(settings).map_err(|e| e.to_string())?;
        self.rows
            .iter()
            .map(|&r| {
                builder
                    .single(&ids[r], Some(&self.sentences[r]), &BTreeMap::new())
                    .map(|p| p.model_input)
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    /// The text of obs `column` for dataset row `row` (empty when missing).
    pub fn obs_text(&self, column: &str, row: usize) -> String {
        self.prepared
            .dataset
            .obs_column(column)
            .and_then(|c| c.data.text_at(row))
            .unwrap_or_default()
    }
}
