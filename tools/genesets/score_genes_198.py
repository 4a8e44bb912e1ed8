#!/usr/bin/env python3
"""Write tests/fixtures/genesets/score_genes_1.9.8.json: `scanpy.tl.score_genes` as scanpy 1.9.8 (the
release the C2S-Scale paper used) computes it, on the same cases as score_genes_1.11.5.json (run
make_fixtures.py first). Runs in the scanpy 1.9.8 venv (requirements-scanpy198.txt).

scanpy 1.9.8 does not return its control genes; control_genes_198() below repeats its selection loop
line for line (np.random.shuffle of every bin, first ctrl_size genes, list genes removed), and the score
recomputed from those controls must equal scanpy's bit for bit.

Usage: score_genes_198.py [--shared DIR] [--out DIR]      (run through run.sh)
"""

import argparse
import json
import os
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from scanpy.tools._score_genes import _sparse_nanmean

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def control_genes_198(adata, gene_list, ctrl_size, n_bins=25):
    """scanpy 1.9.8's control-gene selection, as in its score_genes (random_state=0, gene_pool=None)."""
    np.random.seed(0)
    use_raw = adata.raw is not None
    _adata = adata.raw if use_raw else adata
    var_names = _adata.var_names
    gene_list = set(g for g in gene_list if g in var_names)
    gene_pool = list(var_names)
    x = _adata.X
    obs_avg = pd.Series(
        np.array(_sparse_nanmean(x, axis=0)).flatten() if sp.issparse(x) else np.nanmean(x, axis=0),
        index=gene_pool,
    )
    obs_avg = obs_avg[np.isfinite(obs_avg)]
    n_items = int(np.round(len(obs_avg) / (n_bins - 1)))
    obs_cut = obs_avg.rank(method="min") // n_items
    control = set()
    for cut in np.unique(obs_cut.loc[list(gene_list)]):
        r_genes = np.array(obs_cut[obs_cut == cut].index)
        np.random.shuffle(r_genes)
        control.update(set(r_genes[:ctrl_size]))
    control = sorted(control - gene_list)
    gene_list = sorted(gene_list)

    def means(genes):
        sub = _adata[:, genes].X
        if sp.issparse(sub):
            return np.array(_sparse_nanmean(sub, axis=1)).flatten()
        return np.nanmean(sub, axis=1, dtype="float64")

    return control, means(gene_list) - means(control)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "genesets"))
    args = ap.parse_args()
    with open(os.path.join(args.out, "score_genes_1.11.5.json")) as f:
        cases_115 = json.load(f)["cases"]
    with open(os.path.join(args.out, "ssgsea_ties.json")) as f:
        ties = json.load(f)
    counts = np.array(ties["counts"], dtype=np.float32)
    data = {
        "ties_dense_f32": ad.AnnData(counts),
        "ties_csr": ad.AnnData(sp.csr_matrix(counts)),
    }
    for a in data.values():
        a.var_names = ties["genes"]
    pbmc = os.path.join(args.shared, "expression", "pbmc68k_reduced.h5ad")
    if os.path.exists(pbmc):
        data["pbmc_raw"] = ad.read_h5ad(pbmc)
    cases = []
    for case in cases_115:
        adata = data.get(case["data"])
        if adata is None:
            print(f"skipped a {case['data']} case: {pbmc} is absent")
            continue
        a = adata.copy()
        sc.tl.score_genes(a, case["genes"], ctrl_size=case["ctrl_size"], random_state=0)
        score = a.obs["score"].to_numpy()
        control, check = control_genes_198(a, case["genes"], case["ctrl_size"])
        # Means over a differently ordered gene list may differ in the last bit only.
        assert np.allclose(check, score, rtol=0, atol=1e-12), f"{case['data']}: controls do not reproduce scanpy 1.9.8"
        cases.append({**case, "control": control, "scores": score.tolist()})
    path = os.path.join(args.out, "score_genes_1.9.8.json")
    versions = {"python": sys.version.split()[0], "scanpy": sc.__version__, "anndata": ad.__version__, "numpy": np.__version__, "pandas": pd.__version__}
    with open(path, "w") as f:
        json.dump({"reference": "scanpy.tl.score_genes(random_state=0) as scanpy 1.9.8", "versions": versions, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
