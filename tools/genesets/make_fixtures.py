#!/usr/bin/env python3
"""Write the gene-set scoring and statistics reference fixtures under tests/fixtures/genesets/.

Every reference value is produced by the real packages (versions pinned in requirements.txt):
  * ssGSEA: `gseapy.ssgsea(data, gene_sets=GMT, sample_norm_method='rank', weight=W, min_size, max_size,
    permutation_num=0, threads=1, outdir=None, no_plot=True).res2d` for W in 0, 0.25, 1;
  * score_genes: `scanpy.tl.score_genes(adata, genes, ctrl_size=C, random_state=0)` (1.11.5). scanpy does not
    return its control genes, so they are re-drawn through scanpy's own `_score_genes_bins` with the same
    seed, and the score recomputed from them must equal scanpy's bit for bit;
  * Welch's t-test: `scipy.stats.ttest_ind(a, b, equal_var=False)`;
  * Benjamini-Hochberg: `statsmodels.stats.multitest.multipletests(p, method='fdr_bh')`;
  * z-scores: `scipy.stats.zscore(x)` (ddof=0).

Data:
  * PBMC: the `.raw` matrix (log-normalised CSR float32, 700 x 765) of
    ../shared/data/expression/pbmc68k_reduced.h5ad with the MSigDB Hallmark 7.5.1 GMT beside it. ssGSEA
    runs on all 700 cells (NES depends on the whole call); every 25th cell's ES/NES is stored.
    Skipped with a message when the shared data is absent.
  * ties: a synthetic tie-heavy matrix (integer counts, ~70 % zeros, 60 samples x 300 genes) and a
    synthetic GMT (ties.gmt, with CRLF, a trailing tab, a blank line and genes absent from the data),
    both written here and committed.

Usage: make_fixtures.py [--shared DIR] [--out DIR]      (run through run.sh)
"""

import argparse
import json
import os
import sys
import warnings

import anndata as ad
import gseapy
import numpy as np
import pandas as pd
import scanpy as sc
import scipy
import scipy.sparse as sp
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
WEIGHTS = [0.0, 0.25, 1.0]
PBMC_SCORE_SETS = [
    "HALLMARK_INTERFERON_ALPHA_RESPONSE",
    "HALLMARK_ALLOGRAFT_REJECTION",
    "HALLMARK_OXIDATIVE_PHOSPHORYLATION",
]


def versions():
    return {
        "python": sys.version.split()[0],
        "gseapy": gseapy.__version__,
        "scanpy": sc.__version__,
        "anndata": ad.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
    }


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path)} bytes)")


def run_ssgsea(df, gmt, weight, min_size, max_size):
    """ES and NES as {(sample, term): (es, nes)} from one gseapy call on every column of df."""
    res = gseapy.ssgsea(
        data=df,
        gene_sets=gmt,
        sample_norm_method="rank",
        weight=weight,
        min_size=min_size,
        max_size=max_size,
        permutation_num=0,
        threads=1,
        outdir=None,
        no_plot=True,
        verbose=False,
    ).res2d
    return {(str(r.Name), str(r.Term)): (float(r.ES), float(r.NES)) for r in res.itertuples()}


def ssgsea_runs(df, gmt, min_size, max_size, keep_samples):
    runs, terms = [], None
    for w in WEIGHTS:
        got = run_ssgsea(df, gmt, w, min_size, max_size)
        t = sorted({term for (_, term) in got})
        assert terms is None or terms == t, "the size filter does not depend on the weight"
        terms = t
        runs.append(
            {
                "weight": w,
                "es": [[got[(s, term)][0] for term in terms] for s in keep_samples],
                "nes": [[got[(s, term)][1] for term in terms] for s in keep_samples],
            }
        )
    return terms, runs


def score_genes_case(adata, genes, ctrl_size, label):
    """scanpy's score and its control genes for one set (scanpy does not return the controls, so
    they are re-drawn through scanpy's own binning generator with the same seed, and the score is
    recomputed from them as a check)."""
    a = adata.copy()
    sc.tl.score_genes(a, genes, ctrl_size=ctrl_size, random_state=0, use_raw=None)
    score = a.obs["score"].to_numpy()
    from scanpy.tools import _score_genes as m

    use_raw = a.raw is not None
    np.random.seed(0)
    gene_list, gene_pool, get_subset = m._check_score_genes_args(a, genes, None, use_raw=use_raw, layer=None)
    control = pd.Index([], dtype="string")
    for r in m._score_genes_bins(gene_list, gene_pool, ctrl_as_ref=True, ctrl_size=ctrl_size, n_bins=25, get_subset=get_subset):
        control = control.union(r)
    means = lambda g: np.asarray(m._nan_means(get_subset(g), axis=1, dtype="float64")).ravel()  # noqa: E731
    check = means(gene_list) - means(control)
    assert np.array_equal(check, score), f"{label}: recomputed controls do not reproduce scanpy's score"
    return {"data": label, "genes": list(map(str, genes)), "ctrl_size": ctrl_size, "control": list(map(str, control)), "scores": score.tolist()}


def ties_data():
    rng = np.random.RandomState(12)
    n_samples, n_genes = 60, 300
    lam = rng.gamma(0.6, 1.5, size=n_genes)
    counts = rng.poisson(lam[None, :] * rng.uniform(0.2, 1.0, size=(n_samples, 1)))
    counts[rng.uniform(size=counts.shape) < 0.45] = 0
    genes = [f"G{i:03d}" for i in range(n_genes)]
    # Sets of several sizes, members spread over the gene order, a few names absent from the data.
    sets = {}
    for k, size in enumerate([5, 8, 12, 20, 35, 60, 4]):
        members = sorted(rng.choice(n_genes, size=size, replace=False).tolist())
        names = [genes[i] for i in members] + ([f"ABSENT{k}"] if k % 2 == 0 else [])
        sets[f"SET_{k}_SIZE{size}"] = names
    lines = []
    for i, (name, names) in enumerate(sets.items()):
        line = name + "\tsynthetic\t" + "\t".join(names)
        if i == 1:
            line += "\t"  # trailing tab
        lines.append(line + ("\r\n" if i % 2 else "\n"))
        if i == 2:
            lines.append("\n")  # blank line
    return genes, counts, sets, "".join(lines)


def make_ties(out):
    genes, counts, sets, gmt_text = ties_data()
    gmt_path = os.path.join(out, "ties.gmt")
    with open(gmt_path, "w", newline="") as f:
        f.write(gmt_text)
    print(f"wrote {os.path.relpath(gmt_path, REPO)}")
    samples = [f"s{i}" for i in range(counts.shape[0])]
    df = pd.DataFrame(counts.T.astype(np.float64), index=genes, columns=samples)
    min_size, max_size = 5, 500
    terms, runs = ssgsea_runs(df, gmt_path, min_size, max_size, samples)
    write_json(
        os.path.join(out, "ssgsea_ties.json"),
        {
            "reference": "gseapy.ssgsea(sample_norm_method='rank', permutation_num=0, threads=1)",
            "versions": versions(),
            "genes": genes,
            "counts": counts.tolist(),
            "gmt": "ties.gmt",
            "min_size": min_size,
            "max_size": max_size,
            "sets": terms,
            "runs": runs,
        },
    )
    cases = []
    dense = ad.AnnData(counts.astype(np.float32))
    dense.var_names = genes
    csr = ad.AnnData(sp.csr_matrix(counts.astype(np.float32)))
    csr.var_names = genes
    for name in ["SET_3_SIZE20", "SET_5_SIZE60"]:
        present = [g for g in sets[name] if g in set(genes)]
        for ctrl in [50, 12, 5]:
            cases.append(score_genes_case(dense, present, ctrl, "ties_dense_f32"))
            cases.append(score_genes_case(csr, present, ctrl, "ties_csr"))
    return cases


def make_pbmc(shared, out):
    path = os.path.join(shared, "expression", "pbmc68k_reduced.h5ad")
    gmt = os.path.join(shared, "genesets", "h.all.v7.5.1.symbols.gmt")
    if not (os.path.exists(path) and os.path.exists(gmt)):
        print(f"skipped the PBMC fixtures: {path} or {gmt} is absent")
        return []
    adata = ad.read_h5ad(path)
    raw = adata.raw.to_adata()
    x = raw.X.toarray()
    cells = list(map(str, raw.obs_names))
    df = pd.DataFrame(x.T, index=list(map(str, raw.var_names)), columns=cells)
    keep = list(range(0, len(cells), 25))
    min_size, max_size = 15, 500
    terms, runs = ssgsea_runs(df, gmt, min_size, max_size, [cells[i] for i in keep])
    write_json(
        os.path.join(out, "ssgsea_pbmc.json"),
        {
            "reference": "gseapy.ssgsea(sample_norm_method='rank', permutation_num=0, threads=1) on all 700 cells",
            "versions": versions(),
            "data": "pbmc68k_reduced.h5ad .raw (log-normalised CSR float32)",
            "gmt": "h.all.v7.5.1.symbols.gmt",
            "min_size": min_size,
            "max_size": max_size,
            "n_cells": len(cells),
            "cells": keep,
            "cell_ids": [cells[i] for i in keep],
            "sets": terms,
            "runs": runs,
        },
    )
    gmt_sets = {l.split("\t")[0]: l.strip().split("\t")[2:] for l in open(gmt)}
    cases = []
    var = set(raw.var_names)
    for name in PBMC_SCORE_SETS:
        genes = [g for g in gmt_sets[name] if g in var]
        for ctrl in [50, 10]:
            cases.append(score_genes_case(adata, genes, ctrl, "pbmc_raw"))
    return cases


def make_stats(out):
    rng = np.random.RandomState(5)
    welch = []
    shapes = [(3, 3, 1.0, 1.0, 0.0), (4, 7, 1.0, 3.0, 1.5), (10, 6, 0.2, 2.0, -0.7), (25, 30, 1.0, 1.0, 0.3), (2, 2, 1.0, 5.0, 4.0), (5, 40, 0.01, 1.0, 8.0)]
    for na, nb, sa, sb, shift in shapes:
        a = rng.normal(0.0, sa, na)
        b = rng.normal(shift, sb, nb)
        r = stats.ttest_ind(a, b, equal_var=False)
        welch.append({"a": a.tolist(), "b": b.tolist(), "t": float(r.statistic), "p": float(r.pvalue), "df": float(r.df)})
    # Degenerate: one group of one value, both groups constant, one group constant.
    for a, b in [([1.0], [2.0, 3.0, 4.0]), ([2.0, 2.0, 2.0], [2.0, 2.0]), ([1.0, 1.0, 1.0], [2.0, 2.5, 3.5])]:
        r = stats.ttest_ind(np.array(a), np.array(b), equal_var=False)
        to = lambda v: None if not np.isfinite(v) else float(v)  # noqa: E731
        welch.append({"a": a, "b": b, "t": to(r.statistic), "p": to(r.pvalue), "df": to(r.df)})
    p = np.concatenate([rng.uniform(size=40), rng.uniform(size=10) * 1e-3, [0.01, 0.01, 0.01, 1.0, 0.0]])
    rng.shuffle(p)
    q = multipletests(p, method="fdr_bh")[1]
    x = rng.normal(2.0, 3.0, 30)
    write_json(
        os.path.join(out, "stats.json"),
        {
            "reference": "scipy.stats.ttest_ind(equal_var=False); statsmodels multipletests(method='fdr_bh'); scipy.stats.zscore",
            "versions": versions(),
            "welch": welch,
            "bh": {"p": p.tolist(), "q": q.tolist()},
            "zscore": {"x": x.tolist(), "z": stats.zscore(x).tolist()},
        },
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "genesets"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cases = make_ties(args.out) + make_pbmc(args.shared, args.out)
    write_json(
        os.path.join(args.out, "score_genes_1.11.5.json"),
        {"reference": "scanpy.tl.score_genes(ctrl_as_ref=True, n_bins=25, random_state=0)", "versions": versions(), "cases": cases},
    )
    make_stats(args.out)


if __name__ == "__main__":
    main()
