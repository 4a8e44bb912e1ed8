//! The built-in demo dataset, generated in code so a fresh install shows something useful.
//!
//! It imitates a small PBMC experiment: eight cell types as clusters in a UMAP-like embedding,
//! a PCA-like embedding, categorical / numeric / boolean `obs` columns, a `uns` palette for the
//! cell types and a sparse raw-count matrix in which each type expresses its marker genes.
//! Generation is deterministic (fixed seed) and scales to millions of cells for benchmarks.

use std::collections::BTreeMap;

use c2s_core::dataset::{
    ColumnData, Dataset, Embedding, MatrixChoice, MatrixInfo, MatrixKind, ObsColumn,
};
use c2s_core::matrix::CsrMatrix;
use c2s_core::rng::SplitMix64;

use super::jobs::{JobError, Progress};

/// Number of cells of the default demo dataset.
pub const DEFAULT_CELLS: usize = 5_000;

/// One synthetic cell type.
struct CellType {
    name: &'static str,
    /// Cluster centre in the UMAP-like embedding.
    centre: [f32; 2],
    /// Cluster spread.
    spread: f32,
    /// Genes this type expresses highly.
    markers: &'static [&'static str],
    /// Share of all cells.
    share: f32,
    /// Colour in `uns['cell_type_colors']`.
    color: &'static str,
}

const fn cell_type(
    name: &'static str,
    centre: [f32; 2],
    spread: f32,
    markers: &'static [&'static str],
    share: f32,
    color: &'static str,
) -> CellType {
    CellType {
        name,
        centre,
        spread,
        markers,
        share,
        color,
    }
}

const TYPES: [CellType; 8] = [
    cell_type(
        "CD4 T",
        [-4.0, 3.0],
        1.2,
        &["CD3D", "CD3E", "IL7R", "LTB"],
        0.30,
        "#1f77b4",
    ),
    cell_type(
        "CD8 T",
        [-1.5, 5.0],
        0.9,
        &["CD3D", "CD8A", "CD8B", "CCL5"],
        0.14,
        "#ff7f0e",
    ),
    cell_type(
        "NK",
        [1.5, 6.0],
        0.8,
        &["NKG7", "GNLY", "GZMB", "PRF1"],
        0.08,
        "#279e68",
    ),
    cell_type(
        "B",
        [-6.5, -3.0],
        0.9,
        &["MS4A1", "CD79A", "CD79B", "CD19"],
        0.12,
        "#d62728",
    ),
    cell_type(
        "CD14 Mono",
        [5.0, -2.0],
        1.3,
        &["CD14", "LYZ", "S100A8", "S100A9"],
        0.22,
        "#aa40fc",
    ),
    cell_type(
        "FCGR3A Mono",
        [7.5, 0.8],
        0.7,
        &["FCGR3A", "MS4A7", "LST1", "AIF1"],
        0.07,
        "#8c564b",
    ),
    cell_type(
        "DC",
        [3.0, -5.5],
        0.5,
        &["FCER1A", "CST3", "CLEC10A", "HLA-DQA1"],
        0.04,
        "#e377c2",
    ),
    cell_type(
        "Platelet",
        [-1.0, -7.0],
        0.4,
        &["PPBP", "PF4", "GNG11", "SPARC"],
        0.03,
        "#b5bd61",
    ),
];

const HOUSEKEEPING: [&str; 12] = [
    "ACTB", "GAPDH", "B2M", "MALAT1", "TMSB4X", "RPL13", "RPS27", "EEF1A1", "FTL", "FTH1",
    "MT-CO1", "MT-ND4",
];

/// Gene names of the demo: markers, housekeeping genes, then anonymous background genes.
fn gene_names() -> Vec<String> {
    let mut genes: Vec<String> = Vec::new();
    for t in &TYPES {
        for m in t.markers {
            if !genes.iter().any(|g| g == m) {
                genes.push(m.to_string());
            }
        }
    }
    genes.extend(HOUSEKEEPING.iter().map(|g| g.to_string()));
    genes.extend((1..=150).map(|i| format!("GENE{i:03}")));
    genes
}

/// Generates the demo dataset with `n_cells` cells, reporting progress and honouring cancel.
pub fn generate(n_cells: usize, progress: &Progress) -> Result<Dataset, JobError> {
    let mut rng = SplitMix64::new(42);
    let genes = gene_names();
    let gene_index = |name: &str| genes.iter().position(|g| g == name).unwrap_or(0) as u32;
    let housekeeping: Vec<u32> = HOUSEKEEPING.iter().map(|g| gene_index(g)).collect();
    let background_start = genes.len() - 150;

    let mut codes = Vec::with_capacity(n_cells);
    let mut sample = Vec::with_capacity(n_cells);
    let mut umap = Vec::with_capacity(n_cells * 2);
    let mut pca = Vec::with_capacity(n_cells * 10);
    let mut n_counts = Vec::with_capacity(n_cells);
    let mut pct_mito = Vec::with_capacity(n_cells);
    let mut doublet = Vec::with_capacity(n_cells);
    let mut indptr = Vec::with_capacity(n_cells + 1);
    let mut indices: Vec<u32> = Vec::with_capacity(n_cells * 24);
    let mut data: Vec<f32> = Vec::with_capacity(n_cells * 24);
    indptr.push(0u64);

    let cumulative: Vec<f32> = TYPES
        .iter()
        .scan(0.0, |acc, t| {
            *acc += t.share;
            Some(*acc)
        })
        .collect();
    let chunk = (n_cells / 100).max(1_000);
    let mut row: Vec<(u32, f32)> = Vec::with_capacity(32);
    for cell in 0..n_cells {
        if cell % chunk == 0 {
            progress.check()?;
            progress.set(
                cell as f32 / n_cells as f32,
                format!("generating cell {cell}"),
            );
        }
        let u = rng.next_f32() * cumulative[cumulative.len() - 1];
        let t = cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(TYPES.len() - 1);
        let CellType {
            centre,
            spread,
            markers,
            ..
        } = TYPES[t];
        codes.push(t as i32);
        sample.push(rng.below(3) as i32);
        // Anisotropic blobs with a slight curve, so clusters look like a UMAP.
        let (a, b) = (rng.normal() * spread, rng.normal() * spread * 0.55);
        let angle = t as f32 * 0.7;
        let (s, c) = angle.sin_cos();
        umap.push(centre[0] + a * c - b * s + 0.08 * a * a);
        umap.push(centre[1] + a * s + b * c);
        for k in 0..10 {
            let base = match centre.get(k) {
                Some(c) => c * 2.0,
                None => (t as f32 - 3.5) / (k as f32),
            };
            pca.push(base + rng.normal());
        }
        let depth = (1_500.0 + 800.0 * rng.normal()).max(300.0).round();
        n_counts.push(depth as f64);
        pct_mito.push((2.0 + rng.normal().abs() * 2.5) as f64);
        doublet.push(rng.next_f32() < 0.03);

        row.clear();
        for m in markers {
            let level = 3.0 + 4.0 * rng.next_f32();
            row.push((gene_index(m), level.round().max(1.0)));
        }
        for &h in &housekeeping {
            if rng.next_f32() < 0.8 {
                row.push((h, (1.0 + 6.0 * rng.next_f32()).round()));
            }
        }
        for _ in 0..6 {
            let g = (background_start + rng.below(150)) as u32;
            if !row.iter().any(|&(x, _)| x == g) {
                row.push((g, 1.0 + rng.below(2) as f32));
            }
        }
        row.sort_unstable_by_key(|&(g, _)| g);
        for &(g, v) in &row {
            indices.push(g);
            data.push(v);
        }
        indptr.push(indices.len() as u64);
    }
    progress.set(1.0, "done");

    let n_genes = genes.len();
    let type_names: Vec<String> = TYPES.iter().map(|t| t.name.to_string()).collect();
    let mut palettes = BTreeMap::new();
    palettes.insert(
        "cell_type".to_string(),
        TYPES.iter().map(|t| t.color.to_string()).collect(),
    );
    Ok(Dataset {
        source: None,
        obs_names: (0..n_cells).map(|i| format!("demo-cell-{i:07}")).collect(),
        var_names: genes,
        gene_column: "index".into(),
        obs: vec![
            ObsColumn {
                name: "cell_type".into(),
                data: ColumnData::Categorical {
                    codes,
                    categories: type_names,
                },
            },
            ObsColumn {
                name: "sample".into(),
                data: ColumnData::Categorical {
                    codes: sample,
                    categories: vec!["donor_A".into(), "donor_B".into(), "donor_C".into()],
                },
            },
            ObsColumn {
                name: "n_counts".into(),
                data: ColumnData::Numeric(n_counts),
            },
            ObsColumn {
                name: "percent_mito".into(),
                data: ColumnData::Numeric(pct_mito),
            },
            ObsColumn {
                name: "predicted_doublet".into(),
                data: ColumnData::Bool(doublet),
            },
        ],
        obsm: vec![
            Embedding {
                name: "X_umap".into(),
                n_cols: 2,
                data: umap,
            },
            Embedding {
                name: "X_pca".into(),
                n_cols: 10,
                data: pca,
            },
        ],
        matrices: vec![MatrixInfo {
            choice: MatrixChoice::X,
            shape: (n_cells, n_genes),
            storage: "csr".into(),
            dtype: "f32".into(),
            kind: MatrixKind::RawCounts,
        }],
        loaded: Some(MatrixChoice::X),
        expression: CsrMatrix {
            n_rows: n_cells,
            n_cols: n_genes,
            indptr,
            indices,
            data,
        },
        palettes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_consistent() {
        let d = generate(2_000, &Progress::default()).unwrap();
        assert_eq!(d.n_cells(), 2_000);
        assert_eq!(d.expression.n_rows, 2_000);
        assert_eq!(d.expression.n_cols, d.var_names.len());
        assert_eq!(d.embedding("X_umap").unwrap().data.len(), 4_000);
        let ColumnData::Categorical { codes, categories } =
            &d.obs_column("cell_type").unwrap().data
        else {
            panic!("cell_type is categorical");
        };
        assert_eq!(categories.len(), 8);
        // Every type is present, and the palette has one colour per type.
        assert!((0..8).all(|t| codes.contains(&t)));
        assert_eq!(d.palettes["cell_type"].len(), 8);
        // B cells express MS4A1.
        let ms4a1 = d.var_names.iter().position(|g| g == "MS4A1").unwrap();
        let b = codes.iter().position(|&c| c == 3).unwrap();
        assert!(d.expression.row(b).0.contains(&(ms4a1 as u32)));
    }

    #[test]
    fn demo_generation_can_be_cancelled() {
        let p = Progress::default();
        p.cancel();
        assert_eq!(generate(10_000, &p).unwrap_err(), JobError::Cancelled);
    }
}
