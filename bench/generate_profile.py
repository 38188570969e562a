"""Where a decode step's time goes: CUDA kernels of memlab's engine step, by kernel (GPU).

The model and workload of bench/generate.py (random init, bf16, 50-token prompts, 100 new
tokens, top-k 40 sampling) at one batch size: the step is timed as replayed from its CUDA graph,
then its kernels are profiled (torch.profiler) over `--steps` calls of the same compiled step
outside the graph, split into the step's head (embedding, mask, RoPE), its layers and its tail
(norm, logits, sampling). Prints the top kernels and writes them as JSON.

    python bench/generate_profile.py --model smollm2 --batch 512 --out $OUT/profile.json
    python bench/generate_profile.py --model smollm2 --batch 8 --new 8 --device cpu  # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402
from bench.generate import build  # noqa: E402


def _dev_us(e, total: bool = False) -> float:
    for k in (("device_time_total", "cuda_time_total") if total else
              ("self_device_time_total", "self_cuda_time_total")):
        if hasattr(e, k):
            return float(getattr(e, k))
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=50)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--steps", type=int, default=20, help="profiled step calls")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--exact-casts", type=int, default=1, choices=(0, 1))
    ap.add_argument("--sdpa", default=None,
                    help="comma-separated SDPBackend names attention may use (default: any)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generate_profile.json"))
    args = ap.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from memlab.engine import Decoding, Engine

    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = build(args.model, args.device)
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(1, model.config.vocab_size, (args.batch, args.prompt),
                            generator=g).tolist()
    dec = Decoding(greedy=False, temperature=1.0, top_k=args.top_k, top_p=1.0)
    eng = Engine(model, max_batch=args.batch, eos_token_id=-1,
                 exact_casts=bool(args.exact_casts),
                 sdpa=tuple(args.sdpa.split(",")) if args.sdpa else None)
    run = lambda: eng.generate(prompts, max_new_tokens=args.new, decoding=dec,  # noqa: E731
                               seeds=list(range(args.batch)))
    t = time.perf_counter()
    run()
    warm = time.perf_counter() - t
    times = []
    for _ in range(3):
        sync()
        t = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t)
    gen_s = sorted(times)[1]
    st = next(iter(eng._batches.values()))

    # one step in pieces, as _Batch._step does, with a range around each piece
    d = eng.dec

    def step():
        with record_function("step.head"):
            x, r, bias, rope = eng.f_pre(d, st.tok, st.slot, st.pad, st.ar)
        with record_function("step.layers"):
            for w, (kc, vc) in zip(d.layers, st.cache):
                x, r = eng.f_layer(x, r, w, kc, vc, st.slot, bias, rope, d.spec, d.act)
        with record_function("step.tail"):
            eng.f_post(d, x, r, st.decoding, st.keys, st.step, eng.vocab_hash, eng.fill,
                       eng.eos, st.tok, st.slot, st.done, st.out)

    def reset():
        st.slot.fill_(args.prompt + 14)  # mid-way: the mask/attention work is the same anyway
        st.step.fill_(1)

    with torch.inference_mode():
        reset()
        for _ in range(3):
            step()
        sync()
        reset()
        # step time outside the graph (launch-bound part shows as the gap to graph replay)
        sync()
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        eager_step_ms = 1e3 * (time.perf_counter() - t) / args.steps
        reset()
        graph_ms = None
        if st.graph is not None:
            sync()
            t = time.perf_counter()
            for _ in range(args.steps):
                st.graph.replay()
            sync()
            graph_ms = 1e3 * (time.perf_counter() - t) / args.steps
        reset()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            for _ in range(args.steps):
                step()
            sync()
    n = args.steps
    avg = prof.key_averages()
    ranges = {e.key: _dev_us(e, total=True) / n for e in avg if e.key.startswith("step.")}
    # kernels: device-side events (no CPU op names); fall back to ops on CPU
    kern = [e for e in avg if _dev_us(e) > 0 and not e.key.startswith("step.")
            and (not cuda or getattr(e, "device_type", None) is None
                 or str(e.device_type).endswith("CUDA"))]
    kern.sort(key=_dev_us, reverse=True)
    total = sum(_dev_us(e) for e in kern) / n
    top = [{"kernel": e.key[:160], "calls_per_step": e.count / n,
            "us_per_step": round(_dev_us(e) / n, 1), "us_per_call": round(_dev_us(e) / e.count, 2),
            "frac": round(_dev_us(e) / n / total, 3) if total else None}
           for e in kern[:args.top]]
    res = {"model": args.model, "batch": args.batch, "cache_len": st.length,
           "exact_casts": bool(args.exact_casts), "sdpa": args.sdpa, "warmup_s": round(warm, 1),
           "gen_ms_per_step": 1e3 * gen_s / args.new, "graph_replay_ms_per_step": graph_ms,
           "nograph_ms_per_step": eager_step_ms, "kernel_us_per_step": round(total, 1),
           "kernels_per_step": sum(e.count for e in kern) / n,
           "range_device_us_per_step": {k: round(v, 1) for k, v in ranges.items()},
           "top_kernels": top}
    print(json.dumps({k: v for k, v in res.items() if k != "top_kernels"}, indent=1))
    for r in top:
        print(f"{r['us_per_step']:9.1f} us/step {r['frac']:6.3f} {r['calls_per_step']:6.1f}x "
              f"{r['us_per_call']:8.2f} us  {r['kernel']}")
    write_result(args.out, "generate_profile.py",
                 {f"ms_per_step_b{args.batch}": round(graph_ms or eager_step_ms, 3),
                  "kernel_us_per_step": round(total, 1)}, profile=res,
                 settings={k: v for k, v in vars(args).items() if k != "out"})


if __name__ == "__main__":
    main()
