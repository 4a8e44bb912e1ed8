//! `c2s-studio bench-convert`: conversion throughput and peak memory on a generated sparse
//! dataset, side by side with the `cell2sentence` Python package on the same file.

use c2s_core::Progress;
use c2s_core::dataset::{Dataset, MatrixChoice, ObsColumn};
use c2s_core::io::h5ad::{
    CreateOptions, ReadOptions, Storage, ValueType, read_h5ad, write_dataset_h5ad,
};
use c2s_core::matrix::CsrMatrix;
use c2s_core::rng::NumpyRandomState;
use c2s_core::sentence::{SentenceOptions, TieBreak, for_each_sentence_chunk};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `bench-convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cells to generate.
    #[arg(long, default_value_t = 100_000)]
    pub cells: usize,
    /// Genes to generate.
    #[arg(long, default_value_t = 20_000)]
    pub genes: usize,
    /// Expressed genes per cell.
    #[arg(long, default_value_t = 800)]
    pub genes_per_cell: usize,
    /// Folder for the generated file and outputs (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python with cell2sentence installed (default: tools/sentences/.venv/bin/python if present).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the Python reference (e.g. for the memory check on very large files).
    #[arg(long)]
    pub skip_reference: bool,
    /// Runs of each in-process phase (reading, sentences); the fastest is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

/// Environment variable that makes the CLI report its peak resident memory on exit.
pub const PEAK_RSS_ENV: &str = "C2S_REPORT_PEAK_RSS";

/// Peak resident set size of this process in bytes (Linux), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A counts matrix with `k` distinct genes per cell and small, often tied, counts.
fn generate(cells: usize, genes: usize, k: usize) -> CsrMatrix {
    let k = k.min(genes);
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..cells)
        .into_par_iter()
        .map(|i| {
            let mut rng = NumpyRandomState::new(i as u32);
            let mut picked = std::collections::HashSet::with_capacity(k * 2);
            while picked.len() < k {
                // Skewed gene choice: low indices are expressed more often, as in real data.
                let u = f64::from(rng.next_u32()) / f64::from(u32::MAX);
                picked.insert(((u * u) * genes as f64) as u32 % genes as u32);
            }
            let mut cols: Vec<u32> = picked.into_iter().collect();
            cols.sort_unstable();
            let vals = cols
                .iter()
                .map(|_| {
                    let u = (f64::from(rng.next_u32()) + 1.0) / (f64::from(u32::MAX) + 2.0);
                    (1.0 + (-u.ln() * 2.0).floor()) as f32
                })
                .collect();
            (cols, vals)
        })
        .collect();
    let mut m = CsrMatrix {
        n_rows: cells,
        n_cols: genes,
        indptr: Vec::with_capacity(cells + 1),
        ..Default::default()
    };
    m.indptr.push(0);
    for (cols, vals) in rows {
        m.indices.extend(cols);
        m.data.extend(vals);
        m.indptr.push(m.data.len() as u64);
    }
    m
}

fn reference_python(args: &Args) -> Option<PathBuf> {
    if args.skip_reference {
        return None;
    }
    args.python.clone().or_else(|| {
        let venv =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/sentences/.venv/bin/python");
        venv.exists().then_some(venv)
    })
}

/// Runs `bench-convert`.
pub fn run(args: Args) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let input = dir.join(format!("bench_{}x{}.h5ad", args.cells, args.genes));

    let t = Instant::now();
    let matrix = generate(args.cells, args.genes, args.genes_per_cell);
    let nnz = matrix.nnz();
    let ds = Dataset {
        obs_names: (0..args.cells).map(|i| format!("cell{i}")).collect(),
        var_names: (0..args.genes).map(|j| format!("GENE{j}")).collect(),
        obs: Vec::<ObsColumn>::new(),
        expression: matrix,
        ..Default::default()
    };
    write_dataset_h5ad(
        &input,
        &ds,
        &CreateOptions {
            x: Some((Storage::Csr, ValueType::F32)),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    drop(ds);
    println!(
        "generated {} cells x {} genes, {nnz} stored values ({:.1} s) -> {}",
        args.cells,
        args.genes,
        t.elapsed().as_secs_f64(),
        input.display()
    );

    // Ours: the real CLI in a child process, so its peak memory is its own.
    let out = dir.join("ours.parquet");
    let t = Instant::now();
    let child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args([
            "convert",
            input.to_str().unwrap_or_default(),
            "--out",
            out.to_str().unwrap_or_default(),
        ])
        .args(["--preprocess", "none", "--ties", "reference"])
        .env(PEAK_RSS_ENV, "1")
        .output()
        .map_err(|e| e.to_string())?;
    let ours_s = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&child.stderr);
    if !child.status.success() {
        return Err(format!("our conversion failed: {stderr}"));
    }
    let peak: Option<u64> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-bytes: "))
        .and_then(|v| v.trim().parse().ok());
    let ours_rate = args.cells as f64 / ours_s;
    let matrix_bytes = nnz as u64 * 8 + (args.cells as u64 + 1) * 8;
    println!(
        "c2s-studio convert (read h5ad + sentences + write parquet): {ours_s:.2} s, {ours_rate:.0} cells/s"
    );
    if let Some(peak) = peak {
        println!(
            "  peak RSS {:.0} MiB; one in-memory copy of the matrix is {:.0} MiB (ratio {:.2})",
            peak as f64 / 1048576.0,
            matrix_bytes as f64 / 1048576.0,
            peak as f64 / matrix_bytes as f64
        );
    }

    // The same work in phases, in this process: reading, then sentences alone into an in-memory
    // table (what the reference's `adata_to_arrow` does on a matrix already in memory). Each
    // phase runs `--repeats` times; the fastest run is reported (the least disturbed by other
    // work on the machine).
    let read_options = ReadOptions {
        matrix: Some(MatrixChoice::X),
        load_matrix: true,
        ..Default::default()
    };
    let mut read_s = f64::INFINITY;
    let mut ds = None;
    for _ in 0..args.repeats.max(1) {
        drop(ds.take());
        let t = Instant::now();
        ds = Some(read_h5ad(&input, &read_options, &Progress::new()).map_err(|e| e.to_string())?);
        read_s = read_s.min(t.elapsed().as_secs_f64());
    }
    let ds = ds.expect("read at least once");
    let sentences_s = |ties: TieBreak| -> Result<f64, String> {
        let options = SentenceOptions { top_k: None, ties };
        let mut best = f64::INFINITY;
        for _ in 0..args.repeats.max(1) {
            let t = Instant::now();
            let mut table = Vec::new();
            for_each_sentence_chunk(
                &ds.expression,
                &ds.obs_names,
                &ds.var_names,
                &options,
                &Progress::new(),
                |_, chunk| {
                    table.push(chunk);
                    Ok(())
                },
            )
            .map_err(|e| e.to_string())?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    let reference_ties_s = sentences_s(TieBreak::Reference)?;
    let seeded_ties_s = sentences_s(TieBreak::default())?;
    let sentence_rate = args.cells as f64 / reference_ties_s;
    println!(
        "  phases (best of {}): read {read_s:.2} s; sentences alone {reference_ties_s:.2} s ({sentence_rate:.0} cells/s) with --ties reference, {seeded_ties_s:.2} s ({:.0} cells/s) with the default seeded ties",
        args.repeats.max(1),
        args.cells as f64 / seeded_ties_s
    );
    drop(ds);

    match reference_python(&args) {
        None if args.skip_reference => println!("reference: skipped (--skip-reference)"),
        None => println!(
            "reference: skipped (no tools/sentences/.venv; run tools/sentences/run.sh, or pass --python)"
        ),
        Some(python) => {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/sentences/bench_reference.py");
            let run = Command::new(&python)
                .arg(&script)
                .arg(&input)
                .arg("--parquet")
                .arg(dir.join("reference.parquet"))
                .output()
                .map_err(|e| e.to_string())?;
            let json = super::reference_json(run)?;
            let theirs = json["cells_per_s"].as_f64().unwrap_or(f64::NAN);
            let name = json["impl"].as_str().unwrap_or("reference");
            let seconds = |key: &str| json[key].as_f64().unwrap_or(f64::NAN);
            println!(
                "{name} adata_to_arrow (matrix in memory -> sentence table in memory): {:.2} s, {theirs:.0} cells/s",
                seconds("seconds")
            );
            let theirs_e2e = args.cells as f64 / seconds("end_to_end_seconds");
            println!(
                "{name} end to end (read_h5ad {:.2} s + adata_to_arrow + to_parquet {:.2} s): {:.2} s, {theirs_e2e:.0} cells/s",
                seconds("read_seconds"),
                seconds("write_seconds"),
                seconds("end_to_end_seconds")
            );
            println!(
                "speed-up: {:.1}x sentences alone (the work adata_to_arrow does); {:.1}x end to end (file in, Parquet out, both sides); {:.1}x our end to end vs their adata_to_arrow alone",
                sentence_rate / theirs,
                ours_rate / theirs_e2e,
                ours_rate / theirs
            );
        }
    }
    Ok(())
}
