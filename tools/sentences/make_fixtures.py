#!/usr/bin/env python3
"""Write the cell2sentence reference fixtures under tests/fixtures/sentences/.

Every reference output here is produced by the REAL cell2sentence 1.2.0 package:
  * sentences + vocabulary: `CSData.adata_to_arrow(adata, random_state=42)`, which calls
    `utils.generate_vocabulary` and `utils.generate_sentences` (global numpy RNG, re-seeded with 42
    on every call; `random_state` is not forwarded);
  * inverse-transform fit: `utils.benchmark_expression_conversion(out, name, X, sample_size)`.
    With scikit-learn >= 1.6 `metrics.r2_score` returns a Python float and the function dies on
    `r_squared_score.item()` AFTER computing everything but BEFORE writing its metrics CSV. We run the
    package function unchanged except that `cell2sentence.utils.metrics` is swapped for a proxy whose
    `r2_score` returns `np.float64` (same value, has `.item()`); then we read the CSV it writes.
    An independent numpy re-computation of the fit is cross-checked against it (rel. 1e-9).

Each sentence fixture is also cross-checked against an independent re-implementation that uses a
pure-Python MT19937 written from statistics.md section 0 (so the documented recipe is verified too).

The package is imported through c2s_import.py (torch / transformers are not installed; see there).

Usage: make_fixtures.py [--pbmc PATH] [--out DIR]
  PATH defaults to ../shared/data/expression/pbmc68k_reduced.h5ad relative to the repo root;
  when it is missing the PBMC fixtures are skipped (with a message) and the synthetic ones are written.
"""

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # generate_sentences wraps its loop in tqdm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

from c2s_import import import_c2s, package_versions  # noqa: E402

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.stats import pearsonr, spearmanr  # noqa: E402

cell2sentence, c2s_utils, CSData, STUBBED = import_c2s()

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message=".*names are not unique.*")

SEED = 42  # what upstream always uses


# --------------------------------------------------------------------------------------------------
# Independent re-implementation (pure-Python MT19937 from statistics.md section 0)
# --------------------------------------------------------------------------------------------------
class MT19937:
    def __init__(self, seed):
        mt = [0] * 624
        mt[0] = seed & 0xFFFFFFFF
        for i in range(1, 624):
            mt[i] = (1812433253 * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i) & 0xFFFFFFFF
        self.mt = mt
        self.idx = 624

    def next_u32(self):
        mt = self.mt
        if self.idx >= 624:
            for k in range(624):
                y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7FFFFFFF)
                mt[k] = mt[(k + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            self.idx = 0
        y = mt[self.idx]
        self.idx += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & 0xFFFFFFFF

    def random_interval(self, mx):
        if mx == 0:
            return 0
        mask = mx
        for s in (1, 2, 4, 8, 16):
            mask |= mask >> s
        while True:
            v = self.next_u32() & mask
            if v <= mx:
                return v


def _self_test_mt():
    r = MT19937(42)
    assert [r.next_u32() for _ in range(3)] == [1608637542, 3421126067, 4083286876]
    r = MT19937(42)
    a = list(range(10))
    for i in range(9, 0, -1):
        j = r.random_interval(i)
        a[i], a[j] = a[j], a[i]
    assert a == [8, 1, 5, 0, 7, 2, 9, 4, 3, 6], a
    assert a == np.random.RandomState(42).permutation(10).tolist()


def _csr_rows(m, canonical):
    for i in range(m.shape[0]):
        cols = m.indices[m.indptr[i]:m.indptr[i + 1]]
        vals = m.data[m.indptr[i]:m.indptr[i + 1]]
        if canonical:
            assert len(np.unique(cols)) == len(cols), "duplicate (row, col) entries not handled here"
            o = np.argsort(cols, kind="stable")
            cols, vals = cols[o], vals[o]
        yield cols, vals


def independent_sentences(X, var_names, canonical=True):
    """Re-implementation of the documented algorithm; returns list of sentences.

    canonical=True: each CSR row's stored entries are first put in ascending column order. That is
    what the package effectively does via CSData.adata_to_arrow: generate_vocabulary evaluates
    `adata.X > 0`, and scipy's sparse scalar comparison calls `self.sum_duplicates()`, which sorts
    the indices of adata.X IN PLACE before generate_sentences reads them.
    canonical=False: stored order (what generate_sentences alone sees on an unsorted CSR).
    """
    vocab = {}
    for name in var_names:
        vocab[name.upper()] = True  # first position kept on duplicates
    enc = list(vocab.keys())
    if sp.issparse(X):
        rows = _csr_rows(sp.csr_matrix(X), canonical)  # CSC -> CSR comes out sorted anyway
    else:
        X = np.asarray(X)
        rows = ((np.nonzero(X[i] != 0)[0], X[i][X[i] != 0]) for i in range(X.shape[0]))  # NaN != 0
    rng = MT19937(SEED)
    out = []
    for cols, vals in rows:
        n = len(cols)
        perm = list(range(n))
        for k in range(n - 1, 0, -1):
            j = rng.random_interval(k)
            perm[k], perm[j] = perm[j], perm[k]
        cols = np.asarray(cols)[perm]
        vals = np.asarray(vals)[perm]
        order = np.argsort(-vals, kind="stable")
        out.append(" ".join(enc[c] for c in cols[order]))
    return out


# --------------------------------------------------------------------------------------------------
# Reference (package) calls
# --------------------------------------------------------------------------------------------------
def reference_sentences(adata, label_col_names=None):
    """Run the package's CSData.adata_to_arrow; returns (cell_names, sentences, vocab, arrow_ds)."""
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        ds, vocab = CSData.adata_to_arrow(adata, random_state=SEED, label_col_names=label_col_names)
    msgs = (buf_out.getvalue() + buf_err.getvalue()).strip()
    if msgs:
        print("    [package said] " + " | ".join(l.strip() for l in msgs.splitlines() if l.strip()))
    return ds["cell_name"], ds["cell_sentence"], vocab, ds


def write_sentences_tsv(path, names, sentences):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("cell_name\tcell_sentence\n")
        for n, s in zip(names, sentences):
            assert "\t" not in n and "\n" not in n and "\t" not in s and "\n" not in s
            f.write(f"{n}\t{s}\n")


def write_vocab_tsv(path, vocab):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("gene\tn_cells\n")
        for g, c in vocab.items():
            f.write(f"{g}\t{int(c)}\n")


def check_and_write(out_dir, stem, h5ad_path, matrix="x", label_col_names=None, write_stored_order=True):
    """Read the h5ad back from disk, run the package, cross-check, write <stem>_sentences.tsv."""
    def load():
        a = ad.read_h5ad(h5ad_path)
        return a.raw.to_adata() if matrix == "raw" else a

    adata = load()
    fresh = load()  # untouched copy: the package sorts adata.X's CSR indices in place
    was_sorted = adata.X.has_sorted_indices if sp.issparse(adata.X) else None
    names, sents, vocab, ds = reference_sentences(adata, label_col_names)
    if was_sorted is False:
        assert adata.X.has_sorted_indices, "expected the package to sort adata.X's indices in place"
        print(f"    {stem}: X had unsorted CSR indices; after adata_to_arrow adata.X is sorted in place")

    # 1. the package re-seeds the global RNG with 42 on every call: disturb it, run again
    np.random.seed(12345)
    np.random.random_sample(1000)
    _, sents2, _, _ = reference_sentences(adata)
    assert sents2 == sents, f"{stem}: second call differs (global RNG not re-seeded?)"
    # 2. random_state is ignored by adata_to_arrow
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        ds7, _ = CSData.adata_to_arrow(adata, random_state=7)
    assert ds7["cell_sentence"] == sents, f"{stem}: random_state=7 changed the output"
    # 3. the lower-level utils functions give the same
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        v = c2s_utils.generate_vocabulary(adata)
        s = c2s_utils.generate_sentences(adata, v)
    assert list(s) == sents
    # 4. independent re-implementation with the documented MT19937 recipe
    ind = independent_sentences(fresh.X, list(fresh.var_names), canonical=True)
    n_match = sum(a == b for a, b in zip(ind, sents))
    assert n_match == len(sents), f"{stem}: independent re-implementation matched {n_match}/{len(sents)}"
    if was_sorted is False:
        # generate_sentences alone (no generate_vocabulary on the same object first) sees stored order
        stored = load()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            s_stored = list(c2s_utils.generate_sentences(stored, vocab))
        ind_stored = independent_sentences(fresh.X, list(fresh.var_names), canonical=False)
        assert s_stored == ind_stored, f"{stem}: stored-order re-implementation mismatch"
        n_same = sum(a == b for a, b in zip(s_stored, sents))
        if write_stored_order:
            write_sentences_tsv(os.path.join(out_dir, f"{stem}_stored_order_sentences.tsv"), names, s_stored)
        print(f"    {stem}: generate_sentences alone (stored order) equals adata_to_arrow on {n_same}/{len(sents)} cells")

    write_sentences_tsv(os.path.join(out_dir, f"{stem}_sentences.tsv"), names, sents)
    write_vocab_tsv(os.path.join(out_dir, f"{stem}_vocab.tsv"), vocab)
    print(f"  {stem}: {len(sents)} cells, vocab {len(vocab)} (n_vars {adata.n_vars}); "
          f"independent re-implementation {n_match}/{len(sents)}")
    return names, sents, vocab, ds


# --------------------------------------------------------------------------------------------------
# Inverse-transform fit
# --------------------------------------------------------------------------------------------------
class _MetricsProxy:
    """sklearn.metrics with r2_score returning np.float64 (upstream calls .item() on it)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def r2_score(self, *a, **k):
        return np.float64(self._real.r2_score(*a, **k))


def reference_fit(X, name):
    """Run utils.benchmark_expression_conversion over ALL cells; returns dict from its CSV."""
    n = X.shape[0]
    real_metrics = c2s_utils.metrics
    needs_shim = not hasattr(real_metrics.r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 2.5]), "item")
    with tempfile.TemporaryDirectory() as tmp:
        if needs_shim:
            c2s_utils.metrics = _MetricsProxy(real_metrics)
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.random.seed(0)  # only picks the (sorted) cell sample; sample_size >= n -> all cells
                c2s_utils.benchmark_expression_conversion(tmp, name, X, sample_size=max(1024, n))
        finally:
            c2s_utils.metrics = real_metrics
        row = pd.read_csv(os.path.join(tmp, f"{name}_benchmark", "c2s_transformation_metrics.csv")).iloc[0]
    return row, needs_shim


def independent_fit(X, threshold=3.0):
    X = sp.csr_matrix(X)
    xs, ys = [], []
    for i in range(X.shape[0]):
        row = np.asarray(X[i].todense()).ravel()
        order = np.argsort(-row, kind="stable")  # tie order is irrelevant for the fit
        rank = np.empty(len(row))
        rank[order] = np.arange(len(row))
        nz = row != 0
        xs.append(np.log10(1 + rank[nz]))
        ys.append(row[nz].astype(np.float64))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    fit = x < threshold
    A = np.column_stack([np.ones(fit.sum()), x[fit]])
    (intercept, slope), *_ = np.linalg.lstsq(A, y[fit], rcond=None)
    yhat = intercept + slope * x
    r2 = 1 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2)
    return {
        "slope": slope, "intercept": intercept, "r2": r2,
        "pearson": pearsonr(y, yhat).statistic, "spearman": spearmanr(y, yhat).statistic,
        "n_points": int(len(y)), "n_points_fit": int(fit.sum()),
    }


def write_fit_json(path, X, name, data_label, transform, source):
    row, shimmed = reference_fit(X, name)
    ind = independent_fit(X)
    out = {
        "data": data_label,
        "transform": transform,
        "source": source,
        "n_cells": int(X.shape[0]),
        "n_genes": int(X.shape[1]),
        "sample_size": int(X.shape[0]),
        "threshold": float(row["threshold"]),
        "n_points": ind["n_points"],
        "n_points_fit": ind["n_points_fit"],
        "slope": float(row["slope"]),
        "intercept": float(row["intercept"]),
        "r2": float(row["r_squared"]),
        "pearson": float(row["pearson_r_statistic"]),
        "pearson_pvalue": float(row["pearson_r_pvalue"]),
        "spearman": float(row["spearman_r_statistic"]),
        "spearman_pvalue": float(row["spearman_r_pvalue"]),
        "impl": "cell2sentence 1.2.0 utils.benchmark_expression_conversion"
        + (" (r2_score wrapped to return np.float64 so its .item() call works)" if shimmed else ""),
    }
    for k in ("slope", "intercept", "r2", "pearson", "spearman"):
        assert np.isclose(out[k], ind[k], rtol=1e-9, atol=1e-12), (k, out[k], ind[k])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"  {os.path.basename(path)}: slope {out['slope']:.6f} intercept {out['intercept']:.6f} "
          f"r2 {out['r2']:.4f} pearson {out['pearson']:.4f} spearman {out['spearman']:.4f} "
          f"(points {out['n_points']}, fit on {out['n_points_fit']})")
    return out


# --------------------------------------------------------------------------------------------------
# Synthetic fixtures
# --------------------------------------------------------------------------------------------------
def ties_counts(rng, n_cells=200, n_genes=50):
    """Heavily tied small integer counts; row 0 empty, row 1 one gene, row 2 all genes = 1."""
    levels = [0, 1, 2, 3, 4, 6]
    probs = [0.78, 0.12, 0.05, 0.025, 0.015, 0.01]  # ~22 % non-zero, mostly 1s and 2s
    vals = rng.choice(levels, p=probs, size=(n_cells, n_genes)).astype(np.float32)
    vals[0] = 0
    vals[1] = 0
    vals[1, 17] = 5
    vals[2] = 1
    vals[3, :] = 0
    vals[3, [4, 9, 40]] = 2  # three-way tie, nothing else
    return vals


def write_h5ad(path, adata):
    if os.path.exists(path):
        os.remove(path)
    adata.write_h5ad(path)
    return os.path.getsize(path)


def make_synthetic(out_dir):
    rng = np.random.default_rng(20240601)
    cells = [f"cell{i:03d}" for i in range(200)]
    genes = [f"Gene{j:02d}" for j in range(50)]
    dense = ties_counts(rng)
    made = {}

    # (i) ties, CSR (sorted indices, as scipy builds it)
    csr = sp.csr_matrix(dense)
    a = ad.AnnData(X=csr, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    made["ties_csr"] = write_h5ad(os.path.join(out_dir, "ties_csr.h5ad"), a)
    # (ii) same matrix as CSC and as dense float64
    a = ad.AnnData(X=sp.csc_matrix(dense), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    made["ties_csc"] = write_h5ad(os.path.join(out_dir, "ties_csc.h5ad"), a)
    a = ad.AnnData(X=dense.astype(np.float64), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    made["ties_dense"] = write_h5ad(os.path.join(out_dir, "ties_dense.h5ad"), a)
    # (ii b) same matrix as CSR with each row's stored entries in a shuffled (unsorted) order;
    # the real pbmc68k .raw is stored like this too.
    data, indices, indptr = [], [], [0]
    for i in range(dense.shape[0]):
        cols = np.nonzero(dense[i])[0]
        cols = cols[rng.permutation(len(cols))]
        indices.extend(cols.tolist())
        data.extend(dense[i, cols].tolist())
        indptr.append(len(indices))
    uns = sp.csr_matrix((np.array(data, np.float32), np.array(indices, np.int32), np.array(indptr, np.int32)),
                        shape=dense.shape)
    assert not uns.has_sorted_indices
    a = ad.AnnData(X=uns, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    made["ties_csr_unsorted"] = write_h5ad(os.path.join(out_dir, "ties_csr_unsorted.h5ad"), a)

    # (iii) explicit stored zeros in CSR: first 30 cells x 12 genes, plus stored 0.0 entries
    sub = dense[:30, :12].copy()
    data, indices, indptr = [], [], [0]
    for i in range(sub.shape[0]):
        nz = set(np.nonzero(sub[i])[0].tolist())
        zeros = [j for j in range(12) if j not in nz]
        if i == 0:
            extra = zeros[:3]  # row with ONLY explicit zeros -> still a 3-gene sentence
        else:
            extra = sorted(rng.choice(zeros, size=min(len(zeros), 1 + i % 3), replace=False).tolist()) if zeros else []
        cols = sorted(nz | set(extra))
        indices.extend(cols)
        data.extend(sub[i, cols].tolist())
        indptr.append(len(indices))
    ez = sp.csr_matrix((np.array(data, np.float32), np.array(indices, np.int32), np.array(indptr, np.int32)),
                       shape=sub.shape)
    assert ez.nnz > np.count_nonzero(sub)
    a = ad.AnnData(X=ez, obs=pd.DataFrame(index=cells[:30]), var=pd.DataFrame(index=genes[:12]))
    made["explicit_zeros_csr"] = write_h5ad(os.path.join(out_dir, "explicit_zeros_csr.h5ad"), a)

    # (iv) duplicate names after upper-casing; the last two columns are never expressed
    dup_names = ["Actb", "ACTB", "gapdh", "cd3e", "CD3E", "il7r", "MALAT1", "b2m", "Unexpr1", "unexpr2"]
    dx = dense[:30, :10].copy()
    dx[:, 8:] = 0
    dx[0] = [1, 2, 3, 0, 0, 0, 0, 0, 0, 0]  # reference doc example extended: -> "CD3E GAPDH ACTB"
    dx[1] = [0, 0, 0, 0, 0, 0, 0, 4, 0, 0]  # only b2m (col 7) -> shifted to the name at vocab slot 7
    a = ad.AnnData(X=sp.csr_matrix(dx), obs=pd.DataFrame(index=cells[:30]),
                   var=pd.DataFrame(index=pd.Index(dup_names)))
    made["dup_names_csr"] = write_h5ad(os.path.join(out_dir, "dup_names_csr.h5ad"), a)

    # (v) obs/obsm/layers/uns metadata; X = log10(1 + normalize_total(counts)), counts in a layer
    n = 40
    counts = dense[100:100 + n, :25].copy()
    counts[counts.sum(1) == 0, 0] = 1
    tot = counts.sum(1, keepdims=True)
    xnorm = np.log10(1 + counts / tot * np.median(tot)).astype(np.float32)
    cats = ["T cell", "B cell", "NK cell", "Monocyte"]
    ct = pd.Categorical([cats[i % 4] for i in range(n)], categories=cats)
    obs = pd.DataFrame({
        "cell_type": ct,
        "is_doublet": np.array([i % 7 == 0 for i in range(n)], dtype=bool),
        "batch": pd.array([f"batch_{i % 3}" for i in range(n)], dtype=object),
        "n_counts": tot.ravel().astype(np.float32),
        "n_genes": (counts > 0).sum(1).astype(np.int64),
    }, index=[f"AAACCTG-{i:02d}" for i in range(n)])
    var = pd.DataFrame({"gene_ids": [f"ENSG{j:011d}" for j in range(25)]}, index=genes[:25])
    a = ad.AnnData(X=sp.csr_matrix(xnorm), obs=obs, var=var)
    a.layers["counts"] = sp.csr_matrix(counts.astype(np.int32))
    a.obsm["X_umap"] = rng.normal(size=(n, 2)).astype(np.float32)
    a.uns["cell_type_colors"] = np.array(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"], dtype=object)
    made["obs_meta"] = write_h5ad(os.path.join(out_dir, "obs_meta.h5ad"), a)

    # (vi) dense float32 with negatives, exact zeros, ties and NaN (like scaled X)
    z = np.round(rng.normal(size=(20, 15)) * 2) / 2
    z[rng.random(z.shape) < 0.15] = 0
    z[2, 3] = np.nan
    z[5, [0, 7]] = np.nan
    z[6] = np.nan
    z[7] = 0
    z = z.astype(np.float32)
    a = ad.AnnData(X=z, obs=pd.DataFrame(index=cells[:20]), var=pd.DataFrame(index=genes[:15]))
    made["dense_neg_nan"] = write_h5ad(os.path.join(out_dir, "dense_neg_nan.h5ad"), a)
    return made


# --------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pbmc", default=os.path.join(REPO, "..", "shared", "data", "expression", "pbmc68k_reduced.h5ad"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "sentences"))
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    _self_test_mt()
    vers = package_versions()
    print("versions:", json.dumps(vers))
    if STUBBED:
        print(f"note: imported cell2sentence with placeholder modules for {STUBBED} (not needed by the functions used)")

    # ---- PBMC parity
    pbmc = os.path.abspath(args.pbmc)
    if os.path.exists(pbmc):
        print(f"PBMC: {pbmc}")
        check_and_write(out_dir, "pbmc68k_raw", pbmc, matrix="raw", write_stored_order=False)
        raw = ad.read_h5ad(pbmc).raw.to_adata()
        X_ln = sp.csr_matrix(raw.X)
        X_10 = X_ln.astype(np.float64)
        X_10.data = np.log10(1.0 + np.expm1(X_10.data))
        src = "pbmc68k_reduced.h5ad .raw (700 x 765, CSR float32, natural-log log1p)"
        write_fit_json(os.path.join(out_dir, "pbmc68k_raw_fit_log10.json"), X_10, "pbmc_log10", "log10",
                       "float64: log10(1 + expm1(x)) of the .raw values", src)
        write_fit_json(os.path.join(out_dir, "pbmc68k_raw_fit_ln.json"), X_ln, "pbmc_ln", "ln",
                       "none: the .raw values as stored (float32)", src)
    else:
        print(f"PBMC file not found at {pbmc}: skipping the PBMC fixtures")

    # ---- synthetic
    print("synthetic:")
    sizes = make_synthetic(out_dir)
    for stem in ["ties_csr", "ties_csc", "ties_dense", "ties_csr_unsorted", "explicit_zeros_csr",
                 "dup_names_csr", "dense_neg_nan"]:
        check_and_write(out_dir, stem, os.path.join(out_dir, f"{stem}.h5ad"))
    label_cols = ["cell_type", "is_doublet", "batch", "n_counts", "n_genes"]
    _, _, _, ds = check_and_write(out_dir, "obs_meta", os.path.join(out_dir, "obs_meta.h5ad"),
                                  label_col_names=label_cols)
    with open(os.path.join(out_dir, "obs_meta_arrow.jsonl"), "w", encoding="utf-8") as f:
        for rec in ds.to_list():
            f.write(json.dumps(rec) + "\n")
    with open(os.path.join(out_dir, "obs_meta_arrow_features.json"), "w", encoding="utf-8") as f:
        json.dump({"column_names": ds.column_names,
                   "features": {k: str(v) for k, v in ds.features.items()}}, f, indent=2)
        f.write("\n")

    legacy = os.path.join(out_dir, "legacy_anndata07.h5ad")
    if os.path.exists(legacy):
        check_and_write(out_dir, "legacy_anndata07", legacy)

    same = [open(os.path.join(out_dir, f"{s}_sentences.tsv")).read() for s in ("ties_csr", "ties_csc", "ties_dense")]
    print(f"ties_csr / ties_csc / ties_dense sentences identical: {same[0] == same[1] == same[2]}")
    for k, v in sizes.items():
        print(f"  {k}.h5ad: {v} bytes")
    with open(os.path.join(out_dir, "versions.json"), "w", encoding="utf-8") as f:
        json.dump(vers, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
