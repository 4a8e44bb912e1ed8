//! ssGSEA and score_genes against the fixtures that `tools/genesets/run.sh` writes with gseapy
//! 1.3.1, scanpy 1.11.5 and scanpy 1.9.8. The PBMC cases read the shared data beside the repo
//! and skip (saying why) when it is absent.

use super::*;
use crate::dataset::MatrixChoice;
use crate::io::h5ad::{ReadOptions, read_h5ad};
use crate::matrix::CsrMatrix;
use crate::progress::Progress;
use crate::test_support::skip;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/genesets")
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The synthetic tie-heavy counts of `ssgsea_ties.json` as a samples × genes matrix.
fn ties_matrix(f: &Value) -> CsrMatrix {
    let rows = f["counts"].as_array().unwrap();
    let mut m = CsrMatrix {
        n_rows: rows.len(),
        n_cols: f["genes"].as_array().unwrap().len(),
        indptr: vec![0],
        ..Default::default()
    };
    for row in rows {
        for (j, v) in floats(row).into_iter().enumerate() {
            if v != 0.0 {
                m.indices.push(j as u32);
                m.data.push(v as f32);
            }
        }
        m.indptr.push(m.data.len() as u64);
    }
    m
}

/// The PBMC `.raw` matrix and its gene names, or `None` (skipped) when the shared data is absent.
fn pbmc_raw() -> Option<crate::dataset::Dataset> {
    let path = shared().join("expression/pbmc68k_reduced.h5ad");
    if !path.exists() {
        skip(&format!("{} is absent", path.display()));
        return None;
    }
    let options = ReadOptions {
        matrix: Some(MatrixChoice::Raw),
        gene_column: None,
        load_matrix: true,
    };
    Some(read_h5ad(&path, &options, &Progress::new()).unwrap())
}

/// Scores `matrix` with every set of `library` as gseapy does and compares each run of the
/// fixture (one per weight) on the fixture's rows `rows` (indices into the matrix).
fn check_ssgsea(
    f: &Value,
    library: &GeneSetLibrary,
    genes: &[String],
    matrix: &CsrMatrix,
    rows: &[usize],
) {
    let index = GeneIndex::new(genes).unwrap();
    assert!(!gmt::gseapy_uppercases(genes, library));
    let all: Vec<&GeneSet> = library.sets.iter().collect();
    let matched = index.match_library(&all).unwrap();
    let want_sets = strings(&f["sets"]);
    for run in f["runs"].as_array().unwrap() {
        let options = SsgseaOptions {
            weight: run["weight"].as_f64().unwrap(),
            min_size: f["min_size"].as_u64().unwrap() as usize,
            max_size: f["max_size"].as_u64().unwrap() as usize,
        };
        let (scorer, _) = Ssgsea::new(&matched, genes.len(), options).unwrap();
        let mut names = scorer.set_names().to_vec();
        names.sort();
        assert_eq!(names, want_sets, "gseapy's size filter keeps the same sets");
        let scores = scorer
            .score_matrix(matrix, false, &Progress::new())
            .unwrap();
        let nes = scores.nes();
        let column = |name: &str| scorer.set_names().iter().position(|n| n == name).unwrap();
        let mut worst = 0.0f64;
        for (k, &row) in rows.iter().enumerate() {
            let (es_want, nes_want) = (floats(&run["es"][k]), floats(&run["nes"][k]));
            for (j, set) in want_sets.iter().enumerate() {
                let c = column(set);
                let es = scores.es(row, c);
                let nes_got = nes[row * scores.sets.len() + c];
                for (got, want) in [(es, es_want[j]), (nes_got, nes_want[j])] {
                    let rel = (got - want).abs() / want.abs().max(1e-12);
                    worst = worst.max(rel);
                    assert!(
                        rel <= 1e-6,
                        "weight {} row {row} {set}: {got} vs gseapy {want}",
                        options.weight
                    );
                }
            }
        }
        eprintln!(
            "ssGSEA weight {}: max relative difference to gseapy {worst:e}",
            options.weight
        );
    }
}

#[test]
fn ssgsea_equals_gseapy_on_tie_heavy_counts() {
    let f = load("ssgsea_ties.json");
    let library = GeneSetLibrary::read(&fixtures().join("ties.gmt")).unwrap();
    let genes = strings(&f["genes"]);
    let matrix = ties_matrix(&f);
    let rows: Vec<usize> = (0..matrix.n_rows).collect();
    check_ssgsea(&f, &library, &genes, &matrix, &rows);
}

#[test]
fn ssgsea_equals_gseapy_on_pbmc_raw() {
    let Some(ds) = pbmc_raw() else { return };
    let f = load("ssgsea_pbmc.json");
    assert_eq!(ds.n_cells(), f["n_cells"].as_u64().unwrap() as usize);
    let library =
        GeneSetLibrary::read(&shared().join("genesets/h.all.v7.5.1.symbols.gmt")).unwrap();
    let rows: Vec<usize> = f["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    check_ssgsea(&f, &library, &ds.var_names, &ds.expression, &rows);
}

/// Checks every case of a score_genes fixture whose data is available.
fn check_score_genes(fixture: &str, version: ScanpyVersion) {
    let f = load(fixture);
    let ties = load("ssgsea_ties.json");
    let ties_genes = strings(&ties["genes"]);
    let ties_m = ties_matrix(&ties);
    let pbmc = if f["cases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["data"] == "pbmc_raw")
    {
        pbmc_raw()
    } else {
        None
    };
    let mut checked = 0;
    for case in f["cases"].as_array().unwrap() {
        let (matrix, genes, mode) = match case["data"].as_str().unwrap() {
            "ties_dense_f32" => (&ties_m, &ties_genes, MeanMode::DenseF32),
            "ties_csr" => (&ties_m, &ties_genes, MeanMode::Sparse),
            "pbmc_raw" => match &pbmc {
                Some(ds) => (&ds.expression, &ds.var_names, MeanMode::Sparse),
                None => continue,
            },
            other => panic!("unknown fixture data {other}"),
        };
        let options = ScoreGenesOptions {
            ctrl_size: case["ctrl_size"].as_u64().unwrap() as usize,
            version,
            ..Default::default()
        };
        let index = GeneIndex::new(genes).unwrap();
        let set: Vec<usize> = strings(&case["genes"])
            .iter()
            .map(|g| index.column(g).unwrap())
            .collect();
        let scorer = ScoreGenes::new(matrix, mode, options).unwrap();
        let got = scorer.score(matrix, &set, genes).unwrap();
        let control: Vec<&str> = got.control.iter().map(|&g| genes[g].as_str()).collect();
        assert_eq!(
            control,
            strings(&case["control"]),
            "{} control genes ({version})",
            case["data"]
        );
        let want = floats(&case["scores"]);
        assert_eq!(got.scores.len(), want.len());
        let worst = got
            .scores
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-6,
            "{}: max |Δ| {worst} ({version})",
            case["data"]
        );
        checked += 1;
    }
    eprintln!("{version}: {checked} score_genes cases equal");
    assert!(checked >= 12, "the synthetic cases always run");
}

#[test]
fn score_genes_equals_scanpy_1_11_5() {
    check_score_genes("score_genes_1.11.5.json", ScanpyVersion::V1_11_5);
}

#[test]
fn score_genes_equals_scanpy_1_9_8() {
    check_score_genes("score_genes_1.9.8.json", ScanpyVersion::V1_9_8);
}
