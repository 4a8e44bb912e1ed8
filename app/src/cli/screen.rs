//! `c2s-studio screen`: virtual perturbation screens. `run` runs a spec's units (resumable,
//! shardable) into a results folder, `merge` joins shard folders, `report` computes effects,
//! z-scores, Welch tests with BH q, context selectivity and hits.

use super::engine_args::DeviceArgs;
use super::interrupt;
use super::screen_flags::SpecFlags;
use c2s_core::Progress;
use c2s_core::io::export::{TableFormat, write_table};
use c2s_core::screen::genes::store_top_genes;
use c2s_core::screen::report::{EffectRow, HitThresholds, report};
use c2s_core::screen::run::{RunOptions, load_contexts, run_screen};
use c2s_core::screen::spec::ScreenSpec;
use c2s_core::screen::store::{RESULTS, SPEC_FILE, Store, merge};
use c2s_core::screen::table::{effects_frame, selectivity_frame, top_genes_frame};
use c2s_core::screen::units::Shard;
use c2s_core::screen::volcano_svg::{VolcanoStyle, write_volcano_svg};
use std::path::PathBuf;

/// Arguments of `screen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: ScreenCommand,
}

/// The screen subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ScreenCommand {
    /// Run a screen spec (TOML) into a results folder; running it again resumes.
    Run(Box<RunArgs>),
    /// Merge the results folders of a screen's shards into one.
    Merge(MergeArgs),
    /// Effects, z, Welch p, BH q, context selectivity and hits of a finished screen.
    Report(ReportArgs),
}

/// Arguments of `screen run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The screen spec (TOML); without it, the spec comes from the flags below and is saved as
    /// `screen.toml` in the results folder.
    #[arg(conflicts_with_all = ["model", "contexts", "library", "gmt", "sets"])]
    pub spec: Option<PathBuf>,
    /// The spec as flags.
    #[command(flatten)]
    pub flags: SpecFlags,
    /// Results folder (new, or one this screen already started: the run resumes).
    #[arg(long)]
    pub out: PathBuf,
    /// Run only shard I of N (1-based), e.g. from a Slurm array task; merge the folders after.
    #[arg(long)]
    pub shard: Option<String>,
    /// Units generated together (decoded as one batch when --kv-budget-mib allows) and
    /// stored together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Key/value cache budget of one decoding batch, in MiB: a batch needing more is decoded
    /// in smaller groups (results are the same).
    #[arg(long, default_value_t = 1024)]
    pub kv_budget_mib: u64,
    /// Backend and precision.
    #[command(flatten)]
    pub run: DeviceArgs,
}

/// Arguments of `screen merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Results folders of the shards.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Merged results folder (new, or a folder of the same screen).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `screen report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A finished results folder.
    pub dir: PathBuf,
    /// Every perturbation × context × set row (`.csv` or `.parquet`); hits are printed.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Context selectivity rows (`.csv` or `.parquet`).
    #[arg(long)]
    pub selectivity: Option<PathBuf>,
    /// Each perturbation's top predicted up and down genes per context, against the control
    /// (`.csv` or `.parquet`).
    #[arg(long)]
    pub genes: Option<PathBuf>,
    /// Write one volcano plot per context and set into this folder, as
    /// `volcano-<context>-<set>.svg`.
    #[arg(long)]
    pub volcano: Option<PathBuf>,
    /// Genes per direction in --genes.
    #[arg(long, default_value_t = 20)]
    pub top_genes: usize,
    /// A hit needs z (effect across the library) at least this.
    #[arg(long, default_value_t = 0.75)]
    pub min_z: f64,
    /// A hit needs p below this.
    #[arg(long, default_value_t = 0.05)]
    pub max_p: f64,
}

/// Runs `screen`.
pub fn run(args: Args) -> Result<(), String> {
    match args.command {
        ScreenCommand::Run(a) => run_command(*a),
        ScreenCommand::Merge(a) => {
            let store = merge(&a.dirs, &a.out).map_err(|e| e.to_string())?;
            let n = store.results().map_err(|e| e.to_string())?.len();
            eprintln!(
                "merged {} folders: {n} units in {}",
                a.dirs.len(),
                store.dir().join(RESULTS).display()
            );
            Ok(())
        }
        ScreenCommand::Report(a) => report_command(a),
    }
}

fn run_command(a: RunArgs) -> Result<(), String> {
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>().map_err(|e| e.to_string())?,
        None => Shard::ALL,
    };
    let spec = match &a.spec {
        Some(path) => ScreenSpec::load(path).map_err(|e| e.to_string())?,
        None => a.flags.spec()?,
    };
    let progress = Progress::new();
    interrupt::cancel_on_interrupt(
        &progress,
        "stopping; the unfinished batch is dropped, finished units are kept",
    );
    // A folder of another screen is said at once; the inputs are read before anything is
    // written, so a bad context leaves no folder behind.
    Store::check_destination(&a.out, &spec).map_err(|e| e.to_string())?;
    let contexts = load_contexts(&spec, &progress).map_err(|e| e.to_string())?;
    let engine = a.run.load(&spec.model.dir.display().to_string(), false)?;
    let store = Store::create_or_open(&a.out, &spec).map_err(|e| e.to_string())?;
    if a.spec.is_none() {
        spec.save(&a.out.join(SPEC_FILE))
            .map_err(|e| e.to_string())?;
    }
    let summary = run_screen(
        &spec,
        &contexts,
        &store,
        &engine,
        RunOptions {
            batch: a.batch,
            shard,
            kv_budget_bytes: a.kv_budget_mib.saturating_mul(1 << 20),
        },
        &progress,
        &mut |_| eprintln!("{}", progress.stage()),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "shard {shard}: {} of {} units done ({} already), results in {}",
        summary.already_done + summary.done_now,
        summary.shard_units,
        summary.already_done,
        a.out.display()
    );
    if summary.cancelled {
        return Err(format!(
            "the screen was interrupted; {} finished units are kept in {} and running the same \
             command again resumes",
            summary.already_done + summary.done_now,
            a.out.display()
        ));
    }
    if summary.complete {
        eprintln!("screen complete: {}", a.out.join(RESULTS).display());
    }
    Ok(())
}

fn report_command(a: ReportArgs) -> Result<(), String> {
    for path in [&a.out, &a.selectivity, &a.genes].into_iter().flatten() {
        TableFormat::from_path(path).map_err(|e| e.to_string())?;
    }
    let store = Store::open(&a.dir).map_err(|e| e.to_string())?;
    let thresholds = HitThresholds {
        min_z: a.min_z,
        max_p: a.max_p,
    };
    let r = report(&store, thresholds).map_err(|e| e.to_string())?;
    let hits: Vec<&EffectRow> = r.effects.iter().filter(|e| e.hit).collect();
    println!(
        "{} hits (z ≥ {}, p < {}) of {} rows",
        hits.len(),
        a.min_z,
        a.max_p,
        r.effects.len()
    );
    for h in &hits {
        println!(
            "{}\t{}\t{}\teffect {:+.4}\tz {:.3}\tp {:.3e}\tq {:.3e}",
            h.perturbation, h.context, h.set, h.effect, h.z, h.p, h.q
        );
    }
    if let Some(path) = &a.out {
        write_table(path, &mut effects_frame(&r.effects)).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &a.selectivity {
        write_table(path, &mut selectivity_frame(&r.selectivity)).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &a.genes {
        let genes = store_top_genes(&store, a.top_genes).map_err(|e| e.to_string())?;
        write_table(path, &mut top_genes_frame(&genes)).map_err(|e| e.to_string())?;
    }
    if let Some(dir) = &a.volcano {
        write_volcanoes(dir, &store, &r.effects, thresholds)?;
    }
    Ok(())
}

/// One SVG volcano per context × set of `effects` into `dir`, named by both.
fn write_volcanoes(
    dir: &std::path::Path,
    store: &Store,
    effects: &[EffectRow],
    thresholds: HitThresholds,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let manifest = store.manifest();
    for context in &manifest.spec.contexts {
        for set in &manifest.sets {
            let rows: Vec<EffectRow> = effects
                .iter()
                .filter(|r| r.context == context.name && r.set == *set)
                .cloned()
                .collect();
            let style = VolcanoStyle::new(&rows, &context.name, set, thresholds);
            let name = format!(
                "volcano-{}-{}.svg",
                file_safe(&context.name),
                file_safe(set)
            );
            let path = dir.join(name);
            write_volcano_svg(&path, &rows, &style).map_err(|e| e.to_string())?;
            eprintln!(
                "volcano of {set} in {} saved to {}",
                context.name,
                path.display()
            );
        }
    }
    Ok(())
}

/// `name` with every character but letters, digits, `-`, `_` and `.` replaced by `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
