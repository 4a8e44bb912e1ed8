//! The results store of a screen: an output folder holding `manifest.json` (the spec's hash and
//! the scored sets), one Parquet part per finished batch under `parts/`, the unperturbed
//! controls' scores (`controls.parquet`) and, once complete, `results.parquet`.
//!
//! Every file is written atomically before the run moves on, so a crash or cancel loses at most
//! the batch in flight; a restarted run reads the parts and skips their units. A folder holding
//! another screen (another hash) is refused. Shard folders of one screen merge into one.

use super::spec::ScreenSpec;
use super::units::Unit;
use crate::error::{Error, Result};
use crate::io::atomic::write_atomically;
use crate::io::export::write_table;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

const MANIFEST: &str = "manifest.json";
const PARTS: &str = "parts";
const CONTROLS: &str = "controls.parquet";
/// The merged results of a complete run.
pub const RESULTS: &str = "results.parquet";
/// The spec of a screen started from the app's form or from `screen run` flags, saved beside its
/// results so the folder can be reopened and resumed.
pub const SPEC_FILE: &str = "screen.toml";
const FORMAT: &str = "c2s-studio-screen";

/// One finished unit: its predicted sentence and its score per set (store order).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitResult {
    /// The unit.
    pub unit: Unit,
    /// The model's raw output.
    pub generated: String,
    /// The predicted sentence: the output's genes, post-processed.
    pub sentence: String,
    /// One score per set, in the manifest's set order.
    pub scores: Vec<f64>,
}

/// One unperturbed control profile: a context's drawn sample, scored like the predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlResult {
    /// Context name.
    pub context: String,
    /// Sample number within the context.
    pub sample: u32,
    /// The sample's own cell sentence.
    pub sentence: String,
    /// One score per set, in the manifest's set order.
    pub scores: Vec<f64>,
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `c2s-studio-screen`.
    pub format: String,
    /// Layout version (1).
    pub version: u32,
    /// [`ScreenSpec::hash`] of the screen.
    pub spec_hash: String,
    /// Scored set names; each is a `score:<set>` column.
    pub sets: Vec<String>,
    /// The spec, for reports and for reopening the screen.
    pub spec: ScreenSpec,
    /// The library's names, in order.
    pub perturbations: Vec<String>,
}

/// An open results folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn read_err(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::Malformed {
        path: path.to_path_buf(),
        detail: format!("not a screen results file ({e})"),
    }
}

/// The column holding a set's scores.
pub fn score_column(set: &str) -> String {
    format!("score:{set}")
}

impl Store {
    /// Checks, before any work, that `dir` can take the results of `spec`: a missing or empty
    /// folder passes (it is created later by [`Store::create_or_open`]); a folder holding
    /// another screen, or other files, is refused with the same message `create_or_open` gives.
    /// Nothing is written.
    pub fn check_destination(dir: &Path, spec: &ScreenSpec) -> Result<()> {
        let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
        if !empty {
            Self::create_or_open(dir, spec)?;
        }
        Ok(())
    }

    /// Opens `dir` for `spec`, creating it (and its manifest) when new. A folder whose manifest
    /// has another spec hash is an error; so is a non-empty folder without a manifest.
    pub fn create_or_open(dir: &Path, spec: &ScreenSpec) -> Result<Self> {
        let manifest = Manifest {
            format: FORMAT.into(),
            version: 1,
            spec_hash: spec.hash(),
            sets: spec.genesets.sets.clone(),
            spec: spec.clone(),
            perturbations: spec.perturbations.clone(),
        };
        if dir.join(MANIFEST).exists() {
            let store = Self::open(dir)?;
            if store.manifest.spec_hash != manifest.spec_hash {
                return Err(Error::InvalidArgument(format!(
                    "{} holds results of a different screen (spec hash {} ≠ {}); choose a new \
                     output folder, or restore the spec that made these results",
                    dir.display(),
                    &store.manifest.spec_hash[..12],
                    &manifest.spec_hash[..12]
                )));
            }
            return Ok(store);
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_some()
        {
            return Err(Error::InvalidArgument(format!(
                "{} is not empty and holds no screen manifest; choose a new or empty folder",
                dir.display()
            )));
        }
        Self::init(dir, manifest)
    }

    fn init(dir: &Path, manifest: Manifest) -> Result<Self> {
        let parts = dir.join(PARTS);
        std::fs::create_dir_all(&parts).map_err(io_err(&parts))?;
        let path = dir.join(MANIFEST);
        let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        write_atomically(&path, |tmp| {
            std::fs::write(tmp, &json).map_err(io_err(&path))
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Opens an existing results folder.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} holds no screen results ({MANIFEST} is missing); give the --out folder of \
                 `screen run`",
                dir.display()
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let mut manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: path.clone(),
            detail: format!("not a screen manifest ({e})"),
        })?;
        if manifest.format != FORMAT || manifest.version != 1 {
            return Err(Error::Malformed {
                path,
                detail: format!(
                    "format {} version {} is not {FORMAT} version 1",
                    manifest.format, manifest.version
                ),
            });
        }
        manifest.spec.perturbations = manifest.perturbations.clone();
        if manifest.spec.hash() != manifest.spec_hash {
            return Err(Error::Malformed {
                path,
                detail: "its spec does not match its spec hash (was it edited?); rerun the \
                         screen into a new folder"
                    .into(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn part_paths(&self) -> Result<Vec<PathBuf>> {
        let parts = self.dir.join(PARTS);
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&parts).map_err(io_err(&parts))? {
            let path = entry.map_err(io_err(&parts))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("part-") && name.ends_with(".parquet") {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// Appends finished units as a new part, written atomically; the part's name is a hash of
    /// its content, so equal batches from two shard folders merge into one file while two
    /// different results for a unit stay apart (and are reported by [`Store::results`]).
    pub fn append(&self, results: &[UnitResult]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut h = Sha256::new();
        for r in results {
            let u = &r.unit;
            h.update(format!(
                "{}\0{}\0{}\0{}\0{}\0{}\0",
                u.perturbation, u.context, u.sample, u.replicate, r.generated, r.sentence
            ));
            for x in &r.scores {
                h.update(x.to_bits().to_le_bytes());
            }
        }
        let hex: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = self.dir.join(PARTS).join(format!("part-{hex}.parquet"));
        write_table(&path, &mut self.results_frame(results)?)
    }

    /// Every finished unit.
    pub fn finished(&self) -> Result<HashSet<Unit>> {
        Ok(self.results()?.into_iter().map(|r| r.unit).collect())
    }

    /// Every finished unit's result, sorted by (perturbation, context, sample, replicate).
    /// A unit stored twice with different results (parts of two different runs) is an error.
    pub fn results(&self) -> Result<Vec<UnitResult>> {
        let mut all: BTreeMap<Unit, UnitResult> = BTreeMap::new();
        for path in self.part_paths()? {
            for r in self.read_results(&path)? {
                if let Some(old) = all.get(&r.unit) {
                    if !same_result(old, &r) {
                        return Err(Error::InvalidData(format!(
                            "unit {} × {} sample {} replicate {} has two different results (one \
                             in {}); these parts were not made by one screen",
                            r.unit.perturbation,
                            r.unit.context,
                            r.unit.sample,
                            r.unit.replicate,
                            path.display()
                        )));
                    }
                } else {
                    all.insert(r.unit.clone(), r);
                }
            }
        }
        Ok(all.into_values().collect())
    }

    /// Writes the unperturbed controls' scores (atomically; replaced if present).
    pub fn write_controls(&self, controls: &[ControlResult]) -> Result<()> {
        let n = controls.len();
        let mut cols = vec![
            Column::new(
                "context".into(),
                controls
                    .iter()
                    .map(|c| c.context.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "sample".into(),
                controls.iter().map(|c| c.sample).collect::<Vec<_>>(),
            ),
        ];
        for (k, set) in self.manifest.sets.iter().enumerate() {
            cols.push(Column::new(
                score_column(set).into(),
                controls.iter().map(|c| c.scores[k]).collect::<Vec<_>>(),
            ));
        }
        cols.push(Column::new(
            "sentence".into(),
            controls
                .iter()
                .map(|c| c.sentence.clone())
                .collect::<Vec<_>>(),
        ));
        let path = self.dir.join(CONTROLS);
        let mut df = DataFrame::new(n, cols).map_err(write_err(&path))?;
        write_table(&path, &mut df)
    }

    /// The unperturbed controls' scores, if written.
    pub fn controls(&self) -> Result<Option<Vec<ControlResult>>> {
        let path = self.dir.join(CONTROLS);
        if !path.exists() {
            return Ok(None);
        }
        let df = read_frame(&path)?;
        let err = read_err(&path);
        let context = strings(&df, "context").map_err(&err)?;
        let sample = u32s(&df, "sample").map_err(&err)?;
        let sentence = strings(&df, "sentence").map_err(&err)?;
        let scores = self.score_columns(&df).map_err(&err)?;
        Ok(Some(
            (0..df.height())
                .map(|i| ControlResult {
                    context: context[i].clone(),
                    sample: sample[i],
                    sentence: sentence[i].clone(),
                    scores: scores.iter().map(|c| c[i]).collect(),
                })
                .collect(),
        ))
    }

    /// Writes `results.parquet`: every finished unit, sorted. Returns its path.
    pub fn write_results(&self) -> Result<PathBuf> {
        let path = self.dir.join(RESULTS);
        write_table(&path, &mut self.results_frame(&self.results()?)?)?;
        Ok(path)
    }

    fn results_frame(&self, results: &[UnitResult]) -> Result<DataFrame> {
        let text = |f: &dyn Fn(&UnitResult) -> String| results.iter().map(f).collect::<Vec<_>>();
        let mut cols = vec![
            Column::new(
                "perturbation".into(),
                text(&|r| r.unit.perturbation.clone()),
            ),
            Column::new("context".into(), text(&|r| r.unit.context.clone())),
            Column::new(
                "sample".into(),
                results.iter().map(|r| r.unit.sample).collect::<Vec<_>>(),
            ),
            Column::new(
                "replicate".into(),
                results.iter().map(|r| r.unit.replicate).collect::<Vec<_>>(),
            ),
        ];
        for (k, set) in self.manifest.sets.iter().enumerate() {
            cols.push(Column::new(
                score_column(set).into(),
                results.iter().map(|r| r.scores[k]).collect::<Vec<_>>(),
            ));
        }
        cols.push(Column::new(
            "sentence".into(),
            text(&|r| r.sentence.clone()),
        ));
        cols.push(Column::new(
            "generated".into(),
            text(&|r| r.generated.clone()),
        ));
        DataFrame::new(results.len(), cols).map_err(write_err(&self.dir))
    }

    fn read_results(&self, path: &Path) -> Result<Vec<UnitResult>> {
        let df = read_frame(path)?;
        let err = read_err(path);
        let p = strings(&df, "perturbation").map_err(&err)?;
        let c = strings(&df, "context").map_err(&err)?;
        let s = u32s(&df, "sample").map_err(&err)?;
        let r = u32s(&df, "replicate").map_err(&err)?;
        let sentence = strings(&df, "sentence").map_err(&err)?;
        let generated = strings(&df, "generated").map_err(&err)?;
        let scores = self.score_columns(&df).map_err(&err)?;
        Ok((0..df.height())
            .map(|i| UnitResult {
                unit: Unit {
                    perturbation: p[i].clone(),
                    context: c[i].clone(),
                    sample: s[i],
                    replicate: r[i],
                },
                generated: generated[i].clone(),
                sentence: sentence[i].clone(),
                scores: scores.iter().map(|col| col[i]).collect(),
            })
            .collect())
    }

    fn score_columns(&self, df: &DataFrame) -> PolarsResult<Vec<Vec<f64>>> {
        self.manifest
            .sets
            .iter()
            .map(|set| {
                Ok(df
                    .column(&score_column(set))?
                    .f64()?
                    .iter()
                    .map(|v| v.unwrap_or(f64::NAN))
                    .collect())
            })
            .collect()
    }
}

/// Equal results, NaN scores equal to NaN.
fn same_result(a: &UnitResult, b: &UnitResult) -> bool {
    a.sentence == b.sentence
        && a.generated == b.generated
        && a.scores.len() == b.scores.len()
        && a.scores
            .iter()
            .zip(&b.scores)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn read_frame(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    ParquetReader::new(file).finish().map_err(read_err(path))
}

fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect())
}

fn u32s(df: &DataFrame, name: &str) -> PolarsResult<Vec<u32>> {
    Ok(df
        .column(name)?
        .u32()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// Merges shard folders of one screen into `out` (created; or an existing folder of the same
/// screen, whose parts are kept): copies every part, takes the controls from the first input
/// that has them (all inputs' controls must agree), and writes `results.parquet`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Store> {
    let first = inputs.first().ok_or_else(|| {
        Error::InvalidArgument("screen merge needs at least one results folder".into())
    })?;
    let stores: Vec<Store> = inputs
        .iter()
        .map(|d| Store::open(d))
        .collect::<Result<_>>()?;
    let manifest = stores[0].manifest.clone();
    for s in &stores[1..] {
        if s.manifest.spec_hash != manifest.spec_hash {
            return Err(Error::InvalidArgument(format!(
                "{} and {} hold different screens (spec hashes differ); merge only the shards \
                 of one screen",
                first.display(),
                s.dir.display()
            )));
        }
    }
    let target = Store::create_or_open(out, &manifest.spec)?;
    let mut controls: Option<Vec<ControlResult>> = None;
    for s in &stores {
        for part in s.part_paths()? {
            let dest = target
                .dir
                .join(PARTS)
                .join(part.file_name().expect("a part file"));
            if !dest.exists() {
                write_atomically(&dest, |tmp| {
                    std::fs::copy(&part, tmp).map(|_| ()).map_err(io_err(&part))
                })?;
            }
        }
        if let Some(c) = s.controls()? {
            match &controls {
                Some(existing) if *existing != c => {
                    return Err(Error::InvalidData(format!(
                        "the control scores in {} differ from those in {}; these folders were \
                         not made from the same data",
                        s.dir.display(),
                        first.display()
                    )));
                }
                Some(_) => {}
                None => controls = Some(c),
            }
        }
    }
    if let Some(c) = controls {
        target.write_controls(&c)?;
    }
    target.write_results()?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, seed: u64) -> ScreenSpec {
        std::fs::write(dir.join("lib.txt"), "d1\nd2\n").unwrap();
        let text = format!(
            "[[context]]\nname = \"a\"\nh5ad = \"a.h5ad\"\nsamples = 2\n\
             [library]\npath = \"lib.txt\"\n[model]\ndir = \"m\"\n\
             [sampling]\nseed = {seed}\n[genesets]\ngmt = \"g.gmt\"\nsets = [\"S1\", \"S2\"]\n"
        );
        ScreenSpec::parse(&text, dir).unwrap()
    }

    fn result(p: &str, sample: u32, x: f64) -> UnitResult {
        UnitResult {
            unit: Unit {
                perturbation: p.into(),
                context: "a".into(),
                sample,
                replicate: 0,
            },
            generated: format!("g{sample} g9."),
            sentence: format!("G{sample} G9"),
            scores: vec![x, -x],
        }
    }

    #[test]
    fn appended_parts_survive_reopening_and_sort() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(tmp.path(), 0);
        let out = tmp.path().join("out");
        let store = Store::create_or_open(&out, &s).unwrap();
        store.append(&[result("d2", 0, 1.0)]).unwrap();
        store
            .append(&[result("d1", 1, 2.0), result("d1", 0, f64::NAN)])
            .unwrap();
        let again = Store::create_or_open(&out, &s).unwrap();
        let r = again.results().unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].unit.perturbation.as_str(), r[0].unit.sample),
            ("d1", 0)
        );
        assert!(r[0].scores[0].is_nan());
        assert_eq!(r[1].scores, vec![2.0, -2.0]);
        assert_eq!(r[2].sentence, "G0 G9");
        assert_eq!(again.finished().unwrap().len(), 3);
        let path = again.write_results().unwrap();
        let df = read_frame(&path).unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "perturbation",
                "context",
                "sample",
                "replicate",
                "score:S1",
                "score:S2",
                "sentence",
                "generated"
            ]
        );
    }

    #[test]
    fn another_screen_or_a_foreign_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        Store::create_or_open(&out, &spec(tmp.path(), 0)).unwrap();
        let e = Store::create_or_open(&out, &spec(tmp.path(), 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("different screen"), "{e}");
        let foreign = tmp.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("x.txt"), "mine").unwrap();
        let e = Store::create_or_open(&foreign, &spec(tmp.path(), 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty"), "{e}");
        let e = Store::open(&foreign).unwrap_err().to_string();
        assert!(e.contains("manifest.json is missing"), "{e}");
    }

    #[test]
    fn merge_joins_shards_and_checks_they_agree() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(tmp.path(), 0);
        let (a, b, whole) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("w"),
        );
        let controls = vec![ControlResult {
            context: "a".into(),
            sample: 0,
            sentence: "G1".into(),
            scores: vec![0.5, 0.25],
        }];
        for (dir, rows) in [
            (&a, vec![result("d1", 0, 1.0)]),
            (&b, vec![result("d1", 1, 2.0), result("d2", 0, 3.0)]),
            (
                &whole,
                vec![
                    result("d1", 0, 1.0),
                    result("d1", 1, 2.0),
                    result("d2", 0, 3.0),
                ],
            ),
        ] {
            let st = Store::create_or_open(dir, &s).unwrap();
            st.append(&rows).unwrap();
            st.write_controls(&controls).unwrap();
        }
        let merged = merge(&[a.clone(), b.clone()], &tmp.path().join("m")).unwrap();
        let w = Store::open(&whole).unwrap();
        assert_eq!(merged.results().unwrap(), w.results().unwrap());
        assert_eq!(merged.controls().unwrap(), Some(controls));
        assert!(merged.dir().join(RESULTS).exists());
        // A conflicting result for one unit is caught.
        Store::open(&b)
            .unwrap()
            .append(&[result("d1", 0, 9.0)])
            .unwrap();
        let e = merge(&[a.clone(), b], &tmp.path().join("m2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("two different results"), "{e}");
        let other = tmp.path().join("other");
        Store::create_or_open(&other, &spec(tmp.path(), 5)).unwrap();
        let e = merge(&[a, other], &tmp.path().join("m3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("different screens"), "{e}");
    }
}
