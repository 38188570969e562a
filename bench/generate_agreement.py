"""Greedy agreement with HF `generate` in bf16 on a real checkpoint, and what limits it (GPU).

The workload of tests/gpu/test_engine_gpu.py (256 demo-corpus prompts of 50 tokens, 100 new
greedy tokens, batch 256) through:
- HF `generate` (the reference) and HF `generate` in two batches of 128 (HF against itself:
  how far bf16 results move with nothing but the batch shape);
- memlab's engine in several builds: the default, exact mode (HF's own kernels and shapes),
  decode attention by SDPA instead of the Triton kernel, compiled step or not, q/k/v and
  gate/up fused or not, inductor rounding like eager (exact_casts) or not; and in float32
  against HF in float32;
- for each sequence where the default engine leaves HF, the margin of HF's own choice at the
  first differing token (HF bf16 logits, teacher-forced): top-1 logit minus the logit of the
  engine's token. Near-ties (tiny margins) mean bf16 rounding picked the token, not a bug.

Agreement = tokens equal position by position (after a first difference too) / tokens.

    python bench/generate_agreement.py --model <SmolLM2 folder> --out $OUT/agreement.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def agreement(mine, ref) -> tuple[float, int]:
    same = total = 0
    for a, b in zip(mine, ref):
        total += max(len(a), len(b))
        same += sum(x == y for x, y in zip(a, b))
    return same / max(total, 1), sum(a == b for a, b in zip(mine, ref))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="HF checkpoint folder (SmolLM2-135M)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=50)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generate_agreement.json"))
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memlab.components.corpus import generate_demo_corpus
    from memlab.engine import Engine

    dev = args.device
    tok = AutoTokenizer.from_pretrained(args.model)
    docs = generate_demo_corpus(args.n, seed=11)
    ps = [tok(d["text"], add_special_tokens=False)["input_ids"][:args.prompt] for d in docs]
    eos = tok.eos_token_id
    res: dict = {"n": args.n, "prompt": args.prompt, "new": args.new}

    def hf(model, rows):
        out = []
        for s in range(0, len(ps), rows):
            ids = torch.tensor(ps[s:s + rows], device=dev)
            with torch.no_grad():
                g = model.generate(ids, attention_mask=torch.ones_like(ids),
                                   max_new_tokens=args.new, do_sample=False, pad_token_id=eos,
                                   eos_token_id=eos)[:, ids.shape[1]:].tolist()
            out += [r[:r.index(eos)] if eos in r else r for r in g]
        return out

    def engine(model, **kw):
        t = time.perf_counter()
        e = Engine(model, max_batch=args.n, eos_token_id=eos, pad_token_id=eos, **kw)
        out = e.generate(ps, max_new_tokens=args.new).tokens
        return out, time.perf_counter() - t

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).to(dev).eval()
    ref = hf(model, args.n)
    a, ident = agreement(hf(model, args.n // 2), ref)
    res["hf_b128x2_vs_hf_b256"] = {"agreement": a, "identical": ident}
    print("hf b128x2 vs hf b256", a, ident, flush=True)
    variants = {
        "default": {},
        "exact": {"exact": True},
        "sdpa_decode": {"decode_kernel": "sdpa"},
        "no_exact_casts": {"exact_casts": False},
        "unfused": {"fuse": False},
        "no_compile": {"compile": False},
        "no_compile_unfused": {"compile": False, "fuse": False},
    }
    outs = {}
    for name, kw in variants.items():
        try:
            out, secs = engine(model, **kw)
        except Exception as exc:  # report and go on: the other variants still tell something
            res[name] = {"error": repr(exc)[:300]}
            print(name, "failed:", repr(exc)[:300], flush=True)
            continue
        outs[name] = out
        a, ident = agreement(out, ref)
        res[name] = {"agreement": a, "identical": ident, "kwargs": kw, "seconds": secs}
        print(name, a, ident, f"{secs:.1f} s", flush=True)

    # margins of HF's choice where the default engine first leaves HF
    margins, firsts = [], []
    mine = outs.get("default", [])
    for p, a, b in zip(ps, mine, ref):
        j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if j is None:
            continue
        firsts.append(j)
        ids = torch.tensor([p + b[:j]], device=dev)
        with torch.no_grad():
            lg = model(ids).logits[0, -1].float()
        margins.append(float(lg.max() - lg[a[j]]))
    if margins:
        res["first_difference"] = {
            "sequences": len(margins), "position_median": statistics.median(firsts),
            "hf_margin_median": statistics.median(margins),
            "hf_margin_max": max(margins),
            "frac_margin_below_0.125": sum(m < 0.125 for m in margins) / len(margins),
            "frac_margin_below_0.5": sum(m < 0.5 for m in margins) / len(margins),
            "margins": [round(m, 4) for m in margins]}
        print("first differences:", json.dumps({k: v for k, v in res["first_difference"].items()
                                                 if k != "margins"}), flush=True)

    # float32: the engine should follow HF token for token (numerics identical up to fp32)
    model = model.float()
    ref32 = hf(model, args.n)
    out32, _ = engine(model, compile=False)
    a, ident = agreement(out32, ref32)
    res["fp32_no_compile"] = {"agreement": a, "identical": ident}
    print("fp32 engine vs fp32 hf", a, ident, flush=True)
    a, ident = agreement(ref, ref32)
    res["hf_bf16_vs_hf_fp32"] = {"agreement": a, "identical": ident}
    print("hf bf16 vs hf fp32", a, ident, flush=True)
    write_result(args.out, "generate_agreement.py",
                 {"agreement_default": res.get("default", {}).get("agreement"),
                  "agreement_exact": res.get("exact", {}).get("agreement"),
                  "agreement_hf_vs_itself_b128x2": res["hf_b128x2_vs_hf_b256"]["agreement"],
                  "agreement_fp32": res["fp32_no_compile"]["agreement"]},
                 details=res, settings={k: v for k, v in vars(args).items() if k != "out"})


if __name__ == "__main__":
    main()
