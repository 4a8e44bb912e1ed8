"""Reference prompts and post-processing from the real cell2sentence 1.2.0 package.

Writes to tests/fixtures/prompts/ (run with `tools/sentences/run.sh --prompts`):

* `pbmc_cell_type_prediction.jsonl`: `C2SPromptFormatter("cell_type_prediction", top_k_genes=100)`
  over the 700 PBMC cells (sentences from `../sentences/pbmc68k_raw_sentences.tsv`, the package's own,
  labels from obs `bulk_labels`, organism "Homo sapiens"), with the formatter's templates replaced by
  our 15-variant file `cell_type_prediction_15.json` (the package's wording may not be copied). The
  formatter's own `random.seed(42)` + `random.choice` picks the variants.
* `pbmc_tissue_prediction.jsonl`: `C2SMultiCellPromptFormatter("tissue_prediction", top_k_genes=20)`
  with `tissue_prediction_14.json`, cells grouped by `bulk_labels` (groups in order of first
  appearance, cells in obs order) in chunks of 5; `tissue` is the group's label.
* `postprocess.json`: `post_process_generated_cell_sentences` and
  `reconstruct_expression_from_cell_sentence` on generated-looking sentences built from PBMC sentences
  (lower-cased, repeated, unknown words, trailing ".").
"""

import json
import os
import random
import sys

import anndata
import numpy as np

from c2s_import import import_c2s

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
OUT = os.path.join(FIXTURES, "prompts")
PBMC = os.path.join(REPO, "..", "shared", "data", "expression", "pbmc68k_reduced.h5ad")


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return rows[1:]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    if not os.path.exists(PBMC):
        print(f"skipping: {PBMC} is absent", file=sys.stderr)
        return 0
    c2s, utils, _, _ = import_c2s()
    import cell2sentence.prompt_formatter as pf
    from datasets import Dataset

    cells = read_tsv(os.path.join(FIXTURES, "sentences", "pbmc68k_raw_sentences.tsv"))
    adata = anndata.read_h5ad(PBMC)
    assert list(adata.obs_names) == [c for c, _ in cells]
    labels = [str(v) for v in adata.obs["bulk_labels"]]

    # Single cell: cell-type prediction.
    ds = Dataset.from_dict({
        "cell_name": [c for c, _ in cells],
        "cell_sentence": [s for _, s in cells],
        "cell_type": labels,
        "organism": ["Homo sapiens"] * len(cells),
    })
    fmt = pf.C2SPromptFormatter(task="cell_type_prediction", top_k_genes=100)
    with open(os.path.join(OUT, "cell_type_prediction_15.json")) as f:
        fmt.prompts_dict = json.load(f)
    out = fmt.format_hf_ds(ds)
    write_jsonl(os.path.join(OUT, "pbmc_cell_type_prediction.jsonl"), [
        {"cell_id": c, "model_input": m, "response": r}
        for (c, _), m, r in zip(cells, out["model_input"], out["response"])
    ])

    # Multi cell: tissue prediction over groups of 5 cells of one label.
    order = []
    members = {}
    for i, label in enumerate(labels):
        if label not in members:
            order.append(label)
            members[label] = []
        members[label].append(i)
    groups, tissues = [], []
    for label in order:
        rows = members[label]
        for start in range(0, len(rows), 5):
            groups.append(rows[start:start + 5])
            tissues.append(label)
    groups_ds = Dataset.from_dict({
        "multi_cell_groupings": groups,
        "tissue": tissues,
        "organism": ["Homo sapiens"] * len(groups),
    })
    mfmt = pf.C2SMultiCellPromptFormatter(task="tissue_prediction", top_k_genes=20)
    with open(os.path.join(OUT, "tissue_prediction_14.json")) as f:
        mfmt.prompts_dict = json.load(f)
    mout = mfmt.format_hf_ds(ds, groups_ds)
    write_jsonl(os.path.join(OUT, "pbmc_tissue_prediction.jsonl"), [
        {"cell_id": ";".join(cells[i][0] for i in g), "model_input": m, "response": r}
        for g, m, r in zip(groups, mout["model_input"], mout["response"])
    ])

    # Post-processing and reconstruction.
    vocab = [g for g, _ in read_tsv(os.path.join(FIXTURES, "sentences", "pbmc68k_raw_vocab.tsv"))]
    rng = random.Random(7)
    cases = []
    for k in range(40):
        words = cells[rng.randrange(len(cells))][1].split(" ")[: rng.randrange(5, 40)]
        for _ in range(rng.randrange(0, 4)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        for _ in range(rng.randrange(0, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(["FOO", "gene", "<unk>", "Cell"]))
        words = [w.lower() if rng.random() < 0.1 else w for w in words]
        text = " ".join(words) + ("." if k % 2 == 0 else "")
        genes, replaced = utils.post_process_generated_cell_sentences(text, vocab)
        joined = " ".join(genes).replace(" NOT_A_GENE", "")
        expr = utils.reconstruct_expression_from_cell_sentence(
            joined, " ", vocab, slope=-0.6757, intercept=2.2379)
        nz = np.flatnonzero(expr)
        cases.append({
            "text": text,
            "compat_genes": genes,
            "compat_replaced": replaced,
            "tutorial_sentence": joined,
            "expression": {vocab[i]: float(expr[i]) for i in nz},
        })
    with open(os.path.join(OUT, "postprocess.json"), "w") as f:
        json.dump({"slope": -0.6757, "intercept": 2.2379, "cases": cases}, f, indent=1)
    print(f"wrote {len(out)} cell-type prompts, {len(groups)} tissue prompts, {len(cases)} post-processing cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
