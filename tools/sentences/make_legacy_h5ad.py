#!/usr/bin/env python3
"""Write tests/fixtures/sentences/legacy_anndata07.h5ad with anndata 0.7.8 (the pre-0.8 on-disk layout).

Run under the separate legacy venv (run.sh --legacy builds it at tools/sentences/.venv/legacy07 with
anndata==0.7.8, numpy==1.26.4, pandas==1.5.3, scipy==1.11.4, h5py==3.10.0; see requirements-legacy07.txt).
The reference sentences for this file are computed afterwards by make_fixtures.py with the main venv
(current anndata reads the old layout).

Contents (30 cells x 20 genes): X = CSR float32 integer counts (ties), raw = the same counts, obs with a
categorical `cell_type` (legacy `__categories` storage), a boolean, a string and a numeric column,
obsm X_umap, uns `cell_type_colors` (no layer, to stay under 50 KB; obs_meta.h5ad has one).
anndata 0.7 also turns the string column into a categorical on write.
"""

import os
import sys

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

assert anndata.__version__.startswith("0.7."), anndata.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "sentences", "legacy_anndata07.h5ad")

rs = np.random.RandomState(7)
n, g = 30, 20
X = rs.choice([0, 0, 0, 0, 1, 1, 2, 3], size=(n, g)).astype(np.float32)
X[0] = 0
cats = ["T cell", "B cell", "Monocyte"]
obs = pd.DataFrame(
    {
        "cell_type": pd.Categorical([cats[i % 3] for i in range(n)], categories=cats),
        "is_doublet": np.array([i % 5 == 0 for i in range(n)]),
        "batch": [f"b{i % 2}" for i in range(n)],
        "n_counts": X.sum(1).astype(np.float32),
    },
    index=[f"legacy_cell{i:02d}" for i in range(n)],
)
var = pd.DataFrame(index=[f"Gene{j:02d}" for j in range(g)])
a = anndata.AnnData(X=sp.csr_matrix(X), obs=obs, var=var)
a.raw = a
a.obsm["X_umap"] = rs.normal(size=(n, 2)).astype(np.float32)
a.uns["cell_type_colors"] = np.array(["#1f77b4", "#ff7f0e", "#2ca02c"], dtype=object)
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
if os.path.exists(out):
    os.remove(out)
a.write_h5ad(out)
print(f"wrote {out} ({os.path.getsize(out)} bytes) with anndata {anndata.__version__}")
