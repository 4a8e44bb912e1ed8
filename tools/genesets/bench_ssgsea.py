#!/usr/bin/env python3
"""Reference side of `c2s-studio bench-ssgsea`: time gseapy 1.3.1's ssGSEA on the matrix and GMT that the
benchmark wrote, and write its ES for the cross-check.

Usage: bench_ssgsea.py MATRIX.f32 N_SAMPLES N_GENES SETS.gmt OUT.f64 --weight W --threads T
  MATRIX.f32: samples x genes, little-endian float32, row-major; genes are named G0..G{n-1}, samples S0...
  OUT.f64: ES as float64, samples x sets in the GMT's order (sets gseapy filtered out are NaN).
Prints one JSON line: {"impl", "seconds", "threads", "sets"}. The timed call is gseapy.ssgsea itself
(DataFrame construction excluded), as a user would call it.
"""

import argparse
import json
import time

import gseapy
import numpy as np
import pandas as pd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("matrix")
    ap.add_argument("n_samples", type=int)
    ap.add_argument("n_genes", type=int)
    ap.add_argument("gmt")
    ap.add_argument("out")
    ap.add_argument("--weight", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    x = np.fromfile(args.matrix, dtype="<f4").reshape(args.n_samples, args.n_genes)
    genes = [f"G{j}" for j in range(args.n_genes)]
    samples = [f"S{i}" for i in range(args.n_samples)]
    df = pd.DataFrame(x.T.astype(np.float64), index=genes, columns=samples)
    terms = [line.split("\t")[0] for line in open(args.gmt) if line.strip()]
    t = time.perf_counter()
    res = gseapy.ssgsea(
        data=df,
        gene_sets=args.gmt,
        sample_norm_method="rank",
        weight=args.weight,
        min_size=15,
        max_size=500,
        permutation_num=0,
        threads=args.threads,
        outdir=None,
        no_plot=True,
        verbose=False,
    ).res2d
    seconds = time.perf_counter() - t
    es = pd.DataFrame(np.nan, index=samples, columns=terms)
    for name, term, value in zip(res["Name"], res["Term"], res["ES"]):
        es.at[name, term] = value
    es.to_numpy(dtype="<f8").tofile(args.out)
    print(json.dumps({"impl": f"gseapy {gseapy.__version__}", "seconds": seconds, "threads": args.threads, "sets": int(res["Term"].nunique())}))


if __name__ == "__main__":
    main()
