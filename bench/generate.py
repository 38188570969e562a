"""Benchmark: memlab's generation engine vs HF `generate`, side by side in one run (GPU).

For each model shape (random init, bf16): SmolLM2-135M, GPT-2 small and a ~1B Llama
(Llama-3.2-1B shape), and each batch size: the same random prompts (`--prompt` tokens), the
same decoding (top-k sampling), `--new` new tokens with EOS off, through HF `generate` and
through memlab.engine. Also the full-forward (prefill) throughput of the model over sequences
of prompt+new tokens, and, for what limits the engine, its step time without torch.compile
and without CUDA graphs, and the bytes / FLOPs one decode step needs against the card's
ceilings.
Writes bench/results/generate.json.

    python bench/generate.py                      # on the GPU machine (about 3 min)
    python bench/generate.py --models smollm2 --batches 64 --new 20 --device cpu   # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402

HBM_GBS = 4300.0  # H200 device-to-device copy measured here (../shared KINDS.md): GB/s
BF16_TFLOPS = 780.0  # H200 dense bf16 matmul measured here on random data


def build(name: str, device: str):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if name == "smollm2":
        cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                          num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                          max_position_embeddings=8192, rope_theta=100000.0,
                          tie_word_embeddings=True)
        cls = LlamaForCausalLM
    elif name == "gpt2":
        cfg, cls = GPT2Config(), GPT2LMHeadModel
    elif name == "llama1b":
        cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                          num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                          head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
                          tie_word_embeddings=True)
        cls = LlamaForCausalLM
    else:
        raise SystemExit(f"unknown model {name!r}")
    cfg.eos_token_id = cfg.bos_token_id = None  # every run generates exactly --new tokens
    torch.manual_seed(0)
    with torch.device(device):
        model = cls(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32).eval()
    model.generation_config.eos_token_id = model.generation_config.bos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def timed(fn, reps: int, sync) -> tuple[float, object]:
    """Median wall seconds of `reps` runs (after the caller's warm-up) and the last result."""
    times, out = [], None
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_model(name: str, args, device: str) -> dict:
    import torch

    from memlab.engine import Decoding, Engine

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model = build(name, device)
    params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    vocab = cfg.vocab_size
    g = torch.Generator().manual_seed(1)
    res: dict = {"params_m": round(params / 1e6, 1)}

    # full forward over prompt+new tokens, as the issue measures the card
    seq = args.prompt + args.new
    b = max(args.batches)
    ids = torch.randint(1, vocab, (b, seq), generator=g).to(device)
    with torch.inference_mode():
        for keep, key in ((0, "prefill_tok_s"), (1, "prefill_last_logits_tok_s")):
            model(ids[:8], logits_to_keep=keep)
            t, _ = timed(partial(model, ids, logits_to_keep=keep), args.reps, sync)
            res[key] = b * seq / t

    dec = Decoding(greedy=False, temperature=1.0, top_k=args.top_k, top_p=1.0)
    for bsz in args.batches:
        r: dict = {}
        prompts = torch.randint(1, vocab, (bsz, args.prompt), generator=g)
        p_dev = prompts.to(device)
        mask = torch.ones_like(p_dev)

        gen = partial(model.generate, p_dev, attention_mask=mask, do_sample=True,
                      top_k=args.top_k)
        with torch.inference_mode():
            gen(max_new_tokens=4)  # warm-up
            t, out = timed(partial(gen, max_new_tokens=args.new), args.hf_reps, sync)
        assert out.shape[1] == args.prompt + args.new
        r["hf_tok_s"] = bsz * args.new / t

        plist = prompts.tolist()
        seeds = list(range(bsz))
        # engine: compiled step replayed as a CUDA graph; the other two show what each buys
        # exact: HF's own kernels and shapes (bit-identical to HF); sdpa_decode: decode
        # attention by SDPA over the whole cache instead of the Triton live-span kernel
        for label, kw in (("engine", {}), ("engine_sdpa_decode", {"decode_kernel": "sdpa"}),
                          ("engine_exact", {"exact": True}),
                          ("engine_nocompile", {"compile": False}),
                          ("engine_eager", {"use_graphs": False, "compile": False})):
            eng = Engine(model, max_batch=bsz, eos_token_id=-1,
                         sdpa=tuple(args.sdpa.split(",")) if args.sdpa and "exact" not in kw
                         else None, **kw)
            run = partial(eng.generate, plist, max_new_tokens=args.new, decoding=dec,
                          seeds=seeds)
            t0 = time.perf_counter()
            run()  # warm-up: compiles the step, captures the graph
            r[f"{label}_warmup_s"] = time.perf_counter() - t0
            reps = args.reps if label == "engine" else 1
            t, out = timed(run, reps, sync)
            assert all(len(x) == args.new for x in out.tokens)
            r[f"{label}_tok_s"] = bsz * args.new / t
            r[f"{label}_ms_per_step"] = 1e3 * t / args.new
        r["speedup_vs_hf"] = r["engine_tok_s"] / r["hf_tok_s"]
        r["frac_of_prefill"] = r["engine_tok_s"] / res["prefill_tok_s"]
        # one decode step's traffic and work at the mean context length
        ctx = args.prompt + args.new / 2
        if hasattr(cfg, "num_key_value_heads"):
            kv = cfg.num_key_value_heads * (getattr(cfg, "head_dim", None)
                                            or cfg.hidden_size // cfg.num_attention_heads)
            layers = cfg.num_hidden_layers
        else:
            kv, layers = cfg.n_embd, cfg.n_layer
        kv_bytes = bsz * ctx * layers * 2 * kv * 2
        w_bytes = params * 2
        flops = 2 * params * bsz + 4 * bsz * ctx * layers * kv * (
            getattr(cfg, "num_attention_heads", 1) // getattr(cfg, "num_key_value_heads", 1))
        step_s = r["engine_ms_per_step"] / 1e3
        r["step_floor_ms"] = 1e3 * max((kv_bytes + w_bytes) / (HBM_GBS * 1e9),
                                       flops / (BF16_TFLOPS * 1e12))
        r["achieved_gb_s"] = (kv_bytes + w_bytes) / step_s / 1e9
        r["achieved_tflops"] = flops / step_s / 1e12
        res[f"b{bsz}"] = r
        print(name, f"b{bsz}", json.dumps({k: round(v, 3) for k, v in r.items()}), flush=True)
    print(name, json.dumps({k: round(v, 1) for k, v in res.items() if not isinstance(v, dict)}),
          flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2", "gpt2", "llama1b"])
    ap.add_argument("--batches", type=int, nargs="+", default=[512, 64])
    ap.add_argument("--prompt", type=int, default=50)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--reps", type=int, default=5, help="timed runs of the engine (median)")
    ap.add_argument("--hf-reps", type=int, default=2, help="timed runs of HF generate")
    ap.add_argument("--sdpa", default=None,
                    help="comma-separated SDPBackend names the engine's attention may use")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generate.json"))
    args = ap.parse_args()
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    runs = {m: bench_model(m, args, args.device) for m in args.models}
    headline = {}
    big = max(args.batches)
    if "smollm2" in runs:
        s = runs["smollm2"][f"b{big}"]
        headline[f"speedup_vs_hf_smollm2_b{big}"] = round(s["speedup_vs_hf"], 2)
        headline[f"frac_of_prefill_smollm2_b{big}"] = round(s["frac_of_prefill"], 3)
        headline[f"tok_s_smollm2_b{big}"] = round(s["engine_tok_s"])
    if "gpt2" in runs:
        headline[f"speedup_vs_hf_gpt2_b{big}"] = round(runs["gpt2"][f"b{big}"]["speedup_vs_hf"], 2)
    write_result(args.out, "generate.py", headline, runs=runs,
                 settings={k: v for k, v in vars(args).items() if k != "out"})


if __name__ == "__main__":
    main()
