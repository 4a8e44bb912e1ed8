"""The cell2sentence side of `c2s-studio bench-annotate`: the package's own
`tasks.predict_cell_types_of_data` (cell2sentence 1.2.0, one cell per `generate` call, fp32) on the
CPU, timed, on cells and a checkpoint that the Rust side hands over.

`template`: prints the path of the package's cell-type-prediction template file (one JSON line), so
that our side builds its prompts from the package's own wording without the repo copying it.

`run --model DIR --cells FILE.jsonl --n-genes K --max-new-tokens N --threads T`: FILE holds one
JSON object per cell (`cell_name`, `cell_sentence`, `cell_type`, and our side's `prompt` and
`output`). The cells become a `datasets` dataset saved to disk (the C2S arrow schema plus an
`organism` column, which the formatter reads), wrapped in `CSData`; `CSModel(DIR, ...)` loads the
tokenizer (left padding, pad = EOS) and saves its copy of the model; then, after one warm-up
`generate` on a short prompt, the real `predict_cell_types_of_data(csdata, csmodel, n_genes=K,
max_num_tokens=N, do_sample=False)` runs. It reloads the model itself (fp32, transformers' default
attention), formats the prompts (`random.seed(42)` + `random.choice` per cell) and calls
`csmodel.generate_from_prompt` once per cell. That method is wrapped only to add up the seconds
spent in it (the per-cell loop, wall-clock and this process's CPU seconds), next to the whole call's
seconds. Prints one JSON line with both
times, how many formatted prompts equal ours and how many answers equal our answers, and the
versions.
"""

import argparse
import importlib.metadata as md
import json
import os
import sys
import tempfile
import time

import torch
from datasets import Dataset

import cell2sentence
from cell2sentence import tasks
from cell2sentence.prompt_formatter import HERE as PROMPTS_HOME
from cell2sentence.prompt_formatter import C2SPromptFormatter

TEMPLATE = PROMPTS_HOME / "prompts" / "single_cell_cell_type_prediction_prompts.json"


def versions():
    """Versions of what the reference side runs on."""
    names = ["cell2sentence", "torch", "transformers", "tokenizers", "datasets"]
    out = {n: md.version(n) for n in names}
    out["python"] = sys.version.split()[0]
    return out


def read_cells(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save_dataset(cells, folder):
    """The cells as the package's arrow dataset, saved where `CSData` points."""
    ds = Dataset.from_dict(
        {
            "cell_name": [c["cell_name"] for c in cells],
            "cell_sentence": [c["cell_sentence"] for c in cells],
            "cell_type": [c["cell_type"] for c in cells],
            "organism": ["Homo sapiens"] * len(cells),
        }
    )
    path = os.path.join(folder, "cells.arrow")
    ds.save_to_disk(path)
    return path


def same_prompts(data_path, n_genes, cells):
    """How many of the package's formatted prompts equal ours (formatted here exactly as the
    timed call formats them: a fresh formatter seeds `random` with 42)."""
    from datasets import load_from_disk

    formatted = C2SPromptFormatter(task="cell_type_prediction", top_k_genes=n_genes).format_hf_ds(
        load_from_disk(data_path)
    )
    return sum(p == c["prompt"] for p, c in zip(formatted["model_input"], cells))


def run(a):
    torch.set_num_threads(a.threads)
    cells = read_cells(a.cells)
    with tempfile.TemporaryDirectory() as tmp:
        csdata = cell2sentence.CSData(vocab={}, data_path=save_dataset(cells, tmp))
        identical_prompts = same_prompts(csdata.data_path, a.n_genes, cells)
        csmodel = cell2sentence.CSModel(a.model, save_dir=os.path.join(tmp, "csmodel"), save_name="m")
        warm = tasks.AutoModelForCausalLM.from_pretrained(csmodel.save_path)
        csmodel.generate_from_prompt(warm, cells[0]["cell_sentence"][:200], max_num_tokens=2, do_sample=False)
        del warm

        loop = {"secs": 0.0, "cpu_secs": 0.0, "calls": 0}
        generate = csmodel.generate_from_prompt

        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), time.process_time()
            out = generate(*args, **kwargs)
            loop["secs"] += time.perf_counter() - t0
            loop["cpu_secs"] += time.process_time() - c0
            loop["calls"] += 1
            return out

        csmodel.generate_from_prompt = timed
        t0 = time.perf_counter()
        preds = tasks.predict_cell_types_of_data(
            csdata, csmodel, n_genes=a.n_genes, max_num_tokens=a.max_new_tokens, do_sample=False
        )
        total = time.perf_counter() - t0
    identical_outputs = sum(p.strip() == c["output"].strip() for p, c in zip(preds, cells))
    print(
        json.dumps(
            {
                "cells": len(preds),
                "total_secs": total,
                "loop_secs": loop["secs"],
                "loop_cpu_secs": loop["cpu_secs"],
                "generate_calls": loop["calls"],
                "identical_prompts": identical_prompts,
                "identical_outputs": identical_outputs,
                "threads": torch.get_num_threads(),
                "versions": versions(),
            }
        )
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("template")
    r = sub.add_parser("run")
    r.add_argument("--model", required=True)
    r.add_argument("--cells", required=True)
    r.add_argument("--n-genes", type=int, required=True)
    r.add_argument("--max-new-tokens", type=int, required=True)
    r.add_argument("--threads", type=int, required=True)
    a = ap.parse_args()
    if a.cmd == "template":
        print(json.dumps({"path": str(TEMPLATE), "versions": versions()}))
    else:
        run(a)


if __name__ == "__main__":
    main()
