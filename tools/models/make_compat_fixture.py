"""Writes `compat_embeddings.json`: the `cell2sentence` package's own cell embeddings of a few
prompts with the tiny fixture checkpoints, for the engine's `compat` pooling.

The numbers come from the package itself (cell2sentence 1.2.0, installed with `--no-deps` from
`requirements-package.txt`): `CSModel(...)` loads the tokenizer (`padding_side='left'`, pad token
= EOS when the tokenizer has none) and saves a copy of the model, and `tasks.embed_cells` reloads
that copy with `AutoModelForCausalLM.from_pretrained` (fp32, the default attention, which is SDPA
in transformers 4.57) and calls `CSModel.embed_cells_batched` on consecutive groups of
`inference_batch_size` prompts. There, per group:

    tokens = tokenizer(prompt_list, padding=True, return_tensors='pt')     # left padding
    outputs = model(input_ids=..., attention_mask=..., output_hidden_states=True)
    embedding = outputs.hidden_states[-1][idx].mean(0)                    # every position

`hidden_states[-1]` is after the final norm; no `position_ids` are passed, so every row gets
positions `0..T-1` (padding included); a padding position sees no key at all, and torch's SDPA
(2.5 and later) returns zeros for such a query, so its hidden state is the residual stream of the
pad token's embedding alone. The mean includes those positions, so a cell's embedding depends on
its batch.

Only the prompt formatting of `tasks.embed_cells` is replaced (it needs a saved `datasets` dataset;
the formatter is proven against the package elsewhere): the prompts go in as the formatted
dataset's `model_input`. The package's unused top-level imports (`datasets`, `pandas`, `plotnine`,
`sklearn`, `scipy`) are stubbed while it is imported, so this venv stays torch + transformers.

Gemma-2 is left out on purpose: under SDPA transformers 4.57 drops Gemma-2's attention
soft-capping (the eager path applies it), so the package's Gemma-2 embeddings are those of a
different function, not a padding question.

Usage: tools/models/.venv/bin/python tools/models/make_compat_fixture.py [--out DIR]
(`make_fixtures.sh` runs it after the checkpoints are written).
"""

import argparse
import importlib.metadata
import json
import os
import sys
import tempfile
import types

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401 (import before stubs)

MODELS = ["gpt_neox_parallel", "gpt_neox_sequential", "gemma3_text"]

# Different lengths, so each group of `BATCH` is left-padded; the last group is smaller.
PROMPTS = [
    "The cell type is CD3E IL7R LTB MALAT1 B2M",
    "LYZ S100A9",
    "NKG7 GNLY CCL5 GZMB PRF1 FCGR3A CD8A HLA-A HLA-B ISG15 MX1 IFI6 TMSB4X",
    "MS4A1 CD79A CD79B HLA-DRA CD74",
    "PPBP PF4",
]
BATCH = 3

UNUSED_IMPORTS = [
    "datasets",
    "pandas",
    "plotnine",
    "sklearn",
    "sklearn.metrics",
    "sklearn.linear_model",
    "sklearn.utils",
    "sklearn.model_selection",
    "scipy",
    "scipy.sparse",
    "scipy.stats",
]


class _Unused(types.ModuleType):
    """Stands in for a module the package imports but the embedding path never calls."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unused(f"{self.__name__}.{name}")


def import_package():
    """Imports cell2sentence with its unused heavy imports stubbed, then removes the stubs."""
    added = [n for n in UNUSED_IMPORTS if n not in sys.modules]
    for name in added:
        sys.modules[name] = _Unused(name)
    try:
        import cell2sentence
        from cell2sentence import tasks
    finally:
        for name in added:
            del sys.modules[name]
    return cell2sentence, tasks


class _Formatted:
    """The formatted dataset `tasks.embed_cells` iterates: rows with a `model_input`."""

    def __init__(self, prompts):
        self.prompts = prompts
        self.num_rows = len(prompts)

    def __getitem__(self, i):
        return {"model_input": self.prompts[i]}


def package_embeddings(c2s, tasks, model_dir, prompts, batch):
    """`tasks.embed_cells` of the package on `prompts`, with `inference_batch_size=batch`."""

    class Formatter:
        def __init__(self, task, top_k_genes):
            assert task == "cell_type_prediction"

        def format_hf_ds(self, _ds):
            return _Formatted(prompts)

    tasks.load_from_disk = lambda path: None
    tasks.C2SPromptFormatter = Formatter
    with tempfile.TemporaryDirectory() as save_dir:
        csmodel = c2s.CSModel(model_dir, save_dir, "model")
        csdata = types.SimpleNamespace(data_path=None)
        emb = tasks.embed_cells(csdata, csmodel, n_genes=200, inference_batch_size=batch)
        ids = [csmodel.tokenizer(p)["input_ids"] for p in prompts]
        pad = csmodel.tokenizer.pad_token_id
    return emb, ids, pad


def round_floats(values):
    """Nine significant digits: exact for float32."""
    return [[float(f"{v:.9g}") for v in row] for row in values]


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "models"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    c2s, tasks = import_package()
    models = {}
    for name in MODELS:
        emb, ids, pad = package_embeddings(c2s, tasks, os.path.join(args.out, name), PROMPTS, BATCH)
        models[name] = {
            "pad_id": pad,
            "prompts": [{"text": t, "ids": i} for t, i in zip(PROMPTS, ids)],
            "embeddings": round_floats(emb.tolist()),
        }
    data = {
        "inference_batch_size": BATCH,
        "device": "cpu",
        "cell2sentence_version": importlib.metadata.version("cell2sentence"),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "models": models,
    }
    path = os.path.join(args.out, "compat_embeddings.json")
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print("wrote", path)


if __name__ == "__main__":
    main()
