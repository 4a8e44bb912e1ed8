"""The transformers side of `c2s-studio bench-engine`.

`make --out DIR [--tokenizer FILE]`: writes a randomly initialised Pythia-160M-sized GPT-NeoX checkpoint
(HF layout, fp32) with a 50,304-entry word-level tokenizer so every id is known, or with a copy of
`FILE` (a `tokenizer.json`, e.g. GPT-NeoX-20B's for `c2s-studio bench-annotate`).
`run --model DIR --batch B --prompt-len P --new-tokens N --threads T`: times the prefill and the
greedy decode of `transformers` on the CPU and prints one JSON line.
`many`, `samples`, `rank`, `load`: the many-request, one-prompt-many-samples, candidate-ranking
and loading workloads of `bench-engine` (see each function).
`make --shape 1b` writes a Pythia-1B-shaped checkpoint instead (for `bench-engine --load`).
"""

import argparse
import json
import os
import resource
import time

import torch


#: Checkpoint shapes `make` can write: Pythia-160M's and Pythia-1B's.
SHAPES = {
    "160m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=8, intermediate_size=8192),
}


def make(out, tokenizer=None, shape="160m"):
    import shutil

    from tokenizers import Tokenizer, models
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=50304,
        **SHAPES[shape],
        rotary_pct=0.25,
        max_position_embeddings=2048,
        use_parallel_residual=True,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(cfg)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer:
        shutil.copyfile(tokenizer, os.path.join(out, "tokenizer.json"))
    else:
        vocab = {f"t{i}": i for i in range(cfg.vocab_size)}
        Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(os.path.join(out, "tokenizer.json"))
    print(json.dumps({"wrote": out}))


def peak_rss_mib(field="VmHWM:"):
    """VmHWM of this process (ru_maxrss would include the parent's RSS inherited at fork), or
    another memory `field` of /proc/self/status."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_prompt(r, length):
    """Prompt `r` of the benchmark, as `bench_prompt` in app/src/cli/bench_engine.rs."""
    return [1 + (r * 7919 + i * 104729) % 49999 for i in range(length)]


def candidate(r, c, length):
    """Candidate label `c` of prompt `r`, as `candidate` in app/src/cli/bench_sharing.rs."""
    return [1 + (r * 31 + c * 17 + j * 1009) % 49999 for j in range(length)]


def eager_model(model_dir, threads):
    """The checkpoint with eager attention, for inference on `threads` torch threads."""
    from transformers import GPTNeoXForCausalLM

    torch.set_num_threads(threads)
    return GPTNeoXForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()


def run(model_dir, batch, prompt_len, new_tokens, threads):
    model = eager_model(model_dir, threads)
    g = torch.Generator().manual_seed(batch)
    ids = torch.randint(1, 50000, (batch, prompt_len), generator=g)
    mask = torch.ones_like(ids)
    def timed_generate(n):
        t0 = time.perf_counter()
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
        )
        assert out.shape[1] == prompt_len + n
        return time.perf_counter() - t0

    with torch.inference_mode():
        model(input_ids=ids[:, :8])  # warm-up
        # Prefill = generate(1 token): the prompt's forward with the LM head on the last
        # position only (generate passes logits_to_keep=1), as the engine's prefill. Best of 3.
        prefill = min(timed_generate(1) for _ in range(3))
        # Decode = the time generate(N) takes beyond generate(1), for the N - 1 further tokens.
        total = min(timed_generate(new_tokens) for _ in range(2))
    decode = max(total - prefill, 1e-9)
    peak_mb = peak_rss_mib()
    print(
        json.dumps(
            {
                "prefill_tok_s": batch * prompt_len / prefill,
                "decode_tok_s": batch * (new_tokens - 1) / decode,
                "peak_rss_mb": peak_mb,
                "torch": torch.__version__,
                "threads": threads,
            }
        )
    )


def many(model_dir, requests, prompt_len, new_tokens, batches, threads):
    """Generated tokens/s over `requests` prompts (the engine benchmark's ids), sampled at
    temperature 0.3, in batches of each size in `batches`; reports every size and the best."""
    import transformers
    model = eager_model(model_dir, threads)
    prompts = [bench_prompt(r, prompt_len) for r in range(requests)]
    per_batch = {}
    with torch.inference_mode():
        model(input_ids=torch.tensor(prompts[:1])[:, :8])  # warm-up
        for batch in batches:
            torch.manual_seed(1)
            t0 = time.perf_counter()
            tokens = 0
            for start in range(0, requests, batch):
                ids = torch.tensor(prompts[start : start + batch])
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=True,
                    temperature=0.3,
                    top_k=0,
                    pad_token_id=0,
                )
                tokens += (out.shape[1] - prompt_len) * out.shape[0]
            per_batch[batch] = round(tokens / (time.perf_counter() - t0), 1)
    best = max(per_batch, key=per_batch.get)
    print(
        json.dumps(
            {
                "per_batch": per_batch,
                "best_batch": best,
                "best_tok_s": per_batch[best],
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "threads": threads,
            }
        )
    )


def samples(model_dir, prompt_len, new_tokens, n, threads):
    """One prompt, `n` samples at temperature 0.3 (`num_return_sequences`, which repeats the
    prompt `n` times before the prefill). Best of 2."""
    model = eager_model(model_dir, threads)
    ids = torch.tensor([bench_prompt(0, prompt_len)])
    times = []
    with torch.inference_mode():
        model(input_ids=ids[:, :8])  # warm-up
        for _ in range(2):
            torch.manual_seed(1)
            t0 = time.perf_counter()
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=True,
                temperature=0.3,
                top_k=0,
                num_return_sequences=n,
                pad_token_id=0,
            )
            times.append(time.perf_counter() - t0)
            assert out.shape == (n, prompt_len + new_tokens)
    print(json.dumps({"secs": min(times), "tokens": n * new_tokens, "threads": threads}))


def rank(model_dir, prompts, prompt_len, candidates, cand_len, threads):
    """Each prompt's `candidates` continuations scored as separate texts (prompt + candidate,
    one batch of `candidates` rows per prompt): summed log-probabilities of the candidate tokens.
    Best of 2."""
    model = eager_model(model_dir, threads)
    times = []
    with torch.inference_mode():
        model(input_ids=torch.tensor([bench_prompt(0, 8)]))  # warm-up
        for _ in range(2):
            t0 = time.perf_counter()
            loglik = []
            for r in range(prompts):
                p = bench_prompt(r, prompt_len)
                ids = torch.tensor([p + candidate(r, c, cand_len) for c in range(candidates)])
                logp = torch.log_softmax(model(input_ids=ids).logits[:, prompt_len - 1 : -1].float(), -1)
                picked = logp.gather(2, ids[:, prompt_len:, None])[..., 0]
                loglik.append(picked.double().sum(1).tolist())
            times.append(time.perf_counter() - t0)
    print(json.dumps({"secs": min(times), "loglik": loglik, "threads": threads}))


def load(model_dir, threads):
    """Time of `from_pretrained` (fp32, CPU) in this fresh process, and until a first forward
    of 8 tokens has run (`ready_secs`: the weights are mapped from the file and read when first
    touched), with the peak resident memory then; `base_rss_mb` is the process after importing
    torch and transformers, before loading."""
    import transformers
    from transformers import GPTNeoXForCausalLM

    torch.set_num_threads(threads)
    base = peak_rss_mib()
    t0 = time.perf_counter()
    model = GPTNeoXForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    secs = time.perf_counter() - t0
    # The weights are mapped from the file and read when first used: time a first forward too.
    with torch.inference_mode():
        model(input_ids=torch.tensor([bench_prompt(0, 8)]))
    ready = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    print(
        json.dumps(
            {
                "secs": secs,
                "ready_secs": ready,
                "peak_rss_mb": peak_rss_mib(),
                "rss_mb": peak_rss_mib("VmRSS:"),
                "base_rss_mb": base,
                "parameters": params,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            }
        )
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--tokenizer", default=None)
    m.add_argument("--shape", choices=sorted(SHAPES), default="160m")

    def workload(name, *int_flags, **other_flags):
        """A timed workload's parser: --model, integer flags, other flags, --threads."""
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        for flag in int_flags:
            p.add_argument(flag, type=int, required=True)
        for flag, kind in other_flags.items():
            p.add_argument(flag, type=kind, required=True)
        p.add_argument("--threads", type=int, required=True)

    workload("run", "--batch", "--prompt-len", "--new-tokens")
    workload("many", "--requests", "--prompt-len", "--new-tokens", **{"--batches": str})
    workload("samples", "--prompt-len", "--new-tokens", "--samples")
    workload("rank", "--prompts", "--prompt-len", "--candidates", "--candidate-len")
    workload("load")
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.out, a.tokenizer, a.shape)
    elif a.cmd == "samples":
        samples(a.model, a.prompt_len, a.new_tokens, a.samples, a.threads)
    elif a.cmd == "rank":
        rank(a.model, a.prompts, a.prompt_len, a.candidates, a.candidate_len, a.threads)
    elif a.cmd == "load":
        load(a.model, a.threads)
    elif a.cmd == "many":
        batches = [int(b) for b in a.batches.split(",")]
        many(a.model, a.requests, a.prompt_len, a.new_tokens, batches, a.threads)
    else:
        run(a.model, a.batch, a.prompt_len, a.new_tokens, a.threads)


if __name__ == "__main__":
    main()
