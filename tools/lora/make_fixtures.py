"""Writes the LoRA training parity fixtures: peft + transformers train a LoRA adapter on the tiny
checkpoints of tests/fixtures/models/, and C2S Studio must reproduce every step.

Run through `tools/lora/run.sh`, which creates the pinned venv first. For each architecture
this writes `<out>/<arch>/`:

* `examples.jsonl`: the training examples (`model_input`, `response`), used in file order;
* `init/`: the initial peft adapter (A Kaiming-uniform, B non-zero from a seeded normal, so the
  adapters act from the first step), what `finetune --init-adapter` starts from;
* `final/`: the adapter after the run (`save_pretrained`);
* `reference.json`: the settings, the token ids of every example, the loss, learning rate and
  gradient norm of every optimizer step, and `score`: per-token log-probabilities of one text
  under the base model with the final adapter (what `score --adapter` must reproduce).

It also writes `<out>/full/<arch>/reference.json` for each architecture: full fine-tuning
(every weight trains, no LoRA) on the same examples with `FULL_SETTINGS`: each step's loss,
learning rate and gradient norm, and `score` (per-token log-probabilities of one text under the
trained model, what the checkpoint C2S Studio writes must reproduce).

The loop is the one C2S Studio implements: the package's tokenization (prompt and response
tokenized separately with special tokens, EOS appended, loss on the response and EOS), right
padding, micro-batches of `batch` rows, `grad_accum` micro-batches per step with the loss of a
step the mean over all its counted tokens, `clip_grad_norm_`, `torch.optim.AdamW` and
`get_linear_schedule_with_warmup`. Everything is fp32 on the CPU with eager attention.
"""

import argparse
import json
import math
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, get_linear_schedule_with_warmup

ARCHS = {
    # name: (fixture model folder, target modules)
    "gpt_neox": ("gpt_neox_parallel", ["query_key_value", "dense_h_to_4h"]),
    "gemma2": ("gemma2", ["q_proj", "v_proj", "down_proj"]),
    "gemma3_text": ("gemma3_text", ["q_proj", "v_proj", "down_proj"]),
}

SETTINGS = {
    "rank": 4,
    "alpha": 8.0,
    "steps": 20,
    "batch": 2,
    "grad_accum": 2,
    "lr": 0.01,
    "warmup": 0.1,
    "weight_decay": 0.1,
    "max_grad_norm": 0.5,
    "schedule": "linear",
}

FULL_SETTINGS = {
    "steps": 8,
    "batch": 2,
    "grad_accum": 2,
    "lr": 0.001,
    "warmup": 0.1,
    "weight_decay": 0.1,
    "max_grad_norm": 0.5,
    "schedule": "linear",
}

GENES = (
    "MALAT1 B2M TMSB4X CD74 HLA-DRA CD3E IL7R LTB CCL5 NKG7 GNLY LYZ S100A9 S100A8 FTL FTH1 "
    "MS4A1 CD79A CD79B CD8A CD8B GZMB PRF1 FCGR3A CST3"
).split()
TYPES = ["T cell", "NK cell", "B cell", "monocyte"]


def examples():
    out = []
    for i in range(12):
        k = 3 + i % 4
        genes = [GENES[(i * 7 + j * 3) % len(GENES)] for j in range(k)]
        out.append(
            {
                "model_input": "Cell sentence: " + " ".join(genes) + ". The cell type is:",
                "response": TYPES[i % len(TYPES)] + ".",
            }
        )
    return out


def tokenize(tok, ex, eos, context):
    prompt = tok(ex["model_input"])["input_ids"]
    response = tok(ex["response"])["input_ids"]
    ids = (prompt + response + [eos])[:context]
    return ids, len(prompt)


def batch_tensors(seqs, pad):
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    weights = torch.zeros((len(seqs), width - 1))
    targets = torch.zeros((len(seqs), width - 1), dtype=torch.long)
    for r, (s, start) in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
        for j in range(max(1, start), len(s)):
            targets[r, j - 1] = s[j]
            weights[r, j - 1] = 1.0
    return ids, mask, targets, weights


def save(model, folder, path):
    """`save_pretrained` with the base model named by its fixture folder, not a local path."""
    model.peft_config["default"].base_model_name_or_path = folder
    model.save_pretrained(path, save_embedding_layers=False)
    os.remove(os.path.join(path, "README.md"))


def train_loop(model, params, opt, seqs, pad, settings):
    """The training loop; returns the warmup steps and every step's loss, lr and grad norm."""
    steps = settings["steps"]
    warmup = math.ceil(steps * settings["warmup"])
    sched = get_linear_schedule_with_warmup(opt, warmup, steps)
    per_step = settings["batch"] * settings["grad_accum"]
    losses, lrs, norms = [], [], []
    for step in range(steps):
        items = [seqs[(step * per_step + i) % len(seqs)] for i in range(per_step)]
        micro = [
            items[i : i + settings["batch"]] for i in range(0, per_step, settings["batch"])
        ]
        batches = [batch_tensors(m, pad) for m in micro]
        total = sum(float(w.sum()) for *_, w in batches)
        step_loss = 0.0
        for ids, mask, tgt, w in batches:
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            nll = -(logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) * w).sum() / total
            nll.backward()
            step_loss += nll.item()
        lrs.append(opt.param_groups[0]["lr"])
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, settings["max_grad_norm"])))
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(step_loss)
    return warmup, losses, lrs, norms


def score_text(model, tok, ex):
    """Per-token log-probabilities of `model_input + " " + response` under `model`."""
    model.eval()
    text = ex["model_input"] + " " + ex["response"]
    score_ids = tok(text)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([score_ids])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return {
        "text": text,
        "token_ids": score_ids,
        "logprobs": [float(logp[i - 1, score_ids[i]]) for i in range(1, len(score_ids))],
    }


def run_full(arch, models_dir, out_dir):
    """Full fine-tuning of one checkpoint: every parameter, torch's AdamW."""
    folder = ARCHS[arch][0]
    model_dir = os.path.join(models_dir, folder)
    dest = os.path.join(out_dir, "full", arch)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    config = json.load(open(os.path.join(model_dir, "config.json")))
    eos = config["eos_token_id"]
    pad = config.get("pad_token_id")
    pad = eos if pad is None else pad
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    exs = examples()
    with open(os.path.join(dest, "examples.jsonl"), "w") as f:
        for ex in exs:
            f.write(json.dumps(ex) + "\n")
    seqs = [tokenize(tok, ex, eos, config["max_position_embeddings"]) for ex in exs]
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    model.train()
    params = list(model.parameters())
    opt = torch.optim.AdamW(
        params,
        lr=FULL_SETTINGS["lr"],
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=FULL_SETTINGS["weight_decay"],
    )
    warmup, losses, lrs, norms = train_loop(model, params, opt, seqs, pad, FULL_SETTINGS)
    reference = {
        "model": folder,
        "settings": dict(FULL_SETTINGS, warmup_steps=warmup, eos=eos, pad=pad),
        "losses": losses,
        "lrs": lrs,
        "grad_norms": norms,
        "score": score_text(model, tok, exs[0]),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    with open(os.path.join(dest, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
    print("full", arch, "losses", [round(x, 5) for x in losses])


def run(arch, models_dir, out_dir):
    folder, targets = ARCHS[arch]
    model_dir = os.path.join(models_dir, folder)
    dest = os.path.join(out_dir, arch)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    config = json.load(open(os.path.join(model_dir, "config.json")))
    eos = config["eos_token_id"]
    eos = eos[0] if isinstance(eos, list) else eos
    pad = config.get("pad_token_id")
    pad = eos if pad is None else pad
    context = config["max_position_embeddings"]
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    exs = examples()
    with open(os.path.join(dest, "examples.jsonl"), "w") as f:
        for ex in exs:
            f.write(json.dumps(ex) + "\n")
    seqs = [tokenize(tok, ex, eos, context) for ex in exs]

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    cfg = LoraConfig(
        r=SETTINGS["rank"],
        lora_alpha=SETTINGS["alpha"],
        lora_dropout=0.0,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    save(model, folder, os.path.join(dest, "init"))

    base = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    model = PeftModel.from_pretrained(base, os.path.join(dest, "init"), is_trainable=True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params,
        lr=SETTINGS["lr"],
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=SETTINGS["weight_decay"],
    )
    warmup, losses, lrs, norms = train_loop(model, params, opt, seqs, pad, SETTINGS)
    save(model, folder, os.path.join(dest, "final"))
    score = score_text(model, tok, exs[0])
    reference = {
        "model": folder,
        "settings": dict(SETTINGS, targets=targets, warmup_steps=warmup, eos=eos, pad=pad),
        "token_ids": [ids for ids, _ in seqs],
        "prompt_lengths": [n for _, n in seqs],
        "losses": losses,
        "lrs": lrs,
        "grad_norms": norms,
        "score": score,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
    }
    with open(os.path.join(dest, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
    print(arch, "losses", [round(x, 5) for x in losses])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", required=True, help="tests/fixtures/models")
    parser.add_argument("--out", required=True, help="tests/fixtures/lora")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS), help="default: all")
    parser.add_argument("--full-only", action="store_true", help="only the full fine-tune fixtures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for arch in args.arch or sorted(ARCHS):
        if not args.full_only:
            run(arch, args.models, args.out)
        run_full(arch, args.models, args.out)


if __name__ == "__main__":
    main()
