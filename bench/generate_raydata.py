"""Benchmark: the generation stage through Ray Data vs the bare engine, same workload (GPU).

Workload: `--docs` demo-corpus documents in Parquet shards of `--shard-rows`; the attack of
bench/generate.py (50-token prompts, 100 new tokens, top-k 40 sampling, batch 512) plus each
document's NLL over its first seq_len tokens, as the stage computes it.

- stage: the generate stage (memlab.stages.runner.run_stage) end to end (Ray Data actor pool of
  `--actors` actors sharing the GPU: model load, shard reads, tokenization, generation,
  detokenization, atomic shard writes, manifest), timed from the call to its return;
- bare: one `Engine.generate` over the same pre-tokenized requests (same seeds, same tails),
  warmed up, timed alone.

raydata_frac_of_engine = stage generated tokens/s / bare engine generated tokens/s, end to end
(the stage's start-up included: Ray Data, actor start, model load, compile; the bare engine's
not). raydata_frac_of_engine_with_its_startup: the same against the bare engine with its own
model load and warm-up (compile, graph capture) counted.
raydata_steady_frac_of_engine: the same once every actor has finished its first shard
(tokens of the later shards over the time between the `--actors`-th and the last shard
written, from the shard files' times).
Writes bench/results/generate_raydata.json.

    python bench/generate_raydata.py --model <HF checkpoint folder>
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def study(args):
    import torch

    from memlab.config.schema import StudyConfig

    cfg = StudyConfig()
    a = cfg.attack
    a.prefix_tokens, a.suffix_tokens, a.max_new_tokens = 50, 50, 100
    a.decoding, a.top_k, a.temperature, a.top_p = "sample", 40, 1.0, 1.0
    a.batch_size, a.engine = args.batch, "memlab"
    a.actors, a.actor_cpus, a.actor_gpus = args.actors, args.actor_cpus, \
        (1.0 / args.actors if torch.cuda.is_available() else 0.0)
    cfg.train.seq_len = 150
    return cfg


def prepare(args, work: Path):
    """Dataset shards and a 'trained' checkpoint folder as the train stage leaves them."""
    import pyarrow as pa

    from memlab.components.corpus import generate_demo_corpus
    from memlab.io.shards import DATASET_SCHEMA, write_manifest, write_shard

    data = work / "data"
    docs = generate_demo_corpus(args.docs, seed=3)
    rows = [{"doc_id": d["doc_id"], "text": d["text"], "split": "member", "dup_count": 1}
            for d in docs]
    for i in range(0, len(rows), args.shard_rows):
        write_shard(pa.Table.from_pylist(rows[i:i + args.shard_rows], schema=DATASET_SCHEMA),
                    data / f"part-{i // args.shard_rows:05d}.parquet", DATASET_SCHEMA)
    write_manifest(data, rows=len(rows))
    return rows, data, trained_folder(args.model, work / "train", args.random_init)


def trained_folder(model: str, train: Path, random_init: bool) -> Path:
    """`train` made as the train stage leaves it, from the checkpoint folder `model` (with
    random_init: its architecture and tokenizer, fresh weights, for speed runs)."""
    from memlab.components.models import load_causal_lm, load_tokenizer
    from memlab.io.shards import write_manifest

    if random_init:
        from transformers import AutoConfig, AutoModelForCausalLM

        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).save_pretrained(
            train / "model")
    else:
        load_causal_lm(model).save_pretrained(train / "model")
    load_tokenizer(model).save_pretrained(train / "model")
    write_manifest(train, saved="full", base_model=model)
    return train


def bare_engine(cfg, rows, train: Path) -> tuple[int, float]:
    import torch

    from memlab.components.models import doc_tokens, load_trained
    from memlab.engine import Engine
    from memlab.stages.generate import attack_with_engine

    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    a = cfg.attack
    t0 = time.perf_counter()
    model, tok = load_trained(train, torch.bfloat16 if cuda else torch.float32)
    model.to("cuda" if cuda else "cpu")
    eng = Engine(model, max_batch=cfg.attack.batch_size, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id)
    t1 = time.perf_counter()
    ids = doc_tokens(tok, [r["text"] for r in rows], cfg.train.seq_len)
    docs = [(r, x) for r, x in zip(rows, ids) if len(x) >= a.prefix_tokens + a.suffix_tokens]
    t2 = time.perf_counter()
    list(attack_with_engine(eng, docs[:2 * a.batch_size], cfg, "warmup"))
    sync()
    startup = (t1 - t0) + (time.perf_counter() - t2)  # model load + engine warm-up (compile)
    t = time.perf_counter()
    out = list(attack_with_engine(eng, docs, cfg, "bare"))
    sync()
    secs = time.perf_counter() - t
    return sum(len(x[3]) for x in out), secs, startup


def workload(args) -> dict:
    """The settings the bare phase depends on (a stage phase may vary its actors)."""
    return {k: v for k, v in vars(args).items()
            if k not in ("phase", "out", "actors", "actor_cpus")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="HF checkpoint folder (e.g. SmolLM2)")
    ap.add_argument("--random-init", action="store_true",
                    help="use --model's config and tokenizer with random weights")
    ap.add_argument("--docs", type=int, default=262144)
    ap.add_argument("--shard-rows", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--actor-cpus", type=float, default=4)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--phase", choices=["all", "bare", "stage"], default="all",
                    help="bare: prepare and time the bare engine only (kept in --work); stage: "
                    "the stage on that prepared workload, then the result (two calls where one "
                    "would exceed a time limit)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generate_raydata.json"))
    args = ap.parse_args()
    if args.phase != "all" and not args.work:
        ap.error("--phase bare/stage need --work (the two phases share it)")
    import pyarrow.parquet as pq
    import ray

    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext

    work = Path(args.work or tempfile.mkdtemp(prefix="memlab-bench-"))
    cfg = study(args)
    saved = work / "bare.json"
    if args.phase == "stage":
        bare = json.loads(saved.read_text())
        if bare["args"] != workload(args):
            raise SystemExit(f"{saved} was measured with other settings: {bare['args']}")
        data, train = work / "data", work / "train"
        bare_tokens, bare_s, bare_startup_s = bare["tokens"], bare["s"], bare["startup_s"]
        rows = [None] * bare["docs"]
    else:
        t = time.perf_counter()
        rows, data, train = prepare(args, work)
        print(f"prepared {len(rows)} docs in {time.perf_counter() - t:.0f} s", flush=True)
        bare_tokens, bare_s, bare_startup_s = bare_engine(cfg, rows, train)  # fills the cache
        print(f"bare engine: {bare_tokens} tokens in {bare_s:.1f} s (+ {bare_startup_s:.1f} s "
              "model load and warm-up)", flush=True)
        saved.write_text(json.dumps({
            "tokens": bare_tokens, "s": bare_s, "startup_s": bare_startup_s, "docs": len(rows),
            "args": workload(args)}))
        if args.phase == "bare":
            return
    ray.init(include_dashboard=False, log_to_driver=True)
    out = work / "generate"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    t = time.perf_counter()
    man = run_stage(TrialContext(cfg, {"data": data, "train": train, "gen": out}), "gen").manifest
    stage_s = time.perf_counter() - t
    shards = sorted((p.stat().st_mtime - t0,
                     sum(len(x) for x in pq.read_table(p, columns=["gen_ids"])["gen_ids"]
                         .to_pylist())) for p in out.glob("part-*.parquet"))
    stage_tokens = sum(n for _, n in shards)
    ray.shutdown()
    print(f"stage: {man['rows']} rows, {stage_tokens} tokens in {stage_s:.1f} s", flush=True)

    stage_tps, bare_tps = stage_tokens / stage_s, bare_tokens / bare_s
    cold_tps = bare_tokens / (bare_s + bare_startup_s)
    headline = {"raydata_frac_of_engine": round(stage_tps / bare_tps, 3),
                "raydata_tok_s": round(stage_tps), "engine_tok_s": round(bare_tps),
                "raydata_frac_of_engine_with_its_startup": round(stage_tps / cold_tps, 3)}
    k = min(args.actors, len(shards)) - 1
    steady = None
    if len(shards) > k + 1 and shards[-1][0] > shards[k][0]:
        steady = sum(n for _, n in shards[k + 1:]) / (shards[-1][0] - shards[k][0])
        headline["raydata_steady_frac_of_engine"] = round(steady / bare_tps, 3)
    write_result(args.out, "generate_raydata.py", headline,
                 details={"docs": len(rows), "shards": man["shards"], "stage_s": stage_s,
                          "bare_s": bare_s, "bare_startup_s": bare_startup_s,
                          "stage_tokens": stage_tokens,
                          "bare_tokens": bare_tokens, "actors": args.actors,
                          "batch": args.batch, "steady_tok_s": steady,
                          "first_shard_done_s": shards[0][0] if shards else None,
                          "shard_done_s_and_tokens": [(round(s, 2), n) for s, n in shards]})
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
