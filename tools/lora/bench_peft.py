"""The peft + transformers side of `c2s-studio bench-finetune`.

`--model DIR --batch B --seq T --steps N --rank R --threads K`: LoRA (rank R, alpha R, dropout 0,
peft's default targets) on the checkpoint in DIR, AdamW (torch's defaults, lr 2e-4), gradient
clipping at 1.0, the loss on every token; the rows are the benchmark's token ids (the same
formula as the Rust side: T - 1 ids spread over the vocabulary, then EOS). One warm-up step, then
N timed steps; prints one JSON line with training tokens/s and the peak resident memory.
Run with the pinned venv of tools/lora (requirements.txt).
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def row(r, seq, eos):
    """Row `r` of the benchmark: `seq - 1` ids spread over the vocabulary, then EOS."""
    return [1 + (r * 7919 + i * 104729) % 49999 for i in range(seq - 1)] + [eos]


def peak_rss_mib():
    """VmHWM of this process (ru_maxrss as a fallback)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = json.load(open(os.path.join(args.model, "config.json")))
    eos = config["eos_token_id"]
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model = get_peft_model(
        base,
        LoraConfig(r=args.rank, lora_alpha=args.rank, lora_dropout=0.0, task_type="CAUSAL_LM"),
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    step_rows = [
        torch.tensor([row(s * args.batch + r, args.seq, eos) for r in range(args.batch)])
        for s in range(args.steps + 1)
    ]

    def step(ids):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()

    step(step_rows[0])
    started = time.perf_counter()
    for ids in step_rows[1:]:
        step(ids)
    secs = time.perf_counter() - started
    print(
        json.dumps(
            {
                "tokens_per_s": args.steps * args.batch * args.seq / secs,
                "peak_rss_mib": peak_rss_mib(),
                "threads": args.threads,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
