"""Reference side of `c2s-studio bench-kernels`: torch's dense product `F.linear(x, W)` (the
product transformers' `nn.Linear` runs) for each `M×K×N` shape, best of `--reps` runs, on
`--threads` threads. Prints one JSON line: {"torch": version, "seconds": [...]}.

Run with the pinned venv (tools/models/requirements.txt)."""

import argparse
import json
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", required=True, help="comma-separated MxKxN")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seconds = []
    with torch.inference_mode():
        for shape in args.shapes.split(","):
            m, k, n = (int(v) for v in shape.split("x"))
            x = torch.randn(m, k)
            w = torch.randn(n, k)
            torch.nn.functional.linear(x, w)
            best = float("inf")
            for _ in range(args.reps):
                start = time.perf_counter()
                torch.nn.functional.linear(x, w)
                best = min(best, time.perf_counter() - start)
            seconds.append(best)
    print(json.dumps({"torch": torch.__version__, "seconds": seconds}))


if __name__ == "__main__":
    main()
