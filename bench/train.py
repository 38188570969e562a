"""Benchmark: training throughput of each strategy alone on one GPU, through memlab's own
train stage (memlab/stages/train.py through the runner, in this process), random-init weights, bf16.

Models: a SmolLM2-135M-shaped and a Llama-3.2-1B-shaped Llama (shapes from
memlab.sweep.plan.KNOWN; a byte-level BPE trained here on the demo corpus gives the token
ids). Data: demo-corpus documents joined into long ones, so every training sequence is
`--seq` tokens; the same dataset, seed and order for every run.

Runs (each `--steps` optimizer steps; tokens/s after 2 warm-up steps, as the stage reports):
- 135M at `--batch` x `--seq`: full (train.full.engine=auto: plain torch on one GPU), head,
  LoRA, each with train.compile=on; full eager (train.compile=off: what compiling buys, and
  what it costs at start); full as memlab trained it before this issue (DeepSpeed ZeRO-2,
  eager; with today's data path: documents tokenized up front);
- 135M at the GPU study's shape (sweeps/gpu-1.yaml, 32 x 128): full now (eager: its 0.5M
  tokens are below train.compile_min_tokens) and before;
- 1B full, head and LoRA at `--batch-1b` x `--seq` (compiled);
- loss curves: full now (torch, compiled, bf16) against full before (DeepSpeed, bf16) and
  against plain torch in float32 (the reference both bf16 runs round away from): the
  largest relative difference per step. "Within bf16 noise": now-vs-before is no larger
  than before-vs-float32.

Headline (issue 17): full_tok_s_135m, mfu_full_1b (6 x parameters x tokens/s / --peak-tflops,
790: the dense bf16 rate measured on an H200), lora_over_full_135m, head_over_full_135m.

    python bench/train.py --work <dir> [--out bench/results/train.json]
    python bench/train.py --work <dir> --dry-run   # a 2-layer model on CPU: the script runs
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402

SHAPES = {"smollm2_135m": "HuggingFaceTB/SmolLM2-135M", "llama_1b": "meta-llama/Llama-3.2-1B"}
DRY = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
       "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096,
       "tie_word_embeddings": True}


def texts(n: int) -> list[str]:
    from memlab.components.corpus import generate_demo_corpus

    return [d["text"] for d in generate_demo_corpus(n, seed=11)]


def tokenizer(work: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = work / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        bpe.train_from_iterator(texts(2000), trainers.BpeTrainer(
            vocab_size=4000, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>",
                                bos_token="<|endoftext|>",
                                pad_token="<|endoftext|>").save_pretrained(folder)
    return folder


def build_model(work: Path, name: str, shape: dict) -> Path:
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = work / "models" / name
    if not (folder / "config.json").is_file():
        tok = tokenizer(work)
        conf = LlamaConfig(**shape, max_position_embeddings=2048, bos_token_id=0,
                           eos_token_id=0, pad_token_id=0)
        torch.manual_seed(0)
        LlamaForCausalLM(conf).save_pretrained(folder)
        for f in tok.iterdir():
            shutil.copy(f, folder / f.name)
    return folder


def dataset(work: Path, docs: int):
    """Demo documents joined eight at a time (every sequence fills --seq tokens) as a local
    dataset: all of them members, seen once."""
    from memlab.config.schema import StudyConfig
    from memlab.stages.data import build_dataset

    path = work / "corpus.jsonl"
    if not path.is_file():
        t = texts(docs * 8)
        with open(path, "w") as f:
            for i in range(docs):
                f.write(json.dumps({"id": f"d{i}", "text": " ".join(t[8 * i:8 * i + 8])}) + "\n")
    cfg = StudyConfig()
    d = cfg.data
    d.source, d.path, d.id_field = "local", str(path), "id"
    d.num_members, d.num_nonmembers, d.dup_mix = docs - 8, 8, [1]
    folder = work / "data"
    if not (folder / "_MANIFEST.json").is_file():
        build_dataset(d, folder)
    return cfg, folder


def train_run(args, cfg0, data: Path, model: Path, strategy: str, batch: int, seq: int,
          tag: str, **over) -> dict:
    """One run of memlab's train stage; its manifest's figures and loss curve."""
    import copy
    import shutil

    import torch

    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext

    cfg = copy.deepcopy(cfg0)
    cfg.model.source, cfg.model.name = "hf", str(model)
    t = cfg.train
    t.strategy, t.seq_len, t.batch_size, t.max_steps = strategy, seq, batch, args.steps
    t.epochs, t.precision, t.compile = 100, "bf16" if args.gpu else "fp32", "on"
    t.lora.dropout = 0.0
    getattr(cfg.resources, strategy).gpu = 1 if args.gpu else 0
    for k, v in over.items():
        obj = cfg
        *path, last = k.split(".")
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, v)
    out = args.work / "runs" / tag
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    try:
        ctx = TrialContext(cfg, {"data": data, "train": out}, base_model=str(model))
        man = run_stage(ctx, "train").manifest
    except Exception as e:  # one failed run is recorded, the others still run
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        gc.collect()
        if args.gpu:
            torch._dynamo.reset()
            torch.cuda.empty_cache()
    losses = json.loads((out / "metrics.json").read_text())["losses"]
    shutil.rmtree(out / "model", ignore_errors=True)
    rate = man["train_tokens_per_s"]
    steady = t.max_steps * batch * seq / rate if rate else 0.0
    row = {"engine": man["engine"], "batch": batch, "seq_len": seq, "steps": man["train_steps"],
           "tok_s": rate, "wall_s": time.time() - t0, "train_time_s": man["train_time_s"],
           # what the first steps cost beyond the steady rate (compilation, allocator)
           "startup_s": max(0.0, man["train_time_s"] - steady),
           "params": man["total_params"], "trainable": man["trainable_params"],
           "losses": losses}
    print(f"[bench] {tag}: {row['engine']} {rate:,.0f} tokens/s, startup "
          f"{row['startup_s']:.1f} s", flush=True)
    return row


def max_rel(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


def record(args, runs: dict, docs: int) -> None:
    """The record as far as the runs have gone (written after every run: a run cut short
    by a time limit still leaves the figures before it)."""
    B, S = args.batch, args.seq
    ok = lambda k: k in runs and "tok_s" in runs[k]  # noqa: E731
    tok_s = lambda k: runs[k]["tok_s"]  # noqa: E731
    head: dict[str, float] = {}
    if ok("full_135m"):
        head["full_tok_s_135m"] = tok_s("full_135m")
    if ok("full_1b"):
        r = runs["full_1b"]
        head["mfu_full_1b"] = 6 * r["params"] * r["tok_s"] / (args.peak_tflops * 1e12)
    for size in ("135m", "1b"):
        for s in ("lora", "head"):
            if ok(f"full_{size}") and ok(f"{s}_{size}"):
                head[f"{s}_over_full_{size}"] = tok_s(f"{s}_{size}") / tok_s(f"full_{size}")
    if ok("full_1b"):
        head["full_tok_s_1b"] = tok_s("full_1b")
    for tag, key in (("full_135m_eager", "full_tok_s_135m_eager"),
                     ("full_135m_before", "full_tok_s_135m_deepspeed"),
                     ("full_135m_gpu1", "full_tok_s_135m_32x128"),
                     ("full_135m_gpu1_eager", "full_tok_s_135m_32x128_eager"),
                     ("full_135m_gpu1_before", "full_tok_s_135m_32x128_deepspeed")):
        if ok(tag):
            head[key] = tok_s(tag)
    for s in ("lora", "head"):  # issue 36: the GPU study's shape, one CUDA graph per step
        if ok("full_135m_gpu1") and ok(f"{s}_135m_gpu1"):
            head[f"{s}_over_full_135m_32x128"] = tok_s(f"{s}_135m_gpu1") / tok_s("full_135m_gpu1")
    for tag, key in (("full_135m", "startup_s_full_135m_compiled"),
                     ("full_135m_eager", "startup_s_full_135m_eager")):
        if ok(tag):
            head[key] = runs[tag]["startup_s"]
    # loss curves: now / the path it replaces / float32, each pair's largest relative difference
    for (a, b, f), (na, nb), tail in (
            (("full_135m", "full_135m_before", "full_135m_fp32"), ("now", "deepspeed"), ""),
            (("full_135m_gpu1", "full_135m_gpu1_eager", "full_135m_gpu1_fp32"),
             ("graph", "eager"), "_32x128")):
        if ok(a) and ok(b) and ok(f):
            la, lb, lf = (runs[k]["losses"] for k in (a, b, f))
            head[f"loss_max_rel_diff_{na}_vs_{nb}{tail}"] = max_rel(la, lb)
            head[f"loss_max_rel_diff_{nb}_vs_fp32{tail}"] = max_rel(lb, lf)
            head[f"loss_max_rel_diff_{na}_vs_fp32{tail}"] = max_rel(la, lf)
    write_result(args.out, "train.py", head, workload={
        "data": f"{docs} demo-corpus documents joined 8 at a time, every sequence {S} tokens",
        "steps": args.steps, "batch_135m": B, "batch_1b": args.batch_1b, "seq_len": S,
        "peak_tflops": args.peak_tflops, "dry_run": args.dry_run}, runs=runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="working folder (kept)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64, help="135M: sequences per step")
    ap.add_argument("--steps-32x128", type=int, default=200,
                    help="steps of the runs at the GPU study's shape (32 x 128: short steps)")
    ap.add_argument("--batch-1b", type=int, default=32, help="1B: sequences per step")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--peak-tflops", type=float, default=790.0,
                    help="dense bf16 rate of the GPU (measured on the H200: 790)")
    ap.add_argument("--skip-1b", action="store_true")
    ap.add_argument("--runs", default="", help="comma-separated run tags: only these "
                    "(e.g. lora_1b,head_1b); default all")
    ap.add_argument("--dry-run", action="store_true", help="a 2-layer model on CPU")
    args = ap.parse_args()
    import torch

    args.gpu = torch.cuda.is_available() and not args.dry_run
    args.work.mkdir(parents=True, exist_ok=True)
    from memlab.sweep.plan import KNOWN

    shapes = {"smollm2_135m": DRY, "llama_1b": DRY} if args.dry_run else \
        {k: KNOWN[v] for k, v in SHAPES.items()}
    if args.dry_run:
        args.steps, args.batch, args.batch_1b, args.seq = 4, 4, 2, 64
        args.steps_32x128 = 4
    docs = max(args.batch, args.batch_1b) * args.steps + 16
    cfg, data = dataset(args.work, docs)
    small = build_model(args.work, "smollm2_135m", shapes["smollm2_135m"])
    runs: dict[str, dict] = {}
    B, S = args.batch, args.seq

    wanted = set(filter(None, args.runs.split(",")))

    def train(*a, **over) -> None:  # each run recorded as soon as it finished
        tag = a[7]
        if not wanted or tag in wanted:
            runs[tag] = train_run(*a, **over)
            record(args, runs, docs)

    for s in ("full", "head", "lora"):
        train(args, cfg, data, small, s, B, S, f"{s}_135m")
    train(args, cfg, data, small, "full", B, S, "full_135m_eager", **{"train.compile": "off"})
    train(args, cfg, data, small, "full", B, S, "full_135m_before",
          **{"train.full.engine": "deepspeed", "train.compile": "off"})
    train(args, cfg, data, small, "full", B, S, "full_135m_fp32",
          **{"train.full.engine": "torch", "train.compile": "off", "train.precision": "fp32"})
    small_steps = {"train.compile": "off", "train.max_steps": args.steps_32x128}
    for s in ("full", "head", "lora"):  # (train.cuda_graphs=auto: one CUDA graph per step)
        train(args, cfg, data, small, s, 32, 128, f"{s}_135m_gpu1", **small_steps)
    for tag, over in (("full_135m_gpu1_eager", {"train.cuda_graphs": "off"}),
                      ("full_135m_gpu1_fp32", {"train.cuda_graphs": "off",
                                               "train.precision": "fp32"}),
                      ("full_135m_gpu1_before", {"train.full.engine": "deepspeed"})):
        train(args, cfg, data, small, "full", 32, 128, tag, **small_steps, **over)
    if not args.skip_1b:
        big = build_model(args.work, "llama_1b", shapes["llama_1b"])
        for s in ("full", "head", "lora"):
            train(args, cfg, data, big, s, args.batch_1b, S, f"{s}_1b")

    record(args, runs, docs)


if __name__ == "__main__":
    main()
