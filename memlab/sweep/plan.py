"""What a sweep will cost before it runs: memory per GPU and GPU-hours per trial.

Pure arithmetic on the study config and the model's shape (read from its config.json, or
known for the built-in sources): no torch, so `memlab plan` answers in well under a second.

Memory per GPU of a training trial: its strategy's estimate (memlab/strategies/: full under
DeepSpeed ZeRO or plain torch, head, LoRA, a study's own), from its weights, gradients and
optimizer states and the activations and logits of one forward / backward pass of `rows`
sequences (train.micro_batch, else a worker's share of train.batch_size); plus 1 GiB of CUDA
context and workspace. With DP fine-tuning (train.dp), plus Opacus's per-sample gradients:
trainable parameters x rows x 4 bytes (its default hooks keep one gradient per sequence of
the pass, cast to fp32 to be clipped) and their clipped sum, 4 bytes per trainable parameter
(the strategy's `trainable`; every parameter for a strategy that gives none); a DP step's
batch is Poisson-sampled, so without train.micro_batch `rows` is a draw three standard
deviations above the mean, train.batch_size + 3 sqrt(train.batch_size) (`dp_rows`).
A generation actor holds 2P weights, a KV cache of batch x (prefix + new tokens) (for
instruction and chat data the part before the response comes on top: not counted here) and
the teacher-forced passes' logits (LOGIT_ELEMS = 2^27 per forward: bf16, float32 and the
per-token statistics' temporaries, ~12 bytes each).

GPU-hours: the strategy's FLOPs per parameter per training token (6 full, 4 LoRA, 2 head) and
2 per generated token, at `tflops` effective TFLOP/s per GPU (default 300: ~40% of an H100/H200).
A trial without a GPU gets the same FLOPs at CPU_GFLOPS_PER_CORE per torch thread instead: a
rough time on CPU. Steps: ceil(training stream / train.batch_size) x train.epochs (at most
train.max_steps), the stream being each member times its copies plus the canaries' repeats.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from memlab.components.models import torch_threads
from memlab.config.keys import count_steps, member_stream, train_tokens
from memlab.config.labels import model_label
from memlab.config.privacy import sample_rate, stream_sequences
from memlab.config.schema import StudyConfig

GIB = 1024 ** 3
CPU_GFLOPS_PER_CORE = 40.0
"""Effective training FLOP/s per torch thread on a CPU, measured: the demo (SmolLM2-135M,
42 steps of 8 x 64 tokens, float32, 2 threads on a 2-core x86 laptop-class CPU) trained full
in 236 s (37 GFLOP/s per core, DeepSpeed ZeRO-2 on CPU), head-only in 64 s (45) and LoRA in
115 s (50), at 6, 2 and 4 FLOPs per parameter per token. Another CPU, another model size or
generation (which runs below this rate) can be off by 2x: `memlab plan` labels it an estimate.
"""


def _llama(h, layers, inter, heads, kv, vocab, tied=True) -> dict:
    return {"hidden_size": h, "num_hidden_layers": layers, "intermediate_size": inter,
            "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
            "tie_word_embeddings": tied}


def _gpt2(h, layers, heads) -> dict:
    return {"n_embd": h, "n_layer": layers, "n_head": heads, "vocab_size": 50257}


SMOLLM2 = _llama(576, 30, 1536, 9, 3, 49152)
# Shapes of common hub models, so that plans of grids over them need no download.
KNOWN = {
    "HuggingFaceTB/SmolLM2-135M": SMOLLM2, "HuggingFaceTB/SmolLM2-135M-Instruct": SMOLLM2,
    "HuggingFaceTB/SmolLM2-360M": _llama(960, 32, 2560, 15, 5, 49152),
    "HuggingFaceTB/SmolLM2-1.7B": _llama(2048, 24, 8192, 32, 32, 49152),
    "gpt2": _gpt2(768, 12, 12), "gpt2-medium": _gpt2(1024, 24, 16),
    "gpt2-large": _gpt2(1280, 36, 20), "gpt2-xl": _gpt2(1600, 48, 25),
    "meta-llama/Llama-3.2-1B": _llama(2048, 16, 8192, 32, 8, 128256),
    "meta-llama/Llama-3.2-3B": _llama(3072, 28, 8192, 24, 8, 128256),
    "meta-llama/Llama-3.1-8B": _llama(4096, 32, 14336, 32, 8, 128256, tied=False),
}


@dataclass
class Shape:
    params: float
    hidden: int
    layers: int
    kv_dim: int
    vocab: int


def _from_hf_config(c: dict) -> Shape:
    h = c.get("hidden_size") or c.get("n_embd")
    layers = c.get("num_hidden_layers") or c.get("n_layer")
    heads = c.get("num_attention_heads") or c.get("n_head")
    kv = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or h // heads
    inter = c.get("intermediate_size") or c.get("n_inner") or 4 * h
    vocab = c["vocab_size"]
    gated = "intermediate_size" in c  # llama-style gate/up/down
    per_layer = h * (heads * hd) * 2 + h * (kv * hd) * 2 + (3 if gated else 2) * h * inter
    emb = vocab * h * (1 if c.get("tie_word_embeddings", True) else 2)
    # the small tensors too, so that the count is the model's own (SmolLM2: 134,515,008, as
    # loaded and as its GGUF file holds), not a second number next to the report's
    if gated:  # Llama: two RMSNorm weights per layer and a final one; no biases
        small = layers * 2 * h + h
    else:  # GPT-2: LayerNorm weights and biases, the linear layers' biases, positions
        small = layers * (4 * h + heads * hd + 2 * kv * hd + h + inter + h) + 2 * h \
            + c.get("n_positions", 1024) * h
    return Shape(layers * per_layer + emb + small, h, layers, kv * hd, vocab)


def model_shape(cfg: StudyConfig) -> Shape | None:
    """The base model's shape, or None where it cannot be known offline and fast."""
    m = cfg.model
    if m.source == "smollm2":
        return _from_hf_config(SMOLLM2)
    if m.source == "tiny":
        t = m.tiny
        return _from_hf_config({"hidden_size": t.hidden, "num_hidden_layers": t.layers,
                                "num_attention_heads": t.heads, "vocab_size": t.vocab,
                                "tie_word_embeddings": t.tie_embeddings,
                                **({"intermediate_size": 4 * t.hidden}
                                   if t.family == "llama" else {})})
    if m.source == "hf" and m.name:
        conf = Path(m.name).expanduser() / "config.json"
        if conf.is_file():
            return _from_hf_config(json.loads(conf.read_text()))
        if m.name in KNOWN:
            return _from_hf_config(KNOWN[m.name])
    return None


def train_steps(cfg: StudyConfig) -> int:
    """Optimizer steps of a trial, from the config alone (its members' and canaries' stream:
    what the train stage counts from its dataset)."""
    c = cfg.data.canaries
    return count_steps(member_stream(cfg) + c.count * sum(c.repeats), cfg)


def cpu_hours(cfg: StudyConfig, shape: Shape, workers: int = 1) -> float:
    """A rough time of a trial without a GPU: its training and generation FLOPs at
    CPU_GFLOPS_PER_CORE per torch thread (train.threads, else its CPUs; per worker).
    Start-up, scoring and Ray's own work come on top."""
    flops = cfg.strategy.flops * shape.params * train_tokens(cfg) \
        + 2 * shape.params * gen_tokens(cfg)
    return flops / (CPU_GFLOPS_PER_CORE * 1e9 * torch_threads(cfg) * workers) / 3600


def gen_tokens(cfg: StudyConfig) -> int:
    """Tokens a trial generates: the attack's samples, and sample-and-rank's draws
    (attack.rank.samples)."""
    d, a = cfg.data, cfg.attack
    return ((d.num_members + d.num_nonmembers) * a.samples_per_prompt + a.rank.samples) * \
        a.max_new_tokens


def dp_rows(cfg: StudyConfig) -> int:
    """Sequences of a DP step's pass that the memory estimate holds: train.micro_batch, else
    a Poisson draw three standard deviations above the mean batch (train.batch_size)."""
    b = cfg.train.batch_size
    return cfg.train.micro_batch or b + math.ceil(3 * math.sqrt(b))


def dp_memory(cfg: StudyConfig, shape: Shape, rows: int) -> float:
    """Bytes DP adds to training (the module's doc): per-sample gradients and their clipped
    sum."""
    s = cfg.strategy
    return 4 * (s.trainable(cfg, shape) if s.trainable else shape.params) * (rows + 1)


def dp_label(cfg: StudyConfig) -> str:
    """A trial's DP settings as `memlab plan` shows them (the noise multiplier needs Opacus:
    the train stage computes it)."""
    dp = cfg.train.dp
    if not dp.on:
        return "off"
    q = sample_rate(stream_sequences(cfg), cfg.train.batch_size)
    return f"eps={dp.epsilon:g} delta={dp.delta:g} C={dp.max_grad_norm:g} q=1/{round(1 / q)}"


def estimate(cfg: StudyConfig, shape: Shape, tflops: float = 300.0, workers: int = 1) -> dict:
    """Memory per GPU (GiB) of the trial (its strategy's estimate: memlab/strategies/; None
    where the strategy gives none; with DP, its per-sample gradients) and of one generation
    actor; GPU-hours."""
    p, t, a, strategy = shape.params, cfg.train, cfg.attack, cfg.strategy
    rows = t.micro_batch or t.batch_size // max(1, workers)  # sequences per forward / backward
    rows = dp_rows(cfg) if t.dp.on else rows
    mem = strategy.memory(cfg, shape, rows, workers) if strategy.memory else None
    if mem is not None and t.dp.on:
        mem += dp_memory(cfg, shape, rows)
    flops_tok = strategy.flops * p
    kv = a.batch_size * (a.prefix_tokens + a.max_new_tokens) * shape.layers * 2 * shape.kv_dim * 2
    gen_mem = 2 * p + kv + 4 * a.batch_size * shape.vocab * 4 + 12 * 2**27  # + logits
    train_h = flops_tok * train_tokens(cfg) / (tflops * 1e12) / 3600
    gen_h = 2 * p * gen_tokens(cfg) / (tflops * 1e12) / 3600
    trained = strategy.trainable(cfg, shape) if strategy.trainable else None
    return {"params": int(p), "params_m": p / 1e6, "trainable": trained,
            "train_mem_gib": None if mem is None else mem / GIB + 1,
            "gen_mem_gib": gen_mem / GIB + 1, "gpu_hours": train_h + gen_h,
            "cpu_hours": cpu_hours(cfg, shape, workers)}


def caps(c: StudyConfig) -> tuple[float | None, float | None]:
    """GiB of GPU memory a trial of this config may use to train, and one of its generation
    actors (a fractional GPU gets that fraction; None: no GPU reserved)."""
    res = c.reserved
    mem = c.resources.gpu_mem_gb
    return (mem * min(res.gpu, 1) if res.gpu else None,
            mem * min(c.attack.actor_gpus, 1) if c.attack.actor_gpus else None)


def sized_shares(c: StudyConfig, shape: Shape | None) -> StudyConfig:
    """The config with resources.gpu_share=memory applied: the trial's (per-worker) GPU
    fraction and each actor's sized to their memory estimates x share_margin, in steps of
    0.01 GPU, never above the configured fractions (a copy; fixed shares or an unknown shape:
    the config itself)."""
    import copy

    r = c.resources
    if r.gpu_share != "memory" or shape is None:
        return c
    est = estimate(c, shape, workers=c.reserved.workers)
    share = lambda gib, cap: min(cap, math.ceil(gib * r.share_margin / r.gpu_mem_gb * 100) / 100)  # noqa: E731
    c = copy.deepcopy(c)
    res = c.reserved
    if res.gpu and est["train_mem_gib"] is not None:
        res.gpu = share(est["train_mem_gib"], res.gpu)
    if c.attack.actor_gpus:
        c.attack.actor_gpus = share(est["gen_mem_gib"], c.attack.actor_gpus)
    return c


def gpu_hours(c: StudyConfig, est: dict) -> float:
    """The trial's GPU-hours, counted only where it reserves a GPU."""
    return est["gpu_hours"] if any(x is not None for x in caps(c)) else 0.0


def misfits(study, tflops: float = 300.0) -> tuple[list[dict], list[str]]:
    """Per-trial estimates, and a message for every trial that cannot fit on the GPUs the
    config describes (resources.gpu_mem_gb per GPU; a fractional GPU gets that fraction)."""
    rows: list[dict | None] = []
    problems: dict[str, list[str]] = {}  # message -> names of the trials it applies to
    shapes: dict[str, Shape | None] = {}
    for trial in study.trials:
        c = trial.config
        key = repr((c.model.source, c.model.name, vars(c.model.tiny)))
        if key not in shapes:
            shapes[key] = model_shape(c)
        shape = shapes[key]
        s, res = c.train.strategy, c.reserved
        est = estimate(c, shape, tflops, workers=res.workers) if shape else None
        rows.append(est)
        if est is None:
            continue
        cap, gpu = c.resources.gpu_mem_gb, res.gpu
        train_cap, gen_cap = caps(c)
        if train_cap and est["train_mem_gib"] and est["train_mem_gib"] > train_cap:
            fix = c.strategy.fix or f"a larger resources.{s}.gpu"
            fix = f"a smaller train.micro_batch, or {fix}"
            problems.setdefault(
                f"{s} fine-tuning of {model_label(c)} ({est['params_m']:.1f}M) needs "
                f"~{est['train_mem_gib']:.1f} GiB per GPU, more than its {min(gpu, 1):g} x "
                f"{cap:g} GiB (resources.{s}.gpu, resources.gpu_mem_gb): lower "
                f"train.batch_size / train.seq_len, or {fix}", []).append(trial.name)
        if gen_cap and est["gen_mem_gib"] > gen_cap:
            problems.setdefault(
                f"a generation actor for {model_label(c)} needs ~{est['gen_mem_gib']:.1f} "
                f"GiB, more than attack.actor_gpus={c.attack.actor_gpus:g} x {cap:g} GiB: "
                "lower attack.batch_size or raise attack.actor_gpus", []).append(trial.name)
    msgs = []
    for msg, names in problems.items():
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        msgs.append(f"trial {names[0]}{more}: {msg}")
    return rows, msgs


def by_model(study, ests: list[dict | None]) -> list[dict]:
    """One row per base model of the grid: what it is (`origin`: its label alone may not say),
    its size, the largest training memory per GPU of each strategy against what that
    strategy's trials reserve, its trials and GPU-hours."""
    from memlab.components.models import origin

    rows: dict[str, dict] = {}
    for trial, est in zip(study.trials, ests):
        c = trial.config
        if model_label(c) not in rows:
            rows[model_label(c)] = {"model": model_label(c), "origin": origin(c.model),
                                    "params": None, "params_m": None, "trials": 0,
                                    "gpu_hours": 0.0, "fits": {}}
        row = rows[model_label(c)]
        row["trials"] += 1
        if est is None:
            continue
        s, res = c.train.strategy, c.reserved
        row["params"], row["params_m"] = est["params"], est["params_m"]
        row["gpu_hours"] += gpu_hours(c, est)
        cap, gen_cap = caps(c)
        if est["gen_mem_gib"] > row.get("gen", {"mem": -1})["mem"]:
            row["gen"] = {"mem": est["gen_mem_gib"], "cap": gen_cap, "workers": 1, "engine": None}
        old = row["fits"].get(s)
        if old is None or (est["train_mem_gib"] or 0) > (old["mem"] or 0):
            row["fits"][s] = {"mem": est["train_mem_gib"], "cap": cap, "workers": res.workers,
                              "engine": c.strategy.label(c)}
    return list(rows.values())
