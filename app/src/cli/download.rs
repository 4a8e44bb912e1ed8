//! `c2s-studio download`: fetch a model from the Hugging Face hub into the Hugging Face cache
//! (where Python tools find it too), or list the published C2S checkpoints. Progress goes to
//! stderr, the snapshot folder to stdout. An interrupted download (Ctrl-C, a lost connection)
//! resumes where it stopped when run again.

use c2s_core::hub::catalogue::CATALOGUE;
use c2s_core::hub::{HubConfig, download_model};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::format::{human_bytes, human_count};

/// Arguments of `download`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model id on the hub (org/name), e.g. vandijklab/C2S-Pythia-410m-cell-type-prediction.
    pub id: Option<String>,
    /// Branch, tag or commit hash to download.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Hub address; $HF_ENDPOINT or https://huggingface.co when omitted.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Hugging Face cache to download into; $HF_HUB_CACHE, $HF_HOME/hub or
    /// ~/.cache/huggingface/hub when omitted.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// List the published C2S checkpoints instead of downloading.
    #[arg(long, conflicts_with = "id")]
    pub list: bool,
}

/// Runs `download`.
pub fn run(args: Args) -> Result<(), String> {
    if args.list {
        print_catalogue();
        return Ok(());
    }
    let id = args.id.ok_or(
        "give the id (org/name) of the model to download, or --list to see the published C2S \
         checkpoints",
    )?;
    let config = match args.cache_dir {
        Some(dir) => HubConfig::new(dir),
        None => HubConfig::from_env().map_err(|e| e.to_string())?,
    };
    let config = match &args.endpoint {
        Some(endpoint) => config.with_endpoint(endpoint),
        None => config,
    };
    eprintln!(
        "downloading {id} ({}) from {} into {}",
        args.revision,
        config.endpoint,
        config.cache_dir.display()
    );
    let mut shown = ProgressLine::new();
    let done = download_model(
        &config,
        &id,
        &args.revision,
        &mut |file, got, total| shown.update(file, got, total),
        &AtomicBool::new(false),
    )
    .map_err(|e| e.to_string())?;
    if done.bytes_fetched == 0 {
        eprintln!("{id} at {}: already in the cache", done.commit);
    } else {
        eprintln!(
            "{id} at {}: fetched {}",
            done.commit,
            human_bytes(done.bytes_fetched)
        );
    }
    println!("{}", done.snapshot_dir.display());
    Ok(())
}

/// Prints [`CATALOGUE`]: id, architecture, size and licence, then the description.
fn print_catalogue() {
    for entry in &CATALOGUE {
        println!(
            "{:<64} {:<18} {:>9}  {}\n    {}",
            entry.id,
            entry.architecture,
            human_count(entry.parameters),
            entry.licence,
            entry.description
        );
    }
}

/// Per-file progress on stderr: a line redrawn a few times a second on a terminal, one line per
/// finished file otherwise.
struct ProgressLine {
    terminal: bool,
    drawn: Option<Instant>,
}

impl ProgressLine {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            drawn: None,
        }
    }

    fn update(&mut self, file: &str, got: u64, total: u64) {
        let finished = total > 0 && got >= total;
        if finished {
            let end = if self.terminal { "\r\x1b[K" } else { "" };
            eprintln!("{end}  {file}  {}", human_bytes(total));
            self.drawn = None;
        } else if self.terminal
            && self
                .drawn
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(200))
        {
            let percent = if total > 0 {
                format!(" ({:.0} %)", got as f64 * 100.0 / total as f64)
            } else {
                String::new()
            };
            eprint!(
                "\r\x1b[K  {file}  {} / {}{percent}",
                human_bytes(got),
                human_bytes(total)
            );
            self.drawn = Some(Instant::now());
        }
    }
}
