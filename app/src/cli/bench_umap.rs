//! `c2s-studio bench-umap`: our kNN + UMAP side by side with umap-learn on the same input.
//!
//! A clustered synthetic counts matrix is generated and reduced by our PCA (timed, reported on
//! its own). Both sides then take the same PCA coordinates: we write them to a file, run our kNN
//! and layout here and umap-learn's (pynndescent kNN, then UMAP from that kNN) in
//! `tools/umap/bench_umap.py`, whose numba compilation is done in a warm-up run and reported
//! apart. Both kNN graphs are scored by recall@k against exact neighbours of sampled cells, and
//! both layouts by kNN preservation (how many of a cell's exact neighbours stay its neighbours in
//! 2-D) and nearest-centroid accuracy against the generated clusters.

use c2s_core::Progress;
use c2s_core::embed::knn::{Knn, KnnOptions, approximate_knn, exact_knn, recall};
use c2s_core::embed::synthetic::{clustered_counts, nearest_centroid_accuracy};
use c2s_core::embed::umap::{LayoutOptions, layout};
use c2s_core::embed::{PcaOptions, pca::pca};
use c2s_core::rng::SplitMix64;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `bench-umap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cells to generate.
    #[arg(long, default_value_t = 50_000)]
    pub cells: usize,
    /// Genes to generate (the PCA keeps the 2,000 most variable).
    #[arg(long, default_value_t = 3_000)]
    pub genes: usize,
    /// Clusters (cell types) to generate.
    #[arg(long, default_value_t = 12)]
    pub clusters: usize,
    /// Mean counts per cell.
    #[arg(long, default_value_t = 2_000)]
    pub counts_per_cell: usize,
    /// PCA components: the dimension both sides search neighbours in.
    #[arg(long, default_value_t = 50)]
    pub components: usize,
    /// Neighbours (umap-learn's `n_neighbors`, the cell itself included).
    #[arg(long, default_value_t = 15)]
    pub k: usize,
    /// HNSW links per node (`M`).
    #[arg(long, default_value_t = KnnOptions::default().max_connections)]
    pub hnsw_m: usize,
    /// HNSW candidate list while building.
    #[arg(long, default_value_t = KnnOptions::default().ef_construction)]
    pub ef_construction: usize,
    /// HNSW candidate list while searching.
    #[arg(long, default_value_t = KnnOptions::default().ef_search)]
    pub ef_search: usize,
    /// Cells below which our kNN is exact (blocked matrix products); 0 forces the HNSW index.
    #[arg(long, default_value_t = KnnOptions::default().exact_below)]
    pub exact_below: usize,
    /// Cells sampled for the exact-neighbour recall and the layout quality.
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// umap-learn's initialisation: `spectral` (its default) or `pca` (what we do).
    #[arg(long, default_value = "spectral")]
    pub init: String,
    /// Folder for the input and the reference's outputs (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python with umap-learn installed (default: `tools/umap/run.sh`, which builds its venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the umap-learn reference.
    #[arg(long)]
    pub skip_reference: bool,
}

/// Mean fraction of each sampled cell's exact high-dimensional neighbours (itself excluded) that
/// are also among its nearest neighbours in the layout (row `r` of both is the same cell).
fn preservation(high: &Knn, low: &Knn) -> f64 {
    let rows = high.rows();
    let hits: usize = (0..rows)
        .map(|r| {
            let low_row = &low.neighbours(r)[1..];
            high.neighbours(r)[1..]
                .iter()
                .filter(|j| low_row.contains(j))
                .count()
        })
        .sum();
    hits as f64 / (rows * (high.k - 1)).max(1) as f64
}

/// Quality of a 2-D layout `y`: (kNN preservation on `queries`, nearest-centroid accuracy).
fn layout_quality(
    y: &[f32],
    exact_high: &Knn,
    queries: &[usize],
    labels: &[usize],
    clusters: usize,
) -> Result<(f64, f64), String> {
    let low =
        exact_knn(y, 2, queries, exact_high.k, &Progress::new()).map_err(|e| e.to_string())?;
    Ok((
        preservation(exact_high, &low),
        nearest_centroid_accuracy(y, 2, labels, clusters),
    ))
}

fn write_f32(path: &Path, values: &[f32]) -> Result<(), String> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read_le<T, const N: usize>(path: &Path, parse: fn([u8; N]) -> T) -> Result<Vec<T>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| parse(c.try_into().unwrap_or([0; N])))
        .collect())
}

/// What the Python side printed and wrote.
struct Reference {
    name: String,
    warmup_s: f64,
    knn_s: f64,
    layout_s: f64,
    threads: u64,
    knn: Knn,
    embedding: Vec<f32>,
}

fn run_reference(
    args: &Args,
    input: &Path,
    n: usize,
    dim: usize,
    dir: &Path,
) -> Result<Reference, String> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/umap");
    let mut command = match &args.python {
        Some(python) => {
            let mut c = Command::new(python);
            c.arg(tools.join("bench_umap.py"));
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.arg(tools.join("run.sh"));
            c
        }
    };
    let out_dir = dir.join("umap-learn");
    let run = command
        .arg(input)
        .arg(n.to_string())
        .arg(dim.to_string())
        .arg(&out_dir)
        .args(["--k", &args.k.to_string(), "--init", &args.init])
        .output()
        .map_err(|e| format!("cannot start the reference: {e}"))?;
    let json = super::reference_json(run)?;
    let number = |key: &str| json[key].as_f64().unwrap_or(f64::NAN);
    let indices: Vec<u32> = read_le(&out_dir.join("knn_indices.i32"), i32::from_le_bytes)?
        .into_iter()
        .map(|i| i.max(0) as u32)
        .collect();
    let embedding = read_le(&out_dir.join("embedding.f32"), f32::from_le_bytes)?;
    if indices.len() != n * args.k || embedding.len() != n * 2 {
        return Err(format!(
            "reference wrote {} neighbour indices and {} coordinates; expected {} and {}",
            indices.len(),
            embedding.len(),
            n * args.k,
            n * 2
        ));
    }
    Ok(Reference {
        name: json["impl"].as_str().unwrap_or("umap-learn").to_string(),
        warmup_s: number("warmup_s"),
        knn_s: number("knn_s"),
        layout_s: number("layout_s"),
        threads: json["threads"].as_u64().unwrap_or(0),
        knn: Knn {
            k: args.k,
            distances: vec![0.0; indices.len()],
            indices,
        },
        embedding,
    })
}

/// Runs `bench-umap`.
pub fn run(args: Args) -> Result<(), String> {
    if args.k < 2 || args.cells <= args.k || args.queries == 0 {
        return Err("bench-umap needs --k ≥ 2, more cells than k and at least one query".into());
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let progress = Progress::new();
    println!(
        "threads: {} (rayon); umap-learn uses numba's default, all cores",
        rayon::current_num_threads()
    );

    let t = Instant::now();
    let data = clustered_counts(
        args.cells,
        args.genes,
        args.clusters,
        args.counts_per_cell,
        7,
    );
    println!(
        "generated {} cells x {} genes in {} clusters, {} stored values ({:.1} s)",
        args.cells,
        args.genes,
        args.clusters,
        data.counts.nnz(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let pca_options = PcaOptions {
        n_components: args.components,
        ..Default::default()
    };
    let p = pca(
        &data.counts,
        Some(c2s_core::dataset::MatrixKind::RawCounts),
        &pca_options,
        &progress,
    )
    .map_err(|e| e.to_string())?;
    let dim = p.n_components;
    println!(
        "our PCA (normalise + log1p + {} HVGs + randomized SVD, {dim} components): {:.2} s; variance explained {:.1}%",
        p.genes.len(),
        t.elapsed().as_secs_f64(),
        100.0 * p.variance_ratio.iter().sum::<f64>()
    );
    let points = p.scores;
    let input = dir.join(format!("pca_{}x{dim}.f32", args.cells));
    write_f32(&input, &points)?;

    // Ours.
    let knn_options = KnnOptions {
        k: args.k,
        max_connections: args.hnsw_m,
        ef_construction: args.ef_construction,
        ef_search: args.ef_search,
        exact_below: args.exact_below,
    };
    let t = Instant::now();
    let ours_knn =
        approximate_knn(&points, dim, &knn_options, &progress).map_err(|e| e.to_string())?;
    let knn_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ours_y = layout(
        &points,
        dim,
        &ours_knn,
        &LayoutOptions::default(),
        &progress,
    )
    .map_err(|e| e.to_string())?;
    let layout_s = t.elapsed().as_secs_f64();

    // Exact neighbours of sampled cells, for recall and quality.
    // Distinct cells, by a partial Fisher–Yates shuffle.
    let mut rng = SplitMix64::new(3);
    let mut order: Vec<usize> = (0..args.cells).collect();
    let take = args.queries.min(args.cells);
    for i in 0..take {
        let j = i + rng.below(args.cells - i);
        order.swap(i, j);
    }
    let mut queries = order[..take].to_vec();
    queries.sort_unstable();
    let t = Instant::now();
    let exact = exact_knn(&points, dim, &queries, args.k, &progress).map_err(|e| e.to_string())?;
    println!(
        "exact {}-NN of {} sampled cells: {:.2} s",
        args.k,
        queries.len(),
        t.elapsed().as_secs_f64()
    );
    let ours_recall = recall(&ours_knn, &exact, &queries);
    let (ours_keep, ours_acc) =
        layout_quality(&ours_y, &exact, &queries, &data.labels, args.clusters)?;

    println!();
    println!(
        "{:<44} {:>8} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "", "kNN s", "layout s", "total s", "recall", "kNN kept", "centroid"
    );
    let row = |name: &str, k: f64, l: f64, r: f64, keep: f64, acc: f64| {
        println!(
            "{name:<44} {k:>8.2} {l:>9.2} {:>8.2} {r:>9.3} {keep:>9.3} {acc:>9.3}",
            k + l
        )
    };
    row(
        if args.cells < args.exact_below {
            "c2s-studio (exact kNN + our UMAP, PCA init)"
        } else {
            "c2s-studio (hnsw_rs + our UMAP, PCA init)"
        },
        knn_s,
        layout_s,
        ours_recall,
        ours_keep,
        ours_acc,
    );

    if args.skip_reference {
        println!("reference: skipped (--skip-reference)");
        return Ok(());
    }
    let theirs = run_reference(&args, &input, args.cells, dim, &dir)?;
    let their_recall = recall(&theirs.knn, &exact, &queries);
    let (their_keep, their_acc) = layout_quality(
        &theirs.embedding,
        &exact,
        &queries,
        &data.labels,
        args.clusters,
    )?;
    row(
        &theirs.name.chars().take(44).collect::<String>(),
        theirs.knn_s,
        theirs.layout_s,
        their_recall,
        their_keep,
        their_acc,
    );
    println!(
        "  ({}; {} numba threads; JIT warm-up {:.1} s, excluded)",
        theirs.name, theirs.threads, theirs.warmup_s
    );
    println!(
        "speed-up (umap-learn time / ours): kNN {:.2}x, layout {:.2}x, total {:.2}x",
        theirs.knn_s / knn_s,
        theirs.layout_s / layout_s,
        (theirs.knn_s + theirs.layout_s) / (knn_s + layout_s)
    );
    println!(
        "columns: recall = recall@{k} of the kNN graph vs exact neighbours; kNN kept = fraction of each sampled cell's {} exact neighbours that stay among its {} nearest in 2-D; centroid = nearest-centroid accuracy of the layout against the generated clusters",
        args.k - 1,
        args.k - 1,
        k = args.k
    );
    Ok(())
}
