"""Python side of `c2s-studio bench-umap`: umap-learn's kNN (pynndescent) and UMAP layout on the same
input as ours.

    bench_umap.py INPUT.f32 ROWS DIMS OUT_DIR [--k 15] [--init spectral|pca]

INPUT.f32 holds ROWS x DIMS little-endian float32 values, row-major (the PCA coordinates the Rust side
computed). Writes OUT_DIR/knn_indices.i32 (ROWS x k, int32) and OUT_DIR/embedding.f32 (ROWS x 2,
float32), and prints one JSON line with the timings.

numba compiles umap-learn's and pynndescent's kernels on first use. A warm-up run on the first 2,000
rows does that compilation first; its time is reported separately as `warmup_s` and is not part of
`knn_s` / `layout_s`. umap-learn runs as users run it by default: random_state=None, so its numba
kernels use all cores (n_jobs=-1), like our parallel layout.
"""

import argparse
import json
import os
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("rows", type=int)
    ap.add_argument("dims", type=int)
    ap.add_argument("out_dir")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--init", default="spectral", choices=["spectral", "pca"])
    args = ap.parse_args()

    t = time.perf_counter()
    import numba
    import pynndescent
    import umap
    from umap.umap_ import nearest_neighbors

    import_s = time.perf_counter() - t
    x = np.fromfile(args.input, dtype="<f4").reshape(args.rows, args.dims)

    def knn(data):
        return nearest_neighbors(
            data,
            n_neighbors=args.k,
            metric="euclidean",
            metric_kwds={},
            angular=False,
            random_state=None,
            low_memory=True,
            use_pynndescent=True,
            n_jobs=-1,
            verbose=False,
        )

    def layout(data, precomputed):
        model = umap.UMAP(
            n_neighbors=args.k,
            min_dist=0.1,
            init=args.init,
            precomputed_knn=precomputed,
            n_jobs=-1,
        )
        return model.fit_transform(data)

    # Warm-up: numba JIT compilation of the kNN and layout kernels (excluded from the timings).
    t = time.perf_counter()
    small = x[: min(2000, args.rows)]
    layout(small, knn(small))
    warmup_s = time.perf_counter() - t

    t = time.perf_counter()
    indices, distances, forest = knn(x)
    knn_s = time.perf_counter() - t

    t = time.perf_counter()
    embedding = layout(x, (indices, distances, forest))
    layout_s = time.perf_counter() - t

    os.makedirs(args.out_dir, exist_ok=True)
    np.asarray(indices, dtype="<i4").tofile(os.path.join(args.out_dir, "knn_indices.i32"))
    np.asarray(embedding, dtype="<f4").tofile(os.path.join(args.out_dir, "embedding.f32"))
    print(
        json.dumps(
            {
                "impl": f"umap-learn {umap.__version__} (pynndescent {pynndescent.__version__}, numba {numba.__version__}, init={args.init})",
                "import_s": import_s,
                "warmup_s": warmup_s,
                "knn_s": knn_s,
                "layout_s": layout_s,
                "threads": numba.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
