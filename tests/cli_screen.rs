//! `screen run`, `screen merge` and `screen report` on the random GPT-NeoX fixture.

use crate::common::{annotated, cli, read_parquet, strings, tied_counts, write};
use c2s_core::io::h5ad::{Storage, ValueType};
use std::path::{Path, PathBuf};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/gpt_neox_parallel")
}

/// A spec over an `.h5ad` whose genes are single tokens of the fixture's tokenizer.
fn spec(dir: &Path, seed: u64) -> PathBuf {
    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model().join("tokenizer.json")).unwrap())
            .unwrap();
    let mut names: Vec<String> = tokenizer["model"]["vocab"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            k.len() >= 3
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .cloned()
        .collect();
    names.sort();
    names.truncate(40);
    let ds = annotated(tied_counts(30, names.len(), 5), names.clone());
    write(dir, "cells.h5ad", &ds, Storage::Csr, ValueType::F32);
    std::fs::write(dir.join("lib.txt"), "DrugA\nDrugB\nDrugC\n").unwrap();
    std::fs::write(
        dir.join("sets.gmt"),
        format!("MHC\tx\t{}\n", names[..12].join("\t")),
    )
    .unwrap();
    std::fs::write(
        dir.join("pert.json"),
        r#"{"model_input": ["{control_cell_sentence} + {perturbation_name}:"], "response": ["{perturbed_cell_sentence}."]}"#,
    )
    .unwrap();
    let text = format!(
        "[[context]]\nname = \"T\"\nh5ad = \"cells.h5ad\"\nfilter = \"cell_type=T cell\"\n\
         samples = 2\nreplicates = 2\npreprocess = \"none\"\n\
         [[context]]\nname = \"B\"\nh5ad = \"cells.h5ad\"\nfilter = \"cell_type=B cell\"\n\
         samples = 2\nreplicates = 2\npreprocess = \"none\"\n\
         [library]\npath = \"lib.txt\"\n\
         [model]\ndir = \"{}\"\ntemplate_file = \"pert.json\"\ntop_k_genes = 3\n\
         [sampling]\nseed = {seed}\nmax_new_tokens = 12\n\
         [genesets]\ngmt = \"sets.gmt\"\nsets = [\"MHC\"]\n",
        model().display()
    );
    let path = dir.join(format!("screen{seed}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `screen run SPEC --device cpu --batch 1 --out OUT`: one unit per batch.
fn one_unit_batches(spec: &Path, out: &Path) -> Vec<String> {
    let (spec, out) = (spec.display().to_string(), out.display().to_string());
    [
        "screen", "run", &spec, "--device", "cpu", "--batch", "1", "--out", &out,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn screen_runs_resumes_merges_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = spec(d, 0);
    let (whole, s1, s2, merged) = (d.join("whole"), d.join("s1"), d.join("s2"), d.join("m"));
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec!["screen", "run", spec.to_str().unwrap(), "--device", "cpu"];
        let out = p(out);
        args.extend(["--out", out.as_str(), "--batch", "5"]);
        args.extend(extra);
        ok(&args)
    };
    let log = run(&whole, &[]);
    assert!(log.contains("24 of 24 units done (0 already)"), "{log}");
    assert!(log.contains("units/s, ETA"), "{log}");
    assert!(log.contains("screen complete"), "{log}");
    // Running again resumes: nothing is left to do.
    let log = run(&whole, &[]);
    assert!(log.contains("24 of 24 units done (24 already)"), "{log}");
    run(&s1, &["--shard", "1/2"]);
    let log = run(&s2, &["--shard", "2/2"]);
    assert!(log.contains("12 of 12 units done"), "{log}");
    let log = ok(&["screen", "merge", &p(&s1), &p(&s2), "--out", &p(&merged)]);
    assert!(log.contains("24 units"), "{log}");
    let a = read_parquet(&whole.join("results.parquet"));
    let b = read_parquet(&merged.join("results.parquet"));
    assert!(a.equals_missing(&b), "{a}\n{b}");
    let names: Vec<String> = a.get_column_names().iter().map(|n| n.to_string()).collect();
    assert_eq!(
        names,
        [
            "perturbation",
            "context",
            "sample",
            "replicate",
            "score:MHC",
            "sentence",
            "generated"
        ]
    );

    let (hits, sel, genes) = (
        d.join("hits.csv"),
        d.join("sel.parquet"),
        d.join("genes.csv"),
    );
    let log = ok(&[
        "screen",
        "report",
        &p(&merged),
        "--out",
        &p(&hits),
        "--selectivity",
        &p(&sel),
        "--genes",
        &p(&genes),
        "--top-genes",
        "3",
        "--volcano",
        &p(&d.join("plots")),
    ]);
    // One volcano per context and set.
    for c in ["T", "B"] {
        let svg =
            std::fs::read_to_string(d.join("plots").join(format!("volcano-{c}-MHC.svg"))).unwrap();
        assert!(svg.contains(&format!("MHC in {c}")), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
    assert!(log.contains("hits (z ≥ 0.75, p < 0.05) of 6 rows"), "{log}");
    let csv = std::fs::read_to_string(&hits).unwrap();
    assert!(
        csv.starts_with("perturbation,context,set,n,mean,control_mean,effect,z,t,p,q,hit\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 6);
    let sel = read_parquet(&sel);
    assert_eq!(strings(&sel, "context_a"), vec!["T"; 3]);
    // Top genes: at most 3 per direction for each of the 3 perturbations × 2 contexts, each
    // shift in [−1, 1] with the sign its direction says.
    let genes = std::fs::read_to_string(&genes).unwrap();
    let mut lines = genes.lines();
    assert_eq!(
        lines.next(),
        Some("perturbation,context,direction,rank,gene,shift")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(!rows.is_empty() && rows.len() <= 3 * 2 * 2 * 3, "{genes}");
    for r in &rows {
        let shift: f64 = r[5].parse().unwrap();
        let rank: usize = r[3].parse().unwrap();
        assert!((1..=3).contains(&rank), "{r:?}");
        match r[2] {
            "up" => assert!(shift > 0.0 && shift <= 1.0, "{r:?}"),
            "down" => assert!((-1.0..0.0).contains(&shift), "{r:?}"),
            other => panic!("direction {other}"),
        }
    }
}

#[test]
fn screen_bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (spec0, spec1) = (spec(d, 0), spec(d, 1));
    let out = d.join("out");
    let fail = |args: &[&str], expected: &str| {
        let o = cli(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    let (s0, s1, o) = (
        spec0.to_str().unwrap(),
        spec1.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    fail(
        &["screen", "run", s0, "--out", o, "--shard", "0/3"],
        "is not I/N",
    );
    ok(&[
        "screen", "run", s0, "--out", o, "--device", "cpu", "--shard", "1/8",
    ]);
    fail(
        &["screen", "run", s1, "--out", o, "--device", "cpu"],
        "holds results of a different screen",
    );
    fail(&["screen", "report", o], "not finished");
    std::fs::write(d.join("lib.txt"), "DrugA\nDrugB\nDrugA\n").unwrap();
    fail(&["screen", "run", s0, "--out", o], "DrugA (lines 1, 3)");
}

/// Ctrl-C (SIGINT) stops a run within a decoding step with a message saying how to resume;
/// finished units are kept, and the resumed run equals an uninterrupted one.
#[cfg(unix)]
#[test]
fn screen_interrupted_by_ctrl_c_resumes_to_the_same_results() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = spec(d, 0);
    // 40 perturbations × 2 contexts × 2 samples × 2 replicates = 320 units, one per batch: the
    // interrupt lands long before the end.
    let names: Vec<String> = (0..40).map(|i| format!("Drug{i}\n")).collect();
    std::fs::write(d.join("lib.txt"), names.concat()).unwrap();
    let (cut, whole) = (d.join("cut"), d.join("whole"));
    let args = |out: &Path| one_unit_batches(&spec, out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_c2s-studio"))
        .args(args(&cut))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut interrupted = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if !interrupted && line.contains("units/s") {
            let pid = libc::pid_t::try_from(child.id()).unwrap();
            // SAFETY: sends a signal to our own child process; no memory is passed.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
            interrupted = true;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(interrupted, "no progress line: {log}");
    assert!(!status.success(), "{log}");
    assert!(log.contains("interrupted: stopping"), "{log}");
    assert!(
        log.contains("running the same command again resumes"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    let resumed = ok(&args(&cut).iter().map(String::as_str).collect::<Vec<_>>());
    let kept: usize = resumed
        .split("units done (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{resumed}"));
    assert!(kept > 0 && kept < 320, "{kept} units kept: {resumed}");
    assert!(resumed.contains("screen complete"), "{resumed}");
    ok(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    let a = read_parquet(&cut.join("results.parquet"));
    let b = read_parquet(&whole.join("results.parquet"));
    assert!(a.equals_missing(&b), "{a}\n{b}");
}

/// The spec as flags runs the same screen as the TOML file (identical results), saves it as
/// `screen.toml` in the results folder, and resumes when run again.
#[test]
fn screen_from_flags_equals_the_spec_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = spec(d, 0);
    let (from_file, from_flags) = (d.join("file"), d.join("flags"));
    let p = |x: &Path| x.to_str().unwrap().to_string();
    ok(&[
        "screen",
        "run",
        &p(&spec),
        "--out",
        &p(&from_file),
        "--device",
        "cpu",
    ]);
    let cells = d.join("cells.h5ad");
    let flags: Vec<String> = [
        "screen",
        "run",
        "--model",
        &p(&model()),
        "--context",
        &format!("T={}:cell_type=T cell", p(&cells)),
        "--context",
        &format!("B={}:cell_type=B cell", p(&cells)),
        "--library",
        &p(&d.join("lib.txt")),
        "--gmt",
        &p(&d.join("sets.gmt")),
        "--set",
        "MHC",
        "--samples",
        "2",
        "--replicates",
        "2",
        "--preprocess",
        "none",
        "--template-file",
        &p(&d.join("pert.json")),
        "--top-k-genes",
        "3",
        "--max-new-tokens",
        "12",
        "--seed",
        "0",
        "--out",
        &p(&from_flags),
        "--device",
        "cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let log = ok(&flags);
    assert!(log.contains("24 of 24 units done (0 already)"), "{log}");
    let a = read_parquet(&from_file.join("results.parquet"));
    let b = read_parquet(&from_flags.join("results.parquet"));
    assert!(a.equals_missing(&b), "{a}\n{b}");
    let log = ok(&[
        "screen",
        "run",
        &p(&from_flags.join("screen.toml")),
        "--out",
        &p(&from_flags),
        "--device",
        "cpu",
    ]);
    assert!(log.contains("24 of 24 units done (24 already)"), "{log}");
    let o = cli(&[
        "screen",
        "run",
        "--model",
        &p(&model()),
        "--out",
        &p(&d.join("x")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("give a spec file, or --library"));

    // Pseudo-bulk samples: one per cell type of the whole file, saved in the spec.
    let bulk = d.join("bulk");
    let mut args: Vec<&str> = flags[..flags.len() - 4].to_vec();
    let all = format!("ALL={}", p(&cells));
    let bulk_out = p(&bulk);
    args.retain(|a| !a.contains(":cell_type="));
    args.retain(|a| *a != "--context");
    args.extend(["--context", &all, "--pseudobulk", "ALL=cell_type"]);
    args.extend(["--out", &bulk_out, "--device", "cpu"]);
    ok(&args);
    let saved = std::fs::read_to_string(bulk.join("screen.toml")).unwrap();
    assert!(saved.contains("pseudobulk = \"cell_type\""), "{saved}");
    let results = read_parquet(&bulk.join("results.parquet"));
    assert!(results.height() > 0 && results.height().is_multiple_of(3 * 2));
    args.extend(["--pseudobulk", "NOPE=cell_type"]);
    let o = cli(&args);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("names context \"NOPE\", which no --context defines"),
        "{stderr}"
    );
}

/// A disk that fills up. A file-size limit (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored, so an
/// oversized write fails with EFBIG as a write to a full disk fails with ENOSPC) lets every
/// batch's small part through but not the merged `results.parquet`. The run names the file,
/// says the finished units are kept and how to go on, leaves no half-written file, and run
/// again with room it completes from those units with the results of an unlimited run.
#[test]
fn screen_on_a_full_disk_keeps_its_units_and_completes_when_run_again() {
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = spec(d, 0);
    let args = |out: &Path| one_unit_batches(&spec, out);
    let (full, whole) = (d.join("full"), d.join("whole"));
    ok(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let largest_other = std::fs::read_dir(whole.join("parts"))
        .unwrap()
        .map(|e| size(&e.unwrap().path()))
        .chain([
            size(&whole.join("manifest.json")),
            size(&whole.join("controls.parquet")),
        ])
        .max()
        .unwrap();
    let results = size(&whole.join("results.parquet"));
    let limit = largest_other + 256;
    assert!(
        limit < results,
        "the test needs results.parquet ({results} B) to outgrow every other file \
         ({largest_other} B)"
    );

    let mut limited = Command::new(env!("CARGO_BIN_EXE_c2s-studio"));
    limited.args(args(&full));
    // SAFETY: runs in the forked child before exec and only calls async-signal-safe
    // functions (signal, setrlimit) on plain values.
    unsafe {
        limited.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = limited.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write") && stderr.contains("results.parquet"),
        "{stderr}"
    );
    assert!(
        stderr.contains("its 24 finished units are kept in")
            && stderr.contains("run the same screen again"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!full.join("results.parquet").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".c2s-partial-"))
        .collect();
    assert!(leftovers.is_empty(), "half-written files: {leftovers:?}");

    let again = ok(&args(&full).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        again.contains("24 of 24 units done (24 already)"),
        "{again}"
    );
    assert!(again.contains("screen complete"), "{again}");
    let a = read_parquet(&full.join("results.parquet"));
    let b = read_parquet(&whole.join("results.parquet"));
    assert!(a.equals_missing(&b), "{a}\n{b}");
}
