//! `screen run` without a spec file: the spec given as flags (`--model`, `--context`,
//! `--library`, `--gmt`, `--set`, ...), built into the same [`ScreenSpec`] a TOML file gives and
//! checked by the same parser.

use c2s_core::bundled::is_bundled;
use c2s_core::screen::spec::{
    ContextSpec, ControlSpec, GeneSetSpec, LibrarySpec, ModelSpec, OutputMode, Preprocess,
    SamplingSpec, ScoringMethod, ScreenSpec,
};
use std::path::{Path, PathBuf};

/// The spec as flags (used when no SPEC.toml is given).
#[derive(Debug, clap::Args)]
pub struct SpecFlags {
    /// Model directory (Hugging Face layout).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A context, `NAME=FILE.h5ad` or `NAME=FILE.h5ad:COL=VALUE` (repeat for each context).
    #[arg(long = "context", value_name = "NAME=FILE.h5ad[:COL=VALUE]")]
    pub contexts: Vec<String>,
    /// Perturbation library: one name per line, an L1000 .gct/.gct.gz (`pert_iname`), or
    /// `builtin:l1000-demo` (59 perturbations of a LINCS L1000 plate).
    #[arg(long)]
    pub library: Option<PathBuf>,
    /// GMT file of the gene sets, or a bundled library: `builtin:antigen-presentation` (the
    /// C2S-Scale screen's 5 sets) or `builtin:hallmark` (MSigDB Hallmark v7.5.1).
    #[arg(long)]
    pub gmt: Option<PathBuf>,
    /// A gene set of the GMT that scores every prediction (repeatable).
    #[arg(long = "set", value_name = "NAME")]
    pub sets: Vec<String>,
    /// Pseudo-bulk samples for a context, `NAME=COL`: each group of obs column COL is one
    /// sample, the mean of its cells (repeatable; other contexts sample single cells).
    #[arg(long = "pseudobulk", value_name = "NAME=COL")]
    pub pseudobulk: Vec<String>,
    /// Samples drawn (seeded) from each context: cells, or pseudo-bulk groups.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// Predictions per perturbation and sample.
    #[arg(long, default_value_t = 3)]
    pub replicates: usize,
    /// Sampling temperature (0 is greedy).
    #[arg(long, default_value_t = c2s_core::screen::spec::DEFAULT_TEMPERATURE)]
    pub temperature: f32,
    /// Screen seed (cell draws and every unit's sampling derive from it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest predicted sentence in tokens (default: 4 per prompt gene plus 8).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Genes of each control cell's sentence in the prompt.
    #[arg(long, default_value_t = 200)]
    pub top_k_genes: usize,
    /// Perturbation prompt template (cell2sentence JSON format); built-in by default.
    #[arg(long)]
    pub template_file: Option<PathBuf>,
    /// Preprocessing of each context's matrix: c2s or none.
    #[arg(long, default_value = "c2s")]
    pub preprocess: String,
    /// How predictions are scored: `sentence-rank` (rank-only ssGSEA on the sentence's order)
    /// or `reconstructed` (ssGSEA on the expression rebuilt from it, clipped at 0).
    #[arg(long, default_value = "sentence-rank")]
    pub scoring: String,
    /// ssGSEA weight of `reconstructed` scoring and of delta output (default 0.25).
    #[arg(long)]
    pub weight: Option<f64>,
    /// What the model writes: `sentence` (the perturbed cell's sentence) or `delta` (the
    /// genes that rise and fall most, for a model fine-tuned with --task perturbation-delta).
    #[arg(long, default_value = "sentence")]
    pub output: String,
    /// The delta fit (`delta_fit.json`) of the delta fine-tuning run (with --output delta).
    #[arg(long)]
    pub delta_fit: Option<PathBuf>,
    /// Reference of the effects: `unperturbed` (each context's own cells) or a library name
    /// (e.g. a vehicle such as DMSO).
    #[arg(long, default_value = "unperturbed")]
    pub control: String,
}

impl SpecFlags {
    /// Builds and validates the spec (relative paths against the working directory); reads
    /// the library.
    pub fn spec(&self) -> Result<ScreenSpec, String> {
        let need = |what: &str| {
            format!("give a spec file, or {what} (see `c2s-studio screen run --help`)")
        };
        let model = self.model.as_ref().ok_or_else(|| need("--model"))?;
        let library = self.library.as_ref().ok_or_else(|| need("--library"))?;
        let gmt = self.gmt.as_ref().ok_or_else(|| need("--gmt"))?;
        if self.contexts.is_empty() {
            return Err(need("one or more --context NAME=FILE.h5ad[:COL=VALUE]"));
        }
        let preprocess = match self.preprocess.as_str() {
            "c2s" => Preprocess::C2s,
            "none" => Preprocess::None,
            other => return Err(format!("--preprocess {other}: use c2s or none")),
        };
        let mut bulk = std::collections::BTreeMap::new();
        for b in &self.pseudobulk {
            match b.split_once('=') {
                Some((name, col)) if !name.trim().is_empty() && !col.trim().is_empty() => {
                    bulk.insert(name.trim().to_string(), col.trim().to_string());
                }
                _ => return Err(format!("--pseudobulk {b:?} is not NAME=COL")),
            }
        }
        let contexts = self
            .contexts
            .iter()
            .map(|c| {
                let (name, h5ad, filter) = parse_context(c)?;
                Ok(ContextSpec {
                    pseudobulk: bulk.remove(&name),
                    name,
                    h5ad: absolute(&h5ad)?,
                    filter,
                    samples: self.samples,
                    replicates: self.replicates,
                    seed: self.seed,
                    preprocess,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(name) = bulk.keys().next() {
            return Err(format!(
                "--pseudobulk names context {name:?}, which no --context defines"
            ));
        }
        let spec = ScreenSpec {
            contexts,
            library: LibrarySpec {
                path: absolute(library)?,
                known: None,
            },
            model: ModelSpec {
                dir: absolute(model)?,
                template_file: self.template_file.as_deref().map(absolute).transpose()?,
                top_k_genes: self.top_k_genes,
                organism: "Homo sapiens".into(),
                output: match self.output.as_str() {
                    "sentence" => OutputMode::Sentence,
                    "delta" => OutputMode::Delta,
                    other => return Err(format!("--output {other}: use sentence or delta")),
                },
                delta_fit: self.delta_fit.as_deref().map(absolute).transpose()?,
            },
            sampling: SamplingSpec {
                temperature: self.temperature,
                seed: self.seed,
                max_new_tokens: self.max_new_tokens,
            },
            genesets: GeneSetSpec {
                gmt: absolute(gmt)?,
                sets: self.sets.clone(),
                method: match self.scoring.as_str() {
                    "sentence-rank" => ScoringMethod::SentenceRank,
                    "reconstructed" => ScoringMethod::Reconstructed,
                    other => {
                        return Err(format!(
                            "--scoring {other}: use sentence-rank or reconstructed"
                        ));
                    }
                },
                weight: self.weight,
            },
            control: match self.control.as_str() {
                "unperturbed" => ControlSpec::Unperturbed,
                name => ControlSpec::Perturbation { name: name.into() },
            },
            perturbations: Vec::new(),
            delta: None,
        };
        let text = spec.to_toml().map_err(|e| e.to_string())?;
        ScreenSpec::parse(&text, Path::new("")).map_err(|e| e.to_string())
    }
}

/// `NAME=FILE.h5ad[:COL=VALUE]` → (name, file, filter).
fn parse_context(text: &str) -> Result<(String, PathBuf, Option<String>), String> {
    let bad = || format!("--context {text:?} is not NAME=FILE.h5ad or NAME=FILE.h5ad:COL=VALUE");
    let (name, rest) = text.split_once('=').ok_or_else(bad)?;
    let (file, filter) = match rest.find(".h5ad:") {
        Some(at) => (&rest[..at + 5], Some(rest[at + 6..].to_string())),
        None => (rest, None),
    };
    if name.trim().is_empty() || file.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), PathBuf::from(file), filter))
}

/// `path` made absolute; a bundled resource's name (`builtin:…`) as written.
fn absolute(path: &Path) -> Result<PathBuf, String> {
    if is_bundled(path) {
        return Ok(path.to_path_buf());
    }
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_parse_with_and_without_a_filter() {
        assert_eq!(
            parse_context("T=data/cells.h5ad:cell_type=T cell").unwrap(),
            (
                "T".into(),
                PathBuf::from("data/cells.h5ad"),
                Some("cell_type=T cell".into())
            )
        );
        assert_eq!(
            parse_context("lines=/x/y.h5ad").unwrap(),
            ("lines".into(), PathBuf::from("/x/y.h5ad"), None)
        );
        for bad in ["cells.h5ad", "=cells.h5ad", "T="] {
            assert!(
                parse_context(bad)
                    .unwrap_err()
                    .contains("is not NAME=FILE.h5ad")
            );
        }
    }
}
