//! `c2s-studio bench-ssgsea`: our ssGSEA side by side with gseapy 1.3.1 on the same generated
//! matrix and gene sets, timed in the same run, with the ES of both compared.
//!
//! A log-normalised-like matrix (samples × genes, most values zero, ties within each sample as
//! integer counts give) and random gene sets are generated and written to a folder. Our side
//! times parsing the GMT, matching and scoring; gseapy's side (`tools/genesets/bench_ssgsea.py`,
//! through `tools/genesets/run.sh --bench`, which builds its venv) times its `ssgsea` call.

use c2s_core::Progress;
use c2s_core::genesets::{GeneIndex, GeneSetLibrary, Ssgsea, SsgseaOptions};
use c2s_core::matrix::CsrMatrix;
use c2s_core::rng::SplitMix64;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `bench-ssgsea`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Samples (cells) to generate.
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// Genes to generate.
    #[arg(long, default_value_t = 5_000)]
    pub genes: usize,
    /// Gene sets to generate (15 to 200 genes each).
    #[arg(long, default_value_t = 50)]
    pub sets: usize,
    /// ssGSEA weight.
    #[arg(long, default_value_t = 0.25)]
    pub weight: f64,
    /// Threads for gseapy (default: as many as ours).
    #[arg(long)]
    pub reference_threads: Option<usize>,
    /// Folder for the generated input and gseapy's output (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python with gseapy 1.3.1 installed (default: `tools/genesets/run.sh --bench`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the gseapy reference.
    #[arg(long)]
    pub skip_reference: bool,
}

/// The generated samples × genes matrix, dense (for gseapy) and sparse (for us).
fn generate(samples: usize, genes: usize) -> (Vec<f32>, CsrMatrix) {
    let mut rng = SplitMix64::new(11);
    let mut dense = vec![0.0f32; samples * genes];
    let mut m = CsrMatrix {
        n_rows: samples,
        n_cols: genes,
        indptr: vec![0],
        ..Default::default()
    };
    for i in 0..samples {
        let scale = 0.5 + rng.next_f32();
        for j in 0..genes {
            if rng.below(10) < 6 {
                continue;
            }
            let count = 1 + rng.below(1 + j % 23) as u32;
            let v = (count as f32 * scale).ln_1p();
            dense[i * genes + j] = v;
            m.indices.push(j as u32);
            m.data.push(v);
        }
        m.indptr.push(m.data.len() as u64);
    }
    (dense, m)
}

/// A GMT of `n` random sets of 15 to 200 of the genes `G0..`.
fn write_gmt(path: &Path, n: usize, genes: usize) -> Result<(), String> {
    let mut rng = SplitMix64::new(5);
    let mut text = String::new();
    for s in 0..n {
        let size = (15 + rng.below(186)).min(genes - 1);
        let mut order: Vec<usize> = (0..genes).collect();
        for i in 0..size {
            let j = i + rng.below(genes - i);
            order.swap(i, j);
        }
        let names: Vec<String> = order[..size].iter().map(|g| format!("G{g}")).collect();
        text.push_str(&format!("SET_{s}\tbench\t{}\n", names.join("\t")));
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// gseapy's time and ES (samples × sets, NaN where it left a set out).
fn run_reference(
    args: &Args,
    dir: &Path,
    threads: usize,
) -> Result<(String, f64, Vec<f64>), String> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/genesets");
    let mut command = match &args.python {
        Some(python) => {
            let mut c = Command::new(python);
            c.arg(tools.join("bench_ssgsea.py"));
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.arg(tools.join("run.sh")).arg("--bench");
            c
        }
    };
    let out = dir.join("gseapy_es.f64");
    let run = command
        .arg(dir.join("matrix.f32"))
        .arg(args.samples.to_string())
        .arg(args.genes.to_string())
        .arg(dir.join("sets.gmt"))
        .arg(&out)
        .args(["--weight", &args.weight.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()
        .map_err(|e| format!("cannot start the reference: {e}"))?;
    let json = super::reference_json(run)?;
    let bytes = std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
    let es = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    Ok((
        json["impl"].as_str().unwrap_or("gseapy").to_string(),
        json["seconds"].as_f64().unwrap_or(f64::NAN),
        es,
    ))
}

/// Runs `bench-ssgsea`.
pub fn run(args: Args) -> Result<(), String> {
    if args.samples < 2 || args.genes < 216 || args.sets == 0 {
        return Err("bench-ssgsea needs at least 2 samples, 216 genes and 1 set".into());
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let (dense, matrix) = generate(args.samples, args.genes);
    let gmt = dir.join("sets.gmt");
    write_gmt(&gmt, args.sets, args.genes)?;
    let mut file = std::fs::File::create(dir.join("matrix.f32")).map_err(|e| e.to_string())?;
    file.write_all(
        &dense
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .map_err(|e| e.to_string())?;
    drop(dense);
    println!(
        "generated {} samples x {} genes ({} stored values) and {} sets ({:.1} s)",
        args.samples,
        args.genes,
        matrix.nnz(),
        args.sets,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let library = GeneSetLibrary::read(&gmt).map_err(|e| e.to_string())?;
    let genes: Vec<String> = (0..args.genes).map(|j| format!("G{j}")).collect();
    let index = GeneIndex::new(&genes).map_err(|e| e.to_string())?;
    let matched = index
        .match_library(&library.sets.iter().collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    let options = SsgseaOptions {
        weight: args.weight,
        ..Default::default()
    };
    let (scorer, _) = Ssgsea::new(&matched, args.genes, options).map_err(|e| e.to_string())?;
    let scores = scorer
        .score_matrix(&matrix, false, &Progress::new())
        .map_err(|e| e.to_string())?;
    let ours_s = t.elapsed().as_secs_f64();
    println!(
        "c2s-studio ssGSEA (weight {}, {} sets): {ours_s:.3} s on {threads} threads ({:.0} samples/s)",
        args.weight,
        scores.sets.len(),
        args.samples as f64 / ours_s
    );
    if args.skip_reference {
        println!("reference: skipped (--skip-reference)");
        return Ok(());
    }
    let ref_threads = args.reference_threads.unwrap_or(threads);
    let (name, theirs_s, es) = run_reference(&args, &dir, ref_threads)?;
    println!(
        "{name} ssgsea(sample_norm_method='rank', weight {}): {theirs_s:.3} s on {ref_threads} threads ({:.0} samples/s)",
        args.weight,
        args.samples as f64 / theirs_s
    );
    if es.len() != args.samples * args.sets {
        return Err(format!(
            "gseapy wrote {} scores; expected {}",
            es.len(),
            args.samples * args.sets
        ));
    }
    let mut worst = 0.0f64;
    let mut compared = 0usize;
    for (j, set) in library.sets.iter().enumerate() {
        let Some(k) = scores.sets.iter().position(|n| n == &set.name) else {
            continue;
        };
        for i in 0..args.samples {
            let want = es[i * args.sets + j];
            let got = scores.es(i, k);
            worst = worst.max((got - want).abs() / want.abs().max(1e-12));
            compared += 1;
        }
    }
    println!(
        "ES agreement: max relative difference {worst:.2e} over {compared} (sample, set) scores"
    );
    println!("speed-up (gseapy time / ours): {:.1}x", theirs_s / ours_s);
    Ok(())
}
