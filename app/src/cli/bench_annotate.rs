//! `c2s-studio bench-annotate`: cell-type annotation throughput of our batched
//! [`annotate`] next to the `cell2sentence` package's own `tasks.predict_cell_types_of_data`
//! (one cell per `generate` call), in one run, on the same random Pythia-160M-shaped checkpoint,
//! the same prompts, greedy, the same answer length and the same CPU threads; plus our
//! candidate-ranking throughput.
//!
//! Cells come from the shared PBMC file (`../shared/data`, its `.raw` matrix as is, the
//! package's tie order), cycled to the requested count, with the GPT-NeoX-20B tokenizer; without
//! the shared data, from generated clustered counts with the small byte-level BPE tokenizer of
//! the engine fixtures. Prompts use the package's own template file (read from its install, so
//! the repo holds none of its wording) and its `random.seed(42)` variant sequence, so both sides
//! see byte-identical prompts; the Python side counts how many of its prompts and answers equal
//! ours. The package side lives in `tools/models/bench_annotate.py`.

use super::engine_args::DeviceArgs;
use c2s_core::Progress;
use c2s_core::convert::{ConvertOptions, prepare_h5ad};
use c2s_core::dataset::MatrixChoice;
use c2s_core::embed::synthetic::clustered_counts;
use c2s_core::engine::{Engine, SamplingParams};
use c2s_core::io::h5ad::ReadOptions;
use c2s_core::preprocess::PreprocessOptions;
use c2s_core::sentence::{SentenceOptions, TieBreak, cell_sentences};
use c2s_core::tasks::Task;
use c2s_core::tasks::annotate::{AnnotateMode, AnnotateRequest, Annotations, annotate};
use c2s_core::tasks::prompt::{PromptBuilder, PromptSettings};
use c2s_core::tasks::template::{PromptTemplate, TemplateChoice};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Arguments of `bench-annotate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cells to annotate (the dataset's cells are cycled when it has fewer).
    #[arg(long, default_value_t = 1_000)]
    pub cells: usize,
    /// Genes per cell sentence in the prompt (`n_genes`).
    #[arg(long, default_value_t = 200)]
    pub genes: usize,
    /// Candidate labels for the ranking mode.
    #[arg(long, default_value_t = 10)]
    pub labels: usize,
    /// Longest answer in tokens, on both sides (greedy; EOS stops an answer on both sides).
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Prompts per batch on our side.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Cells the package annotates (the first of ours); its rate is per cell over these.
    #[arg(long, default_value_t = 20)]
    pub reference_cells: usize,
    /// Skip the package's side.
    #[arg(long = "no-reference", action = clap::ArgAction::SetFalse)]
    pub reference: bool,
    /// Backend for our engine: auto, cuda, wgpu or cpu.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision for our engine: auto, f32, f16 or bf16 (the package runs fp32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Where the random checkpoint is written (reused if it exists).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Python with torch, transformers and cell2sentence (default: tools/models/.venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

/// The cells to annotate: sentences, labels and where they came from.
struct Cells {
    /// One line on the data.
    source: String,
    /// The tokenizer the checkpoint gets.
    tokenizer: PathBuf,
    /// Short name of the tokenizer (part of the default checkpoint folder).
    tokenizer_name: &'static str,
    /// Cell ids of the distinct cells.
    names: Vec<String>,
    /// Their sentences (top genes).
    sentences: Vec<String>,
    /// Their labels.
    labels: Vec<String>,
    /// The label column's distinct values.
    label_set: Vec<String>,
}

/// The repository root (the app crate's parent).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The PBMC file's cells (`.raw` as is, reference ties), when the shared data is present.
fn pbmc_cells(genes: usize) -> Result<Option<Cells>, String> {
    let shared = repo_root().join("../shared/data");
    let file = shared.join("expression/pbmc68k_reduced.h5ad");
    let tokenizer = shared.join("tokenizers/gpt-neox-20b/tokenizer.json");
    if !file.exists() || !tokenizer.exists() {
        return Ok(None);
    }
    let column = "bulk_labels";
    let options = ConvertOptions {
        read: ReadOptions {
            matrix: Some(MatrixChoice::Raw),
            gene_column: None,
            load_matrix: true,
        },
        preprocess: PreprocessOptions::none(),
        sentences: SentenceOptions {
            top_k: Some(genes),
            ties: TieBreak::Reference,
        },
        fit: false,
        seed: 0,
        obs_columns: vec![column.into()],
    };
    let progress = Progress::new();
    let ds = prepare_h5ad(&file, &options, &progress)
        .map_err(|e| e.to_string())?
        .dataset;
    let sentences = cell_sentences(
        &ds.expression,
        &ds.obs_names,
        &ds.var_names,
        &options.sentences,
        &progress,
    )
    .map_err(|e| e.to_string())?;
    let col = ds
        .obs_column(column)
        .ok_or_else(|| format!("{} has no obs {column}", file.display()))?;
    Ok(Some(Cells {
        source: format!(
            "{} (.raw as is, the package's tie order), obs {column}",
            file.display()
        ),
        tokenizer,
        tokenizer_name: "neox20b",
        labels: (0..ds.n_cells())
            .map(|i| col.data.text_at(i).unwrap_or_default())
            .collect(),
        label_set: col.data.distinct_values(),
        names: ds.obs_names.clone(),
        sentences,
    }))
}

/// Generated clustered counts (2,000 genes, one cluster per label), for machines without the
/// shared data.
fn synthetic_cells(cells: usize, genes: usize, labels: usize) -> Result<Cells, String> {
    let n = cells.min(2_000);
    let data = clustered_counts(n, 2_000, labels, 3_000, 7);
    let names: Vec<String> = (0..n).map(|i| format!("cell{i}")).collect();
    let gene_names: Vec<String> = (0..2_000).map(|g| format!("GENE{g}")).collect();
    let options = SentenceOptions {
        top_k: Some(genes),
        ties: TieBreak::Reference,
    };
    let sentences = cell_sentences(
        &data.counts,
        &names,
        &gene_names,
        &options,
        &Progress::new(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Cells {
        source: format!("{n} generated cells (2,000 genes, {labels} clusters)"),
        tokenizer: repo_root().join("tests/fixtures/models/gpt_neox_parallel/tokenizer.json"),
        tokenizer_name: "fixture-bpe",
        labels: data.labels.iter().map(|k| format!("type {k}")).collect(),
        label_set: (0..labels).map(|k| format!("type {k}")).collect(),
        names,
        sentences,
    })
}

/// Candidate labels: the first `n` of the data's labels, then made-up ones if it has fewer.
fn candidates(cells: &Cells, n: usize) -> Vec<String> {
    let mut labels: Vec<String> = cells.label_set.iter().take(n).cloned().collect();
    let extra = n.saturating_sub(labels.len());
    labels.extend((0..extra).map(|i| format!("other cell type {i}")));
    labels
}

/// Runs `python script ARGS` and returns its last JSON line.
fn python_json(python: &Path, script: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    super::reference_json(out)
}

/// Writes the random checkpoint with `tokenizer` unless it exists.
fn ensure_checkpoint(python: &Path, dir: &Path, tokenizer: &Path) -> Result<(), String> {
    if dir.join("model.safetensors").exists() {
        return Ok(());
    }
    eprintln!(
        "writing a random Pythia-160M-shaped checkpoint to {}",
        dir.display()
    );
    let script = repo_root().join("tools/models/bench_transformers.py");
    let (dir, tokenizer) = (dir.display().to_string(), tokenizer.display().to_string());
    python_json(
        python,
        &script,
        &["make", "--out", &dir, "--tokenizer", &tokenizer],
    )
    .map(|_| ())
}

/// The prompts of the first `n` cells (cycling), with the package's variant sequence.
fn prompts(
    cells: &Cells,
    template: PromptTemplate,
    genes: usize,
    n: usize,
) -> Result<Vec<String>, String> {
    let mut builder = PromptBuilder::new(PromptSettings {
        task: Task::CellTypePrediction,
        template,
        choice: TemplateChoice::Reference,
        seed: 0,
        top_k: genes,
        organism: "Homo sapiens".into(),
    })
    .map_err(|e| e.to_string())?;
    (0..n)
        .map(|i| {
            let r = i % cells.names.len();
            builder
                .single(&cells.names[r], Some(&cells.sentences[r]), &BTreeMap::new())
                .map(|p| p.model_input)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Seconds and CPU seconds (all threads) that a piece of work took.
#[derive(Debug, Clone, Copy)]
struct Took {
    /// Wall-clock seconds.
    wall: f64,
    /// CPU seconds of the process, less sensitive than `wall` to other work on the machine.
    cpu: f64,
}

/// This process's user + system CPU seconds, all threads (Linux `/proc/self/stat`, in the
/// kernel's fixed 100 ticks per second; NaN elsewhere).
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
            let rest = &s[s.rfind(')')? + 2..];
            let mut f = rest.split_whitespace().skip(11);
            let utime: f64 = f.next()?.parse().ok()?;
            let stime: f64 = f.next()?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Annotates all prompts in `mode`, returning the result and the time it took.
fn timed(
    engine: &Engine,
    prompts: &[String],
    response: &str,
    mode: &AnnotateMode,
    args: &Args,
) -> Result<(Annotations, Took), String> {
    let request = AnnotateRequest {
        prompts,
        response,
        key: "cell_type",
        mode,
        batch: args.batch,
        genes_per_prompt: args.genes,
    };
    let (started, cpu) = (Instant::now(), cpu_secs());
    let result = annotate(engine, &request, &AtomicBool::new(false), &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    let took = Took {
        wall: started.elapsed().as_secs_f64(),
        cpu: cpu_secs() - cpu,
    };
    Ok((result, took))
}

/// Mean, minimum and maximum token count of `texts` (`plain`: without special tokens).
fn token_stats(
    engine: &Engine,
    texts: &[String],
    plain: bool,
) -> Result<(f64, usize, usize), String> {
    let tok = engine.tokenizer();
    let lens = texts
        .iter()
        .map(|t| {
            if plain {
                tok.encode_plain(t)
            } else {
                tok.encode(t)
            }
            .map(|ids| ids.len())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mean = lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64;
    let (min, max) = (
        lens.iter().copied().min().unwrap_or(0),
        lens.iter().copied().max().unwrap_or(0),
    );
    Ok((mean, min, max))
}

/// Writes the first `n` cells (with our prompts and answers) for the package's side.
fn write_reference_cells(
    path: &Path,
    cells: &Cells,
    prompts: &[String],
    ours: &Annotations,
    n: usize,
) -> Result<(), String> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| e.to_string())?);
    for (i, (prompt, answer)) in prompts.iter().zip(&ours.cells).take(n).enumerate() {
        let r = i % cells.names.len();
        let line = serde_json::json!({
            "cell_name": cells.names[r],
            "cell_sentence": cells.sentences[r],
            "cell_type": cells.labels[r],
            "prompt": prompt,
            "output": answer.output,
        });
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// The package's run on the first `n` cells: its JSON report.
fn reference_run(
    python: &Path,
    model_dir: &Path,
    cells_file: &Path,
    args: &Args,
    threads: usize,
) -> Result<serde_json::Value, String> {
    let script = repo_root().join("tools/models/bench_annotate.py");
    let (model, file) = (
        model_dir.display().to_string(),
        cells_file.display().to_string(),
    );
    python_json(
        python,
        &script,
        &[
            "run",
            "--model",
            &model,
            "--cells",
            &file,
            "--n-genes",
            &args.genes.to_string(),
            "--max-new-tokens",
            &args.max_new_tokens.to_string(),
            "--threads",
            &threads.to_string(),
        ],
    )
}

/// The package's cell-type-prediction template, or `None` when its Python is missing (then the
/// reference is off).
fn package_template(python: &Path) -> Result<Option<PromptTemplate>, String> {
    if !python.exists() {
        return Ok(None);
    }
    let script = repo_root().join("tools/models/bench_annotate.py");
    let info = python_json(python, &script, &["template"])?;
    let path = info["path"]
        .as_str()
        .ok_or("no template path from the package")?;
    PromptTemplate::from_file(Path::new(path))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The 1, 5 and 15 minute load averages (Linux), to tell what else ran.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Cells per second.
fn rate(cells: usize, secs: f64) -> f64 {
    cells as f64 / secs.max(1e-9)
}

/// What both sides run on: the cells, the checkpoint, our prompts and the candidates.
struct Setup {
    /// Python with torch, transformers and cell2sentence.
    python: PathBuf,
    /// The distinct cells.
    cells: Cells,
    /// The random checkpoint.
    model_dir: PathBuf,
    /// Whether the prompts use the package's template (else our built-in one).
    from_package: bool,
    /// Model-input variants of the template.
    variants: usize,
    /// The template's response (`{cell_type}.`), for ranking.
    response: String,
    /// One prompt per annotated cell.
    prompts: Vec<String>,
    /// Candidate labels for ranking.
    labels: Vec<String>,
}

impl Setup {
    /// Reads the cells, writes the checkpoint if needed and builds the prompts.
    fn new(args: &Args) -> Result<Self, String> {
        let python = args
            .python
            .clone()
            .unwrap_or_else(|| repo_root().join("tools/models/.venv/bin/python"));
        if args.reference && !python.exists() {
            return Err(format!(
                "{} not found; run tools/models/make_fixtures.sh once to create the venv and \
                 `.venv/bin/pip install --no-deps -r tools/models/requirements-annotate-bench.txt`, \
                 or pass --python",
                python.display()
            ));
        }
        let cells = match pbmc_cells(args.genes)? {
            Some(c) => c,
            None => synthetic_cells(args.cells, args.genes, args.labels)?,
        };
        let model_dir = args.model_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "c2s-bench-annotate-pythia-160m-{}",
                cells.tokenizer_name
            ))
        });
        ensure_checkpoint(&python, &model_dir, &cells.tokenizer)?;
        let package = package_template(&python)?;
        let from_package = package.is_some();
        let template = package.unwrap_or_else(|| Task::CellTypePrediction.builtin_template());
        let response = template.response[0].clone();
        let variants = template.model_input.len();
        let prompts = prompts(&cells, template, args.genes, args.cells)?;
        let labels = candidates(&cells, args.labels);
        Ok(Self {
            python,
            cells,
            model_dir,
            from_package,
            variants,
            response,
            prompts,
            labels,
        })
    }

    /// Prints the data, prompts, model and our settings.
    fn print(&self, engine: &Engine, args: &Args) -> Result<(), String> {
        let info = engine.info();
        let (mean, min, max) = token_stats(engine, &self.prompts, false)?;
        println!("load average at the start: {}", load_average());
        println!(
            "data: {} distinct cells from {}, cycled to {} cells; top {} genes",
            self.cells.names.len(),
            self.cells.source,
            args.cells,
            args.genes
        );
        println!(
            "prompts: {} ({} variants, random.seed(42) picks as the package's formatter), \
             {mean:.0} tokens on average ({min}-{max})",
            if self.from_package {
                "the package's cell-type template"
            } else {
                "our built-in template (no package found)"
            },
            self.variants,
        );
        println!(
            "model: random Pythia-160M-shaped GPT-NeoX, {:.1}M parameters, {} tokenizer, {}",
            info.parameters as f64 / 1e6,
            self.cells.tokenizer_name,
            self.model_dir.display()
        );
        println!(
            "ours: c2s-studio {} on {} [{:?}], {} threads, batch {}, greedy, up to {} new tokens",
            env!("CARGO_PKG_VERSION"),
            info.device.description,
            info.dtype,
            rayon::current_num_threads(),
            args.batch,
            args.max_new_tokens
        );
        Ok(())
    }

    /// Times our generation (after a short warm-up) and our ranking; prints both and returns
    /// the generated answers with the generation's time.
    fn ours(&self, engine: &Engine, args: &Args) -> Result<(Annotations, Took), String> {
        let generate = |max_new_tokens| AnnotateMode::Generate {
            max_new_tokens,
            sampling: SamplingParams::default(),
        };
        let (prompts, response) = (&self.prompts, &self.response);
        timed(engine, &prompts[..1], response, &generate(2), args)?;
        let (ours, took) = timed(
            engine,
            prompts,
            response,
            &generate(args.max_new_tokens),
            args,
        )?;
        let outputs: Vec<String> = ours.cells.iter().map(|a| a.output.clone()).collect();
        let (answer_tokens, _, _) = token_stats(engine, &outputs, true)?;
        println!(
            "ours, generate: {} cells in {:.1} s = {:.3} cells/s, {:.2} CPU-s per cell \
             (answers {answer_tokens:.1} tokens on average, re-encoded)",
            args.cells,
            took.wall,
            rate(args.cells, took.wall),
            took.cpu / args.cells as f64
        );
        let rank = AnnotateMode::Rank {
            labels: self.labels.clone(),
        };
        let (_, rank) = timed(engine, prompts, response, &rank, args)?;
        println!(
            "ours, rank {} candidate labels ({}): {} cells in {:.1} s = {:.3} cells/s, {:.2} \
             CPU-s per cell",
            self.labels.len(),
            self.labels.join(", "),
            args.cells,
            rank.wall,
            rate(args.cells, rank.wall),
            rank.cpu / args.cells as f64
        );
        Ok((ours, took))
    }

    /// Runs the package on the first `--reference-cells` cells and prints its rate, how many
    /// prompts and answers equal ours, and its rates over ours (`took`, all cells).
    fn package(&self, ours: &Annotations, took: Took, args: &Args) -> Result<(), String> {
        let m = args.reference_cells.clamp(1, args.cells);
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cells_file = tmp.path().join("cells.jsonl");
        write_reference_cells(&cells_file, &self.cells, &self.prompts, ours, m)?;
        let threads = rayon::current_num_threads();
        let r = reference_run(&self.python, &self.model_dir, &cells_file, args, threads)?;
        let v = &r["versions"];
        let loop_secs = r["loop_secs"].as_f64().unwrap_or(f64::NAN);
        let loop_cpu = r["loop_cpu_secs"].as_f64().unwrap_or(f64::NAN);
        let package_rate = rate(m, loop_secs);
        println!(
            "package: cell2sentence {} tasks.predict_cell_types_of_data (one cell per generate \
             call), torch {}, transformers {}, fp32 CPU, torch threads {}, greedy, up to {} new \
             tokens",
            v["cell2sentence"].as_str().unwrap_or("?"),
            v["torch"].as_str().unwrap_or("?"),
            v["transformers"].as_str().unwrap_or("?"),
            r["threads"],
            args.max_new_tokens
        );
        println!(
            "package: per-cell rate on the first {m} of the {} cells: {m} cells in {loop_secs:.1} \
             s of its generate loop = {package_rate:.3} cells/s, {:.2} CPU-s per cell (whole \
             call with its model reload and prompt formatting: {:.1} s)",
            args.cells,
            loop_cpu / m as f64,
            r["total_secs"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "package vs ours on those {m} cells: prompts identical {}/{m}, answers identical \
             {}/{m}",
            r["identical_prompts"], r["identical_outputs"]
        );
        println!(
            "ratio (generate: our cells/s over the package's per-cell rate on {m} cells): {:.2}x \
             wall-clock, {:.2}x CPU time",
            rate(args.cells, took.wall) / package_rate,
            (loop_cpu / m as f64) / (took.cpu / args.cells as f64)
        );
        Ok(())
    }
}

/// Runs the benchmark and prints what it measured.
pub fn run(args: Args) -> Result<(), String> {
    if args.cells == 0 || args.labels == 0 || args.genes == 0 {
        return Err("bench-annotate needs at least one cell, label and gene".into());
    }
    let setup = Setup::new(&args)?;
    let engine = DeviceArgs::new(&args.device, &args.dtype)
        .load(&setup.model_dir.display().to_string(), true)?;
    setup.print(&engine, &args)?;
    let (ours, took) = setup.ours(&engine, &args)?;
    if args.reference {
        setup.package(&ours, took, &args)?;
    }
    println!("load average at the end: {}", load_average());
    Ok(())
}
