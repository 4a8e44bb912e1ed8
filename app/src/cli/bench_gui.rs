//! `bench-gui`: frame times of the desktop app's embedding view on generated demo datasets.
//!
//! Opens the window, measures each size in turn (see `gui::bench`), prints one line per size
//! and exits. Needs a display: under a headless server, run it inside `xvfb-run`.

use crate::gui;
use crate::gui::bench::BenchPlan;

/// Largest dataset the benchmark generates (the demo data takes about 150 bytes per cell).
const MAX_CELLS: usize = 20_000_000;

/// Arguments of `bench-gui`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset sizes in cells, comma-separated; each is generated, shown and measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub cells: Vec<usize>,
    /// Frames measured per size (after a short warm-up).
    #[arg(long, default_value_t = 120)]
    pub frames: usize,
}

/// Checks the arguments and turns them into a plan.
fn plan(args: Args) -> Result<BenchPlan, String> {
    if args.cells.is_empty() {
        return Err("give at least one size with --cells".into());
    }
    if let Some(bad) = args.cells.iter().find(|&&n| n == 0 || n > MAX_CELLS) {
        return Err(format!(
            "--cells {bad}: each size must be between 1 and {MAX_CELLS}"
        ));
    }
    if !(2..=100_000).contains(&args.frames) {
        return Err(format!(
            "--frames {}: measure between 2 and 100000 frames",
            args.frames
        ));
    }
    Ok(BenchPlan {
        sizes: args.cells,
        frames: args.frames,
    })
}

/// Runs the benchmark and prints a line per size as it finishes.
pub fn run(args: Args) -> Result<(), String> {
    let plan = plan(args)?;
    // Two reports per size: panning alone, then while a job streams tokens.
    let expected = 2 * plan.sizes.len();
    let (sender, receiver) = std::sync::mpsc::channel();
    // Print from a thread: the window owns the main thread until it closes.
    let printer = std::thread::spawn(move || -> Result<usize, String> {
        let mut done = 0;
        for message in receiver {
            println!("{}", message?);
            done += 1;
        }
        Ok(done)
    });
    let window = gui::run_bench(plan, sender);
    let printed = printer
        .join()
        .map_err(|_| "the report printer stopped".to_string())?;
    window?;
    match printed? {
        done if done == expected => Ok(()),
        done => Err(format!(
            "the window closed after {done} of {expected} measurements"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(line: &[&str]) -> Result<BenchPlan, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench-gui").chain(line.iter().copied()))
            .map_err(|e| e.to_string())?;
        plan(cli.args)
    }

    #[test]
    fn sizes_and_frames_are_parsed_and_checked() {
        assert_eq!(
            parse(&[]).unwrap(),
            BenchPlan {
                sizes: vec![100_000, 1_000_000],
                frames: 120
            }
        );
        assert_eq!(
            parse(&["--cells", "5000,20000", "--frames", "30"]).unwrap(),
            BenchPlan {
                sizes: vec![5000, 20000],
                frames: 30
            }
        );
        assert!(
            parse(&["--cells", "0"])
                .unwrap_err()
                .contains("between 1 and")
        );
        assert!(parse(&["--cells", "many"]).is_err());
        assert!(
            parse(&["--frames", "1"])
                .unwrap_err()
                .contains("--frames 1")
        );
    }
}
