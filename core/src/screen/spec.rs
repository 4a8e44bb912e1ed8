//! The screen spec: a small TOML file (saved by the form, run by the CLI) naming the contexts,
//! the perturbation library, the model, sampling, the gene sets and the control.
//!
//! ```toml
//! [[context]]
//! name = "tumour"
//! h5ad = "tumour.h5ad"     # relative paths are relative to the spec file
//! filter = "state=immune"  # optional obs filter COL=VALUE
//! pseudobulk = "patient"   # optional: one sample per group, its cells' mean expression
//! samples = 20             # cells (or pseudo-bulk groups) drawn with `seed`
//! replicates = 3
//! seed = 0
//! preprocess = "c2s"       # or "none"
//!
//! [library]
//! path = "drugs.txt"       # one name per line, an L1000 .gct / .gct.gz (pert_iname), or
//!                          # "builtin:l1000-demo" (the demo library)
//!
//! [model]
//! dir = "models/c2s-pythia"
//! template_file = "p.json" # optional; the built-in perturbation template by default
//! top_k_genes = 200        # genes of the control sentence in the prompt
//! output = "sentence"      # or "delta": the model writes `Up: … Down: …` (a delta model),
//! delta_fit = "run/delta_fit.json"  # read back by the fit its fine-tuning run wrote
//!
//! [sampling]               # optional: temperature 0.3, seed 0 by default
//! temperature = 0.3
//! seed = 0
//! max_new_tokens = 808
//!
//! [genesets]
//! gmt = "virtual_screen_sets.gmt"  # or a bundled library: "builtin:antigen-presentation"
//! sets = ["HALLMARK_INTERFERON_ALPHA_RESPONSE"]
//! method = "sentence-rank"  # rank-only ssGSEA on the predicted sentence's order, or
//!                           # "reconstructed": ssGSEA on the rebuilt expression (clipped at 0)
//! weight = 0.25             # reconstructed only (default 0.25)
//!
//! [control]                 # optional: each context's unperturbed profile by default
//! kind = "unperturbed"      # or kind = "perturbation", name = "DMSO"
//! ```
//!
//! [`ScreenSpec::hash`] fingerprints what defines the results (never output paths), so a results
//! folder can refuse units of a different screen.

use super::library::read_library;
use crate::bundled;
use crate::error::{Error, Result};
use crate::tasks::delta::DeltaFit;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default sampling temperature (the C2S-Scale screen used 0.3).
pub const DEFAULT_TEMPERATURE: f32 = 0.3;

/// A parsed and validated screen spec, with its paths resolved and its library read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenSpec {
    /// The contexts, two or more for a selectivity comparison (one is allowed).
    #[serde(rename = "context")]
    pub contexts: Vec<ContextSpec>,
    /// Where the perturbation names come from.
    pub library: LibrarySpec,
    /// The model and its prompt template.
    pub model: ModelSpec,
    /// Sampling of the predicted sentences.
    #[serde(default)]
    pub sampling: SamplingSpec,
    /// The gene sets that score every predicted sentence.
    pub genesets: GeneSetSpec,
    /// The reference that effects are measured against.
    #[serde(default)]
    pub control: ControlSpec,
    /// The library's names, read from [`LibrarySpec::path`] by [`ScreenSpec::load`].
    #[serde(skip)]
    pub perturbations: Vec<String>,
    /// The delta fit, read from [`ModelSpec::delta_fit`] by [`ScreenSpec::parse`] (delta
    /// output only); its coefficients are part of [`ScreenSpec::hash`].
    #[serde(skip)]
    pub delta: Option<DeltaFit>,
}

/// One context: cells of one `.h5ad`, optionally filtered, sampled and replicated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    /// Name in the results (unique).
    pub name: String,
    /// The `.h5ad` file.
    pub h5ad: PathBuf,
    /// Optional obs filter `COL=VALUE`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Pseudo-bulk samples: an obs column (e.g. donor or patient) whose groups, within the
    /// filter, each give one sample, the mean of its cells' expression. Absent: each sample
    /// is one cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudobulk: Option<String>,
    /// Samples drawn from the (filtered) context, cells or pseudo-bulk groups; all of them
    /// when fewer.
    pub samples: usize,
    /// Predictions per (perturbation, sample), each with its own seed.
    #[serde(default = "one")]
    pub replicates: usize,
    /// Seed of the draw of cells.
    #[serde(default)]
    pub seed: u64,
    /// Preprocessing before sentences are built: `c2s` (filter, normalise to 1e4, log10) or
    /// `none` (the matrix as stored).
    #[serde(default)]
    pub preprocess: Preprocess,
}

/// Preprocessing of a context's matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preprocess {
    /// The C2S tutorial's steps: 200 genes per cell, 3 cells per gene, total 1e4, log10.
    #[default]
    C2s,
    /// The matrix as stored.
    None,
}

fn one() -> usize {
    1
}

impl ContextSpec {
    /// The filter split into `(column, value)`, if any.
    pub fn filter_parts(&self) -> Option<(&str, &str)> {
        self.filter
            .as_deref()
            .and_then(|f| f.split_once('='))
            .map(|(c, v)| (c.trim(), v.trim()))
    }
}

/// The library file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibrarySpec {
    /// Text file (one name per line) or L1000 GCT (`pert_iname`).
    pub path: PathBuf,
    /// Optional list of the names the model knows (same formats); a library name missing
    /// from it is an error.
    #[serde(default)]
    pub known: Option<PathBuf>,
}

/// The model directory and its prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Hugging Face layout directory (config.json, weights, tokenizer.json).
    pub dir: PathBuf,
    /// Perturbation prompt template file (cell2sentence JSON format); the built-in
    /// perturbation template when absent.
    #[serde(default)]
    pub template_file: Option<PathBuf>,
    /// Genes of the control cell's sentence in the prompt (default 200).
    #[serde(default = "default_top_k")]
    pub top_k_genes: usize,
    /// Organism named in the prompt.
    #[serde(default = "default_organism")]
    pub organism: String,
    /// What the model writes: the perturbed cell's sentence (the default), or a delta sentence
    /// (the genes that rise and fall most), read back with [`ModelSpec::delta_fit`].
    #[serde(default, skip_serializing_if = "OutputMode::is_sentence")]
    pub output: OutputMode,
    /// For delta output: the rank → change fit (`delta_fit.json`) of the delta fine-tuning run
    /// that made the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_fit: Option<PathBuf>,
}

/// What a screen's model writes for each unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputMode {
    /// The perturbed cell's sentence, scored as [`GeneSetSpec::method`] says.
    #[default]
    Sentence,
    /// A delta sentence (`Up: … Down: …`, [`crate::tasks::delta`]): its genes' changes, by
    /// rank from the fit, are added to the control profile (clipped at 0), and the rebuilt
    /// profile is scored by ssGSEA on expression with [`GeneSetSpec::weight`] (0.25 by
    /// default) whatever the method.
    Delta,
}

impl OutputMode {
    fn is_sentence(&self) -> bool {
        *self == OutputMode::Sentence
    }
}

fn default_top_k() -> usize {
    200
}

fn default_organism() -> String {
    "Homo sapiens".into()
}

/// Sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSpec {
    /// Temperature (default 0.3).
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Screen seed; each unit's seed derives from it and the unit's identity.
    #[serde(default)]
    pub seed: u64,
    /// Longest predicted sentence in tokens; by default 4 per prompt gene plus 8.
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
}

fn default_temperature() -> f32 {
    DEFAULT_TEMPERATURE
}

impl Default for SamplingSpec {
    fn default() -> Self {
        Self {
            temperature: DEFAULT_TEMPERATURE,
            seed: 0,
            max_new_tokens: None,
        }
    }
}

/// Gene sets and how predicted sentences are scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneSetSpec {
    /// The GMT file.
    pub gmt: PathBuf,
    /// Names of the sets to score (at least one).
    pub sets: Vec<String>,
    /// Scoring method.
    #[serde(default)]
    pub method: ScoringMethod,
    /// ssGSEA weight for `reconstructed` scoring (gseapy's default 0.25 when absent);
    /// `sentence-rank` scores order alone and takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// ssGSEA weight of reconstructed-expression scoring when the spec names none (gseapy's).
pub const DEFAULT_RECONSTRUCTED_WEIGHT: f64 = 0.25;

impl GeneSetSpec {
    /// The ssGSEA weight the method uses (for `output`: delta output always scores
    /// expression).
    pub fn ssgsea_weight(&self, output: OutputMode) -> f64 {
        match (output, self.method) {
            (OutputMode::Sentence, ScoringMethod::SentenceRank) => 0.0,
            _ => self.weight.unwrap_or(DEFAULT_RECONSTRUCTED_WEIGHT),
        }
    }
}

/// How a predicted sentence is scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoringMethod {
    /// Rank-only ssGSEA (gseapy 1.3.1, weight 0) on the sentence's gene order: listed genes in
    /// order, then the unlisted ones tied (statistics notes §1). The ES is reported.
    #[default]
    SentenceRank,
    /// ssGSEA (gseapy 1.3.1, the spec's weight) on expression rebuilt from the sentence by the
    /// context's own fitted rank → expression transform
    /// (`expression = slope · log10(1 + rank) + intercept`, fitted on its cells as the
    /// `cell2sentence` package fits it), clipped at 0. The ES is reported.
    Reconstructed,
}

/// The reference of effect sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ControlSpec {
    /// Each context's own unperturbed sample profiles, scored the same way.
    #[default]
    Unperturbed,
    /// A library perturbation (e.g. a vehicle such as DMSO) predicted like the others.
    Perturbation {
        /// Its name; it must be in the library.
        name: String,
    },
}

impl ScreenSpec {
    /// Reads, resolves (paths relative to the spec's folder), validates and reads the library.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, base).map_err(|e| match e {
            Error::InvalidArgument(detail) => Error::Malformed {
                path: path.to_path_buf(),
                detail,
            },
            other => other,
        })
    }

    /// Parses spec text; relative paths are resolved against `base`. Reads the library.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let mut spec: ScreenSpec = toml::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("not a valid screen spec: {e}")))?;
        let resolve = |p: &mut PathBuf| *p = bundled::resolve(p, base);
        for c in &mut spec.contexts {
            resolve(&mut c.h5ad);
        }
        resolve(&mut spec.library.path);
        if let Some(k) = &mut spec.library.known {
            resolve(k);
        }
        resolve(&mut spec.model.dir);
        if let Some(t) = &mut spec.model.template_file {
            resolve(t);
        }
        if let Some(f) = &mut spec.model.delta_fit {
            resolve(f);
        }
        resolve(&mut spec.genesets.gmt);
        spec.validate_fields()?;
        if let (OutputMode::Delta, Some(path)) = (spec.model.output, &spec.model.delta_fit) {
            spec.delta = Some(DeltaFit::read(path)?);
        }
        spec.perturbations = read_library(&spec.library.path)?;
        if let Some(known) = &spec.library.known {
            check_known(&spec.perturbations, &read_library(known)?, known)?;
        }
        if let ControlSpec::Perturbation { name } = &spec.control
            && !spec.perturbations.contains(name)
        {
            return Err(Error::InvalidArgument(format!(
                "the control perturbation {name:?} is not in the library {}; add it or use \
                 kind = \"unperturbed\"",
                spec.library.path.display()
            )));
        }
        Ok(spec)
    }

    /// Checks what needs no file: names, counts, filters, temperature, set names.
    fn validate_fields(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.contexts.is_empty() {
            return bad("the spec has no [[context]]; add at least one".into());
        }
        let mut names = BTreeMap::new();
        for c in &self.contexts {
            if c.name.trim().is_empty() || c.name != c.name.trim() {
                return bad(format!(
                    "context name {:?} is empty or has surrounding spaces",
                    c.name
                ));
            }
            *names.entry(c.name.as_str()).or_insert(0) += 1;
            if c.samples == 0 || c.replicates == 0 {
                return bad(format!(
                    "context {}: samples and replicates must be at least 1",
                    c.name
                ));
            }
            if let Some(f) = &c.filter
                && c.filter_parts().is_none_or(|(col, _)| col.is_empty())
            {
                return bad(format!("context {}: filter {f:?} is not COL=VALUE", c.name));
            }
            if c.pseudobulk.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return bad(format!(
                    "context {}: pseudobulk names no obs column; name one or leave it out",
                    c.name
                ));
            }
        }
        let dups: Vec<&str> = names
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| *k)
            .collect();
        if !dups.is_empty() {
            return bad(format!(
                "context name(s) used twice: {}; give each context its own name",
                dups.join(", ")
            ));
        }
        let t = self.sampling.temperature;
        if !t.is_finite() || t < 0.0 {
            return bad(format!(
                "temperature {t} must be a finite number ≥ 0 (0 is greedy)"
            ));
        }
        if self.model.top_k_genes == 0 {
            return bad("[model] top_k_genes must be at least 1".into());
        }
        if self.sampling.max_new_tokens == Some(0) {
            return bad("max_new_tokens must be at least 1".into());
        }
        if self.genesets.sets.is_empty() {
            return bad("[genesets] sets is empty; name at least one gene set".into());
        }
        match (self.model.output, &self.model.delta_fit) {
            (OutputMode::Delta, None) => {
                return bad(
                    "[model] output = \"delta\" needs delta_fit: the delta_fit.json that the \
                     delta fine-tuning run wrote beside its adapter"
                        .into(),
                );
            }
            (OutputMode::Sentence, Some(_)) => {
                return bad(
                    "[model] delta_fit is only read with output = \"delta\"; add that, or \
                     leave delta_fit out"
                        .into(),
                );
            }
            _ => {}
        }
        match (self.genesets.method, self.genesets.weight) {
            (ScoringMethod::SentenceRank, Some(w))
                if w != 0.0 && self.model.output == OutputMode::Sentence =>
            {
                return bad(format!(
                    "[genesets] weight = {w}: sentence-rank scoring uses the order alone \
                     (weight 0); use method = \"reconstructed\" to weight by expression"
                ));
            }
            (_, Some(w)) if !(w.is_finite() && w >= 0.0) => {
                return bad(format!("[genesets] weight = {w} must be a number ≥ 0"));
            }
            _ => {}
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = self.genesets.sets.iter().find(|s| !seen.insert(*s)) {
            return bad(format!("gene set {d} is listed twice in [genesets] sets"));
        }
        Ok(())
    }

    /// The spec as TOML, in the layout [`ScreenSpec::parse`] reads (paths as they are held,
    /// i.e. resolved; the library's names are not written, they are read from its file).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("the screen spec cannot be written: {e}")))
    }

    /// Writes [`ScreenSpec::to_toml`] to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_toml()?;
        crate::io::atomic::write_atomically(path, |tmp| {
            std::fs::write(tmp, &text).map_err(|e| Error::Write {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        })
    }

    /// Context by name.
    pub fn context(&self, name: &str) -> Option<&ContextSpec> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// Hex SHA-256 of what defines the results: contexts (incl. input paths), the library's
    /// names, model, template, sampling, gene sets and method, control, and a delta fit's
    /// coefficients. Output paths are not part of a spec, so two runs of one screen into
    /// different folders share a hash.
    pub fn hash(&self) -> String {
        #[derive(Serialize)]
        struct Defining<'a> {
            version: u32,
            spec: &'a ScreenSpec,
            perturbations: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            delta_fit: Option<&'a DeltaFit>,
        }
        let json = serde_json::to_string(&Defining {
            version: 1,
            spec: self,
            perturbations: &self.perturbations,
            delta_fit: self.delta.as_ref(),
        })
        .expect("a spec always serialises");
        let digest = Sha256::digest(json.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Library names missing from the model's known names are an error naming them.
fn check_known(library: &[String], known: &[String], known_path: &Path) -> Result<()> {
    let known: std::collections::HashSet<&str> = known.iter().map(String::as_str).collect();
    let unknown: Vec<&str> = library
        .iter()
        .map(String::as_str)
        .filter(|n| !known.contains(n))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = unknown.iter().take(20).copied().collect();
    Err(Error::InvalidArgument(format!(
        "{} library name(s) not among the model's known names in {}: {}{}; fix the spelling \
         or remove them",
        unknown.len(),
        known_path.display(),
        shown.join(", "),
        if unknown.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(library: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lib.txt"), library).unwrap();
        dir
    }

    const SPEC: &str = r#"
[[context]]
name = "tumour"
h5ad = "a.h5ad"
filter = "state=immune"
samples = 4
replicates = 3

[[context]]
name = "line"
h5ad = "/abs/b.h5ad"
samples = 2

[library]
path = "lib.txt"

[model]
dir = "model"

[genesets]
gmt = "sets.gmt"
sets = ["MHC"]
"#;

    #[test]
    fn parses_defaults_and_resolves_paths() {
        let dir = folder("drugA\ndrugB\n");
        let s = ScreenSpec::parse(SPEC, dir.path()).unwrap();
        assert_eq!(s.contexts.len(), 2);
        assert_eq!(s.contexts[0].h5ad, dir.path().join("a.h5ad"));
        assert_eq!(s.contexts[1].h5ad, PathBuf::from("/abs/b.h5ad"));
        assert_eq!(s.contexts[1].replicates, 1);
        assert_eq!(s.contexts[0].filter_parts(), Some(("state", "immune")));
        assert_eq!(s.sampling.temperature, 0.3);
        assert_eq!(s.genesets.method, ScoringMethod::SentenceRank);
        assert_eq!(s.control, ControlSpec::Unperturbed);
        assert_eq!(s.model.top_k_genes, 200);
        assert_eq!(s.contexts[0].preprocess, Preprocess::C2s);
        assert_eq!(s.perturbations, vec!["drugA", "drugB"]);
    }

    #[test]
    fn a_builtin_gene_set_library_is_kept_as_named() {
        let dir = folder("drugA\n");
        let text = SPEC.replace("sets.gmt", "builtin:antigen-presentation");
        let s = ScreenSpec::parse(&text, dir.path()).unwrap();
        assert_eq!(
            s.genesets.gmt,
            PathBuf::from("builtin:antigen-presentation")
        );
        let sets = crate::genesets::GeneSetLibrary::read(&s.genesets.gmt).unwrap();
        assert_eq!(sets.sets.len(), 5);
    }

    #[test]
    fn hash_follows_results_not_location() {
        let a = folder("drugA\ndrugB\n");
        let b = folder("drugA\ndrugB\n");
        let sa = ScreenSpec::parse(&SPEC.replace("/abs", "/x"), a.path()).unwrap();
        let same = ScreenSpec::parse(&SPEC.replace("/abs", "/x"), a.path()).unwrap();
        assert_eq!(sa.hash(), same.hash());
        assert_eq!(sa.hash().len(), 64);
        let seed = ScreenSpec::parse(&format!("{SPEC}\n[sampling]\nseed = 1\n"), a.path()).unwrap();
        assert_ne!(sa.hash(), seed.hash());
        let lib = folder("drugA\ndrugC\n");
        assert_ne!(
            sa.hash(),
            ScreenSpec::parse(SPEC, lib.path()).unwrap().hash()
        );
        // Another folder holds other input files, so it is another screen.
        assert_ne!(sa.hash(), ScreenSpec::parse(SPEC, b.path()).unwrap().hash());
    }

    #[test]
    fn clear_errors() {
        let dir = folder("drugA\n");
        let err = |text: &str| ScreenSpec::parse(text, dir.path()).unwrap_err().to_string();
        assert!(err("").contains("missing field"));
        let e = err(&SPEC.replace("name = \"line\"", "name = \"tumour\""));
        assert!(e.contains("used twice: tumour"), "{e}");
        assert!(err(&SPEC.replace("samples = 2", "samples = 0")).contains("at least 1"));
        assert!(err(&SPEC.replace("state=immune", "state")).contains("COL=VALUE"));
        assert!(err(&SPEC.replace("[\"MHC\"]", "[]")).contains("sets is empty"));
        assert!(err(&SPEC.replace("[\"MHC\"]", "[\"A\", \"A\"]")).contains("listed twice"));
        assert!(err(&SPEC.replace("replicates = 3", "replicate = 3")).contains("unknown field"));
        let ctl = format!("{SPEC}\n[control]\nkind = \"perturbation\"\nname = \"DMSO\"\n");
        assert!(err(&ctl).contains("\"DMSO\" is not in the library"));
        let t = format!("{SPEC}\n[sampling]\ntemperature = -1.0\n");
        assert!(err(&t).contains("temperature -1"));
        let dup = folder("drugA\ndrugA\n");
        let e = ScreenSpec::parse(SPEC, dup.path()).unwrap_err().to_string();
        assert!(e.contains("drugA (lines 1, 2)"), "{e}");
    }

    #[test]
    fn saved_specs_load_back_equal() {
        let dir = folder("drugA\nDMSO\n");
        let text = format!(
            "{SPEC}\n[sampling]\ntemperature = 0.5\nseed = 7\nmax_new_tokens = 40\n\
             [control]\nkind = \"perturbation\"\nname = \"DMSO\"\n"
        );
        let spec = ScreenSpec::parse(&text, dir.path()).unwrap();
        let path = dir.path().join("out").join("screen.toml");
        std::fs::create_dir(dir.path().join("out")).unwrap();
        spec.save(&path).unwrap();
        let back = ScreenSpec::load(&path).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.hash(), spec.hash());
        // Defaults and absent options round-trip too.
        let plain = ScreenSpec::parse(SPEC, dir.path()).unwrap();
        let back = ScreenSpec::parse(&plain.to_toml().unwrap(), Path::new("/elsewhere")).unwrap();
        assert_eq!(back, plain);
        // A folder that does not exist is a clear error, and nothing is written.
        let e = spec
            .save(&dir.path().join("missing").join("screen.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn unknown_library_names_are_named() {
        let dir = folder("drugA\nimatinbi\n");
        std::fs::write(dir.path().join("known.txt"), "drugA\nimatinib\n").unwrap();
        let text = SPEC.replace(
            "path = \"lib.txt\"",
            "path = \"lib.txt\"\nknown = \"known.txt\"",
        );
        let e = ScreenSpec::parse(&text, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 library name(s)") && e.contains("imatinbi"),
            "{e}"
        );
        std::fs::write(dir.path().join("lib.txt"), "imatinib\n").unwrap();
        assert!(ScreenSpec::parse(&text, dir.path()).is_ok());
    }
}
