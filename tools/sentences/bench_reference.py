#!/usr/bin/env python3
"""Time the reference cell2sentence 1.2.0 conversion on an .h5ad file.

Usage: bench_reference.py INPUT.h5ad [--matrix x|raw] [--repeats N] [--parquet OUT.parquet]

Times `CSData.adata_to_arrow(adata)` (generate_vocabulary + generate_sentences + building the HF
arrow dataset), the call every upstream tutorial uses, on an AnnData already in memory. Each
repeat gets a freshly loaded AnnData, because the first call sorts the CSR indices of adata.X in
place. With --parquet, the first repeat is also timed end to end, as a user runs it: reading the
file (`anndata.read_h5ad`), the conversion, and writing the arrow dataset to OUT.parquet.
tqdm's progress bar is disabled (TQDM_DISABLE=1) so stderr stays quiet; its cost is negligible.
Anything the package prints goes to stderr. stdout gets exactly ONE JSON line:
  {"cells": N, "seconds": S, "cells_per_s": R, "impl": "cell2sentence 1.2.0", ...}
with S the median over the repeats (default 1). Extra keys: genes, nnz, matrix, repeats, all_seconds,
and with --parquet: end_to_end_seconds (read + convert + write), read_seconds, write_seconds.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--matrix", choices=["x", "raw"], default="x")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--parquet", default=None)
    args = ap.parse_args()

    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from c2s_import import import_c2s
        import anndata as ad
        import scipy.sparse as sp

        _, _, CSData, _ = import_c2s()

        def load():
            a = ad.read_h5ad(args.input)
            if args.matrix == "raw":
                if a.raw is None:
                    raise SystemExit(f"{args.input} has no .raw")
                a = a.raw.to_adata()
            return a

        times = []
        phases = {}
        for r in range(max(1, args.repeats)):
            t_read = time.perf_counter()
            adata = load()
            t0 = time.perf_counter()
            ds, vocab = CSData.adata_to_arrow(adata)
            t1 = time.perf_counter()
            times.append(t1 - t0)
            assert ds.num_rows == adata.n_obs
            if r == 0 and args.parquet:
                ds.to_parquet(args.parquet)
                t2 = time.perf_counter()
                phases = {
                    "end_to_end_seconds": t2 - t_read,
                    "read_seconds": t0 - t_read,
                    "write_seconds": t2 - t1,
                }
        X = adata.X
        nnz = int(X.nnz) if sp.issparse(X) else int((X != 0).sum())

    secs = statistics.median(times)
    out = {
        "cells": int(adata.n_obs),
        "seconds": secs,
        "cells_per_s": adata.n_obs / secs if secs > 0 else None,
        "impl": "cell2sentence 1.2.0",
        "genes": int(adata.n_vars),
        "nnz": nnz,
        "matrix": args.matrix,
        "repeats": len(times),
        "all_seconds": times,
        **phases,
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
