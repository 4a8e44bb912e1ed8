//! `c2s-studio bench-kernels`: the CPU engine's packed matrix products (f32 and 8-bit weights)
//! next to torch's `F.linear` on the same shapes, threads and machine, in one run. The default
//! shapes are a Pythia-160M's: its training products (8 × 256 token rows through each dense
//! layer and the head, forward `x·Wᵀ` and backward `dy·W`) and its decode products (1 and 16
//! rows). The Python side is `tools/models/bench_matmul.py` (run with the pinned venv). Last,
//! the machine's f32 multiply-add ceiling, which bounds what any f32 kernel can gain.

use super::bench_engine::reference_json;
use c2s_core::kernels::{PackedMatrix, WeightFormat};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// Arguments of `bench-kernels`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Products to time, as `MxKxN` (M input rows of K values times an N×K weight).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2048x768x2304,2048x2304x768,2048x768x768,2048x768x3072,2048x3072x768,\
                         2048x768x50304,1x768x2304,1x768x50304,16x768x2304,16x768x50304"
    )]
    pub shapes: Vec<String>,
    /// Timed runs per shape (the best counts), after one warm-up run.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Python with torch (default: tools/models/.venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the torch side.
    #[arg(long)]
    pub no_reference: bool,
}

/// One product's shape.
#[derive(Debug, Clone, Copy)]
struct Shape {
    m: usize,
    k: usize,
    n: usize,
}

impl Shape {
    fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<usize> = text
            .trim()
            .split('x')
            .map(|v| v.parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("--shapes: '{text}' is not MxKxN (three whole numbers)"))?;
        match parts[..] {
            [m, k, n] if m > 0 && k > 0 && n > 0 => Ok(Self { m, k, n }),
            _ => Err(format!(
                "--shapes: '{text}' is not MxKxN (three numbers above 0)"
            )),
        }
    }

    fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
}

/// Runs the benchmark and prints a table.
pub fn run(args: Args) -> Result<(), String> {
    if args.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let shapes: Vec<Shape> = args
        .shapes
        .iter()
        .map(|s| Shape::parse(s))
        .collect::<Result<_, _>>()?;
    let threads = rayon::current_num_threads();
    let reference = if args.no_reference {
        None
    } else {
        Some(torch_seconds(&args, threads)?)
    };
    println!(
        "packed CPU kernels ({}) vs torch{} F.linear, {threads} threads, best of {} runs",
        c2s_core::kernels::Isa::detect().name(),
        reference
            .as_ref()
            .map(|(v, _)| format!(" {v}"))
            .unwrap_or_default(),
        args.reps
    );
    println!(
        "{:>16} | {:>10} {:>10} {:>7} | {:>10} {:>7}",
        "M×K×N", "f32 GF/s", "torch GF/s", "ratio", "q8 GF/s", "ratio"
    );
    let (mut best_ours, mut best_torch) = (0.0f64, 0.0f64);
    for (i, shape) in shapes.iter().enumerate() {
        let f32_s = time_product(*shape, WeightFormat::F32, args.reps);
        let q8_s = time_product(*shape, WeightFormat::Q8, args.reps);
        let rate = |s: f64| shape.flops() / s / 1e9;
        let torch = reference.as_ref().map(|(_, s)| s[i]);
        best_ours = best_ours.max(rate(f32_s));
        best_torch = best_torch.max(torch.map(rate).unwrap_or(0.0));
        let ratio = |s: f64| {
            torch
                .map(|t| format!("{:.2}x", t / s))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:>16} | {:>10.1} {:>10} {:>7} | {:>10.1} {:>7}",
            format!("{}×{}×{}", shape.m, shape.k, shape.n),
            rate(f32_s),
            torch
                .map(|t| format!("{:.1}", rate(t)))
                .unwrap_or_else(|| "-".into()),
            ratio(f32_s),
            rate(q8_s),
            ratio(q8_s),
        );
    }
    if let Some(peak) = fma_peak(args.reps) {
        let share = |rate: f64| format!("{:.0}%", 100.0 * rate / peak);
        println!(
            "f32 multiply-add ceiling of these {threads} threads: {peak:.1} GFLOP/s (AVX-512 \
             from registers); best f32 product: ours {} of it, torch {}",
            share(best_ours),
            if best_torch > 0.0 {
                share(best_torch)
            } else {
                "-".into()
            },
        );
    }
    Ok(())
}

/// The processor's f32 multiply-add ceiling in GFLOP/s: every pool thread runs 24 independent
/// chains of AVX-512 multiply-adds on registers (no memory traffic), best of `reps` runs. No
/// f32 product can run faster, which bounds what any kernel (ours or torch's) can gain over
/// another. `None` without AVX-512.
fn fma_peak(reps: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        const ITERATIONS: usize = 4_000_000;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return None;
        }
        let seconds = (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                // SAFETY: AVX-512 F was detected above.
                rayon::broadcast(|_| std::hint::black_box(unsafe { fma_chains(ITERATIONS) }));
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        let flops = rayon::current_num_threads() as f64 * ITERATIONS as f64 * 24.0 * 32.0;
        Some(flops / seconds / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = reps;
        None
    }
}

/// `iterations` rounds of 24 independent 16-lane multiply-adds (32 flops each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains(iterations: usize) -> f32 {
    use std::arch::x86_64::*;
    // Values the compiler cannot see, so that it cannot fold the chains (1.0 · 0.9999 + 1e-4
    // is 1.0 again in f32).
    let hidden = std::hint::black_box([0.9999f32, 1e-4, 0.5]);
    let (scale, shift) = (_mm512_set1_ps(hidden[0]), _mm512_set1_ps(hidden[1]));
    let mut chains: [__m512; 24] = std::array::from_fn(|i| _mm512_set1_ps(hidden[2] + i as f32));
    for _ in 0..iterations {
        for chain in chains.iter_mut() {
            *chain = _mm512_fmadd_ps(*chain, scale, shift);
        }
    }
    chains.iter().map(|c| _mm512_reduce_add_ps(*c)).sum()
}

/// The best time of `reps` products of `shape` with weights packed as `format`.
fn time_product(shape: Shape, format: WeightFormat, reps: usize) -> f64 {
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + seed) as f32 * 0.618).sin())
            .collect()
    };
    let weight = PackedMatrix::pack(&values(shape.n * shape.k, 1), shape.n, shape.k, format);
    let x = values(shape.m * shape.k, 2);
    std::hint::black_box(weight.matmul(&x, shape.m));
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(weight.matmul(&x, shape.m));
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// torch's version and best seconds per shape.
fn torch_seconds(args: &Args, threads: usize) -> Result<(String, Vec<f64>), String> {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/models");
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| tools.join(".venv/bin/python"));
    if !python.exists() {
        return Err(format!(
            "{} not found; run tools/models/make_fixtures.sh once to create the venv, pass \
             --python, or --no-reference",
            python.display()
        ));
    }
    let mut command = Command::new(&python);
    command
        .arg(tools.join("bench_matmul.py"))
        .args(["--shapes", &args.shapes.join(",")])
        .args(["--reps", &args.reps.to_string()])
        .args(["--threads", &threads.to_string()]);
    let json = reference_json(&mut command, &python, "torch")?;
    let version = json["torch"].as_str().unwrap_or("?").to_string();
    let seconds: Vec<f64> = json["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    if seconds.len() != args.shapes.len() {
        return Err(format!(
            "the torch benchmark timed {} of {} shapes",
            seconds.len(),
            args.shapes.len()
        ));
    }
    Ok((version, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_bad_ones_are_named() {
        let s = Shape::parse("2048x768x2304").unwrap();
        assert_eq!((s.m, s.k, s.n), (2048, 768, 2304));
        assert_eq!(s.flops(), 2.0 * 2048.0 * 768.0 * 2304.0);
        for bad in ["2048x768", "0x1x1", "axbxc", ""] {
            let e = Shape::parse(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }
}
