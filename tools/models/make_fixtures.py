"""Writes tiny random C2S-style checkpoints in Hugging Face layout plus transformers reference outputs.

Run through `tools/models/make_fixtures.sh`, which creates the pinned venv first. For each
architecture variant this writes `<out>/<name>/` with `config.json`, `model.safetensors`,
`tokenizer.json`, `generation_config.json` and `reference.json`:

* `prompts`: texts and their token ids (tokenizer defaults, special tokens on);
* `logits`: full fp32 logits of every position of every prompt, one prompt at a time;
* `batch_logits`: the same prompts left-padded into one batch (position ids = cumsum(mask) - 1);
* `greedy`: greedy generations (`generate(do_sample=False)`), new token ids only;
* `embeddings`: mean of the last hidden state (after the final norm) over the prompt tokens;
* `hidden_states`: every layer's output for prompt 0, to bisect mismatches.

Everything runs in fp32 with `attn_implementation="eager"`.
"""

import argparse
import json
import os
import shutil

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    GenerationConfig,
    SiglipVisionConfig,
)
import transformers

GENES = (
    "MALAT1 B2M TMSB4X CD74 HLA-DRA CD3E IL7R LTB CCL5 NKG7 GNLY LYZ S100A9 S100A8 FTL FTH1 "
    "MS4A1 CD79A CD79B CD8A CD8B GZMB PRF1 FCGR3A CST3 HLA-DPB1 RPS27 RPL13 RPL3 EEF1A1 ACTB "
    "TPT1 RPS2 IFITM3 ISG15 MX1 IFI6 HLA-A HLA-B HLA-C TAP1 PSMB8 CD14 ITGAX PPBP PF4 GAPDH"
).split()

PROMPTS = [
    "The cell type is CD3E IL7R LTB MALAT1 B2M",
    "NKG7 GNLY CCL5 GZMB PRF1 FCGR3A CD8A HLA-A HLA-B ISG15 MX1 IFI6 TMSB4X",
    "LYZ S100A9",
]


def corpus():
    lines = []
    for i in range(400):
        k = 5 + (i * 7) % 30
        genes = [GENES[(i * 13 + j * 5) % len(GENES)] for j in range(k)]
        lines.append(" ".join(genes) + ".")
        lines.append("The cell type is " + " ".join(genes[:4]) + ".")
    return lines


def make_tokenizer(kind):
    """A small byte-level BPE tokenizer; `gemma` adds <bos> like Gemma, `neox` adds nothing."""
    if kind == "neox":
        specials = ["<|endoftext|>", "<|padding|>"]
    else:
        specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    if kind == "neox":
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
        )
    return tok


def randomize(model, seed, scale=0.3):
    """Gives every parameter (norm weights and biases included) a non-trivial random value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 1:
                # norm weights (1 for LayerNorm, 0 for Gemma's 1 + w) and biases
                p.copy_(p + 0.1 * noise)
            else:
                fan_in = p.shape[-1]
                p.copy_(noise * (scale * 3.0 / fan_in**0.5))


def left_pad(batch_ids, pad_id):
    width = max(len(x) for x in batch_ids)
    ids, mask = [], []
    for x in batch_ids:
        n = width - len(x)
        ids.append([pad_id] * n + x)
        mask.append([0] * n + [1] * len(x))
    ids = torch.tensor(ids)
    mask = torch.tensor(mask)
    pos = mask.long().cumsum(-1) - 1
    pos = pos.masked_fill(mask == 0, 1)
    return ids, mask, pos


def reference(model, tok, pad_id, max_new_tokens, eos_ids):
    model.eval()
    out = {"prompts": [], "logits": [], "embeddings": [], "greedy": []}
    all_ids = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = tok.encode(text).ids
            all_ids.append(ids)
            out["prompts"].append({"text": text, "ids": ids})
            x = torch.tensor([ids])
            r = model(input_ids=x, output_hidden_states=True)
            out["logits"].append(r.logits[0].tolist())
            out["embeddings"].append(r.hidden_states[-1][0].mean(0).tolist())
            if len(out["prompts"]) == 1:
                out["hidden_states"] = [h[0].tolist() for h in r.hidden_states]
            g = model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                eos_token_id=eos_ids,
            )
            out["greedy"].append(g[0, len(ids):].tolist())
        ids, mask, pos = left_pad(all_ids, pad_id)
        r = model(input_ids=ids, attention_mask=mask, position_ids=pos)
        out["batch"] = {"ids": ids.tolist(), "mask": mask.tolist()}
        out["batch_logits"] = [
            r.logits[b][mask[b] == 1].tolist() for b in range(len(all_ids))
        ]
    return out


def round_floats(x):
    """Nine significant digits: exact for float32, half the JSON size of repr(float64)."""
    if isinstance(x, float):
        return float(f"{x:.9g}")
    if isinstance(x, list):
        return [round_floats(v) for v in x]
    if isinstance(x, dict):
        return {k: round_floats(v) for k, v in x.items()}
    return x


def save(out_dir, name, model, tok, reference_data, gen_config):
    d = os.path.join(out_dir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.save_pretrained(d, safe_serialization=True)
    gen_config.save_pretrained(d)
    tok.save(os.path.join(d, "tokenizer.json"))
    reference_data["transformers_version"] = transformers.__version__
    reference_data["torch_version"] = torch.__version__
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(round_floats(reference_data), f, separators=(",", ":"))
    print("wrote", d)


def neox(out_dir, name, seed, parallel, rotary_pct):
    torch.manual_seed(seed)
    tok = make_tokenizer("neox")
    cfg = GPTNeoXConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=128,
        rotary_pct=rotary_pct,
        rotary_emb_base=10000,
        max_position_embeddings=64,
        use_parallel_residual=parallel,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    model = GPTNeoXForCausalLM(cfg)
    randomize(model, seed)
    gen = GenerationConfig(bos_token_id=0, eos_token_id=0)
    ref = reference(model, tok, pad_id=0, max_new_tokens=16, eos_ids=[0])
    save(out_dir, name, model, tok, ref, gen)


def gemma2(out_dir, name, seed):
    torch.manual_seed(seed)
    tok = make_tokenizer("gemma")
    cfg = Gemma2Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=24,
        sliding_window=4,
        max_position_embeddings=64,
        attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation="eager",
    )
    model = Gemma2ForCausalLM(cfg)
    randomize(model, seed)
    gen = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    ref = reference(model, tok, pad_id=0, max_new_tokens=16, eos_ids=[1])
    save(out_dir, name, model, tok, ref, gen)


def gemma3_text_config(tok):
    return Gemma3TextConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=4,
        sliding_window_pattern=2,
        max_position_embeddings=64,
        rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation="eager",
    )


def gemma3(out_dir, name, seed):
    torch.manual_seed(seed)
    tok = make_tokenizer("gemma")
    cfg = gemma3_text_config(tok)
    model = Gemma3ForCausalLM(cfg)
    randomize(model, seed)
    gen = GenerationConfig(bos_token_id=2, eos_token_id=[1, 3], pad_token_id=0)
    ref = reference(model, tok, pad_id=0, max_new_tokens=16, eos_ids=[1, 3])
    save(out_dir, name, model, tok, ref, gen)


def gemma3_nested(out_dir, name, seed):
    """Gemma3ForConditionalGeneration: nested text_config, vision tower weights to skip."""
    torch.manual_seed(seed)
    tok = make_tokenizer("gemma")
    text = gemma3_text_config(tok)
    vision = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    cfg = Gemma3Config(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        mm_tokens_per_image=1,
        image_token_index=5,
        boi_token_index=6,
        eoi_token_index=7,
        attn_implementation="eager",
    )
    model = Gemma3ForConditionalGeneration(cfg)
    randomize(model, seed)
    gen = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    ref = reference(model, tok, pad_id=0, max_new_tokens=16, eos_ids=[1])
    save(out_dir, name, model, tok, ref, gen)


def neox20b_tokenization(out_dir, shared_tokenizer):
    """Token ids of cell sentences from the real GPT-NeoX-20B tokenizer via transformers."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=shared_tokenizer)
    texts = PROMPTS + [
        "MALAT1 B2M TMSB4X EEF1A1 RPL13 RPS27 FTL HLA-DRA CD74 LYZ.",
        "The cell type of this cell is: CD14+ Monocyte.",
        "Predict the cell type: RPS2 ACTB GAPDH <|endoftext|> IFITM3",
    ]
    cases = [{"text": t, "ids": tok(t)["input_ids"], "decoded": tok.decode(tok(t)["input_ids"])} for t in texts]
    path = os.path.join(out_dir, "neox20b_tokenization.json")
    with open(path, "w") as f:
        json.dump({"cases": cases, "transformers_version": transformers.__version__}, f, indent=1)
    print("wrote", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared-tokenizer", default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    neox(args.out, "gpt_neox_parallel", 1, parallel=True, rotary_pct=0.25)
    neox(args.out, "gpt_neox_sequential", 2, parallel=False, rotary_pct=0.5)
    gemma2(args.out, "gemma2", 3)
    gemma3(args.out, "gemma3_text", 4)
    gemma3_nested(args.out, "gemma3_nested", 5)
    if args.shared_tokenizer and os.path.exists(args.shared_tokenizer):
        neox20b_tokenization(args.out, args.shared_tokenizer)


if __name__ == "__main__":
    main()
