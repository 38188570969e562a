"""Train stage: fine-tune the base model on the duplicated member stream, one of three ways.

- full: every weight trains, through a DeepSpeed engine (ZeRO stage from config; gloo on CPU,
  NCCL + bf16 on GPU; a torch AdamW is passed in so no DeepSpeed op needs compiling), or, for
  a trial on one GPU, in plain torch (train.full.engine: fp32 weights, bf16 autocast, fused
  AdamW).
- head: only the output head trains (untied from the input embedding first when tied).
- lora: peft adapters on the configured modules.

All three see the same sequences in the same order for the same number of steps: one setup per
strategy (`SETUPS`: what trains, its optimizer step, checkpoint and export) behind one training
loop (`train_here`). A sequence is the first `train.seq_len` tokens of a document as
`formats.encode` renders it (the attack uses the same tokens); with `train.loss_on: response`
the tokens before the response carry no loss (labels -100). Writes into its stage folder
`model/` (full weights, or the LoRA adapter), `metrics.json` and, last, the manifest. In a
sweep, `full` under DeepSpeed runs as a Ray Train TorchTrainer of `resources.full.workers`
workers, each taking its contiguous slice of every global batch. A step may be split into
micro-batches (train.micro_batch) whose gradients add up to the step's; the loop does not wait
for the GPU between steps (losses come to the host every FLUSH_S seconds). With
`train.checkpoint_every`, a resumable checkpoint (DeepSpeed's for full; trainable tensors +
optimizer for plain torch; RNG states per rank) is kept in `ckpt/`; a rerun continues from it
and removes it when done.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path

from memlab.components.data import read_dataset, training_stream
from memlab.components.formats import chat_layout, encode
from memlab.components.models import (
    READY,
    load_causal_lm,
    load_tokenizer,
    torch_dtype,
    torch_threads,
    untie_head,
)
from memlab.config.keys import content_key, resolved
from memlab.config.placement import selectors
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    StageOutput,
    claim_stage,
    manifest_digest,
    write_json_atomic,
    write_manifest,
)

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init_single_process_group(backend: str) -> None:
    """A one-process group for DeepSpeed when not launched by a distributed launcher."""
    import deepspeed
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    for var, val in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(var, val)
    deepspeed.init_distributed(dist_backend=backend, verbose=False)


def deepspeed_config(cfg: StudyConfig, world_size: int, bf16: bool) -> dict:
    t = cfg.train
    if t.batch_size % world_size:
        raise ValueError(f"train.batch_size={t.batch_size} is not divisible by "
                         f"{world_size} workers")
    per_rank = t.batch_size // world_size
    parts = micro_steps(cfg, world_size)
    return {
        "train_batch_size": t.batch_size,
        "train_micro_batch_size_per_gpu": per_rank // parts,
        "gradient_accumulation_steps": parts,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": t.full.zero_stage},
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def micro_steps(cfg: StudyConfig, world_size: int) -> int:
    """Forward/backward passes per optimizer step on each rank (train.micro_batch)."""
    per_rank, micro = cfg.train.batch_size // world_size, cfg.train.micro_batch
    return max(1, math.ceil(per_rank / micro)) if micro else 1


def _rank_rows(rows: list, rank: int, world: int) -> tuple[list, bool]:
    """This rank's contiguous slice of a global batch (sizes differ by at most one). A rank
    left without rows (a short last batch) reuses row 0 and is marked `empty` (loss x 0)."""
    lo, hi = rank * len(rows) // world, (rank + 1) * len(rows) // world
    return (rows[lo:hi], False) if hi > lo else (rows[:1], True)


def labels_of(ids, mask, starts: list[int], loss_on: str):
    """Labels of a right-padded batch: its tokens, -100 on padding and, with loss_on=response,
    before each row's response start. (The model predicts labels[j] from the tokens before
    j: the first response token is predicted from the last prompt token.)"""
    labels = ids.masked_fill(mask == 0, -100)
    if loss_on == "response":
        for j, s in enumerate(starts):
            labels[j, :s] = -100
    return labels


def _to(x, device: str):
    """A host tensor on the device; to a GPU through pinned memory, not waiting for the copy
    (it overlaps the kernels still queued)."""
    if device == "cpu":
        return x
    return x.pin_memory().to(device, non_blocking=True)


def micro_parts(ids, mask, labels, parts: int, empty: bool) -> list[tuple]:
    """A rank's batch split into `parts` micro-batches (contiguous rows) of (input_ids,
    attention_mask, labels, weight): weight = the part's share of the batch's loss tokens, so
    that the weighted sum of the parts' mean losses is the batch's mean loss (all 0 when the
    step's loss counts x 0). A part left without rows (a short last batch) repeats row 0 with
    weight 0, so every step has `parts` parts (DeepSpeed counts micro-steps to step)."""
    n = ids.shape[0]
    bounds = [(i * n // parts, (i + 1) * n // parts) for i in range(parts)]
    counts = [int((labels[lo:hi, 1:] != -100).sum()) for lo, hi in bounds]
    total = sum(counts)
    out = []
    for (lo, hi), c in zip(bounds, counts):
        if hi <= lo:
            lo, hi, c = 0, 1, 0
        out.append((ids[lo:hi], mask[lo:hi], labels[lo:hi],
                    0.0 if empty or not total else c / total))
    return out


def _right_pad(seqs: list[list[int]], pad_id: int):
    """input_ids (pad_id after each sequence) and attention_mask of a batch, padded to its
    longest sequence: what the tokenizer's pad() gives, without its per-call overhead."""
    import torch

    ids = torch.full((len(seqs), max(map(len, seqs))), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, seq in enumerate(seqs):
        ids[j, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[j, :len(seq)] = 1
    return ids, mask


def _batches(stream: list[dict], tok, cfg: StudyConfig, start: int = 0, rank: int = 0,
             world: int = 1):
    """Yield (input_ids, attention_mask, labels, empty) per optimizer step from step `start`:
    this rank's part of the global batch, right-padded. Every document this rank trains on
    from `start` is tokenized once, up front, in batched calls (one call per document cost
    more host time per step than a 135M model's step on a GPU).
    `empty`: a rank left without rows, or rows without one token that carries loss (their
    responses start beyond seq_len): the step's loss counts x 0."""
    t = cfg.train
    steps_per_epoch = math.ceil(len(stream) / t.batch_size)
    plan = []  # (rows, empty) of every step from `start`
    for step in range(start, count_steps(len(stream), cfg)):
        s = step % steps_per_epoch
        plan.append(_rank_rows(stream[s * t.batch_size:(s + 1) * t.batch_size], rank, world))
    cache: dict[str, tuple[list[int], int]] = {}
    todo = list({r["doc_id"]: r for rows, _ in plan for r in rows}.values())
    for k in range(0, len(todo), TOKENIZE_CHUNK):
        chunk = todo[k:k + TOKENIZE_CHUNK]
        for r, (ids, first) in zip(chunk, encode(tok, chunk, t.seq_len)):
            cache[r["doc_id"]] = (ids[:t.seq_len], first)
    for rows, empty in plan:
        seqs = [cache[r["doc_id"]] for r in rows]
        ids, mask = _right_pad([ids for ids, _ in seqs], tok.pad_token_id)
        labels = labels_of(ids, mask, [s for _, s in seqs], t.loss_on)
        if not (labels[:, 1:] != -100).any():  # no loss token: a finite loss, x 0
            empty, labels = True, ids.masked_fill(mask == 0, -100)
        yield ids, mask, labels, empty


TOKENIZE_CHUNK = 4096  # documents per batched tokenizer call


def _format_record(tok, rows: list[dict], cfg: StudyConfig) -> dict:
    """What the manifest says of the data format: for chat data how it was rendered; for
    instruction / chat data how many members' responses start beyond seq_len (with
    loss_on=response nothing of them is trained on)."""
    if not any(r["response_start"] or r["messages"] for r in rows):
        return {}
    out = {}
    if any(r["messages"] for r in rows):  # (formats.encode logs a plain layout)
        out["chat_layout"] = chat_layout(tok)
    members = [r for r in rows if r["split"] == "member"]
    starts = [s for _, s in encode(tok, members, 1)]
    out["members_response_beyond_seq_len"] = sum(s >= cfg.train.seq_len for s in starts)
    if out["members_response_beyond_seq_len"]:
        log.warning("train: %d of %d members' responses start beyond train.seq_len=%d tokens",
                    out["members_response_beyond_seq_len"], len(members), cfg.train.seq_len)
    return out


def _warmup(optim, steps: int):
    """Linear warm-up over `steps` optimizer steps, then constant (same for all strategies)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / steps) if steps else 1.0)


def count_steps(stream_len: int, cfg: StudyConfig) -> int:
    steps = math.ceil(stream_len / cfg.train.batch_size) * cfg.train.epochs
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


def train_upstream(data_dir: Path, base_model: str) -> str:
    """What a finished train stage was built from: the dataset's manifest and the base model's
    identity (a prepared model's identity file; else its path or hub id)."""
    ready = Path(base_model) / READY
    return content_key({"data": manifest_digest(data_dir),
                        "base_model": ready.read_text() if ready.is_file() else base_model})


def run_train(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
              on_loss=None, ray_workers: bool = False) -> StageOutput:
    """Fine-tune and save, unless `out_dir` holds this training already (another process
    computing it is waited for).

    `on_loss(step, loss)` is called for every `train.log_every`-th optimizer step (rank 0),
    in bursts as the losses reach the host (at most FLUSH_S seconds late). `ray_workers`: full
    fine-tuning under DeepSpeed as a Ray Train fit over `resources.full.workers` workers (a
    sweep does this); otherwise every strategy trains in this process (full in a one-process
    DeepSpeed group, or in plain torch: train.full.engine).
    """
    upstream = train_upstream(data_dir, base_model)
    with claim_stage(out_dir, upstream) as stage:
        if stage.done is None:
            run = _fit_ray_train if ray_workers else train_here
            run(cfg, base_model, Path(data_dir), Path(out_dir), upstream, on_loss)
        return stage.output()


def _fit_ray_train(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
                   upstream: str, on_loss) -> None:
    """Full fine-tuning as a Ray Train TorchTrainer fitted from inside the Tune trial:
    `resources.full.workers` workers of `resources.full.cpu/gpu` each, all on one node with
    `resources.full.labels` (`memlab plan` / `run` refuse a trial no such node can hold), one
    DeepSpeed ZeRO group across them (gloo on CPU, NCCL on GPU).
    A failed worker group is restarted up to sweep.max_failures times and continues from the
    last checkpoint (train.checkpoint_every)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if cfg.train.strategy != "full":
        raise ValueError("only full fine-tuning runs across Ray Train workers")
    res = cfg.resources.full
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg, "base_model": base_model, "data_dir": data_dir,
                           "out_dir": out_dir, "upstream": upstream, "on_loss": on_loss},
        torch_config=TorchConfig(backend="nccl" if res.gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=res.workers, use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu else {})},
            label_selector=selectors(cfg)["trial"] or None,
            placement_strategy="STRICT_PACK"),  # one ZeRO group on one node (NVLink)
        run_config=RunConfig(name="train", storage_path=str(out_dir / RAY_STORAGE),
                             failure_config=FailureConfig(max_failures=cfg.sweep.max_failures)),
    )
    trainer.fit()
    shutil.rmtree(out_dir / RAY_STORAGE, ignore_errors=True)


def _worker_loop(c: dict) -> None:
    """One Ray Train worker: the torch process group is already set up by Ray Train."""
    import ray
    import ray.train
    import torch

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(ctx.get_world_size()),
                      LOCAL_RANK=str(ctx.get_local_rank()))
    logging.basicConfig(level=os.environ.get("MEMLAB_LOG", "INFO"),
                        format=f"%(levelname)s rank{rank} %(name)s: %(message)s")
    cfg: StudyConfig = c["cfg"]
    torch.set_num_threads(torch_threads(cfg))
    device = "cpu"
    if torch.cuda.is_available():
        from ray.train.torch import get_device

        torch.cuda.set_device(get_device())
        device = "cuda"
    nodes: list = [None] * ctx.get_world_size()
    torch.distributed.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    train_here(cfg, c["base_model"], c["data_dir"], c["out_dir"], c["upstream"],
               c["on_loss"] if rank == 0 else None, device, {"worker_nodes": nodes})


RAY_STORAGE = "_ray"  # a Ray Train fit's own state, removed once it finished


CKPT = "ckpt"


def _save_rng(folder: Path, rank: int) -> None:
    import torch

    state = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    tmp = folder / f".rng_rank{rank}.pt"
    torch.save(state, tmp)
    os.replace(tmp, folder / f"rng_rank{rank}.pt")


def _load_rng(folder: Path, rank: int) -> None:
    import torch

    f = folder / f"rng_rank{rank}.pt"
    if f.is_file():
        state = torch.load(f, weights_only=False)
        torch.random.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])


def _save_local(ckpt: Path, model, optim, sched, step: int, losses: list[float]) -> None:
    """head / LoRA: the trainable tensors, optimizer and schedule, atomically."""
    import torch

    ckpt.mkdir(parents=True, exist_ok=True)
    state = {"trainable": {n: p.detach().cpu() for n, p in model.named_parameters()
                           if p.requires_grad},
             "optim": optim.state_dict(), "sched": sched.state_dict(), "step": step,
             "losses": losses}
    torch.save(state, ckpt / ".state.pt")
    os.replace(ckpt / ".state.pt", ckpt / "state.pt")
    _save_rng(ckpt, 0)


def _load_local(ckpt: Path, model, optim, sched) -> tuple[int, list[float]]:
    import torch

    f = ckpt / "state.pt"
    if not f.is_file():
        return 0, []
    state = torch.load(f, weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, v in state["trainable"].items():
            params[n].copy_(v)
    optim.load_state_dict(state["optim"])
    sched.load_state_dict(state["sched"])
    _load_rng(ckpt, 0)
    return state["step"], state["losses"]


def _save_deepspeed(ckpt: Path, engine, step: int, losses: list[float]) -> None:
    """Every rank writes its ZeRO partitions; `latest` names the new tag only once all did;
    then rank 0 removes older tags (optimizer states are 12+ bytes per parameter)."""
    import torch.distributed as dist

    tag = f"step{step}"
    engine.save_checkpoint(str(ckpt), tag=tag, client_state={"step": step, "losses": losses})
    _save_rng(ckpt, dist.get_rank())
    dist.barrier()
    if dist.get_rank() == 0:
        for old in ckpt.glob("step*"):
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)


def _load_deepspeed(ckpt: Path, engine) -> tuple[int, list[float]]:
    import torch.distributed as dist

    if not (ckpt / "latest").is_file():
        return 0, []
    _, client = engine.load_checkpoint(str(ckpt))
    _load_rng(ckpt, dist.get_rank())
    return client["step"], client["losses"]


def _part_loss(loss, w: float, empty: bool, parts: int):
    """A part's term of the step's loss: its mean loss x its weight (0 for a part without loss
    tokens, whose mean is NaN); for a step whose loss counts x 0, the parts' plain mean (finite:
    such steps carry made-up labels), which is only shown as NaN or left out of the mean."""
    if empty:
        return loss.detach() / parts
    return loss.detach() * w if w else 0.0


WARMUP_STEPS = 2  # not timed: allocator, compilation, communicator set-up
FLUSH_S = 2.0  # losses come to the host (one sync) at most this often, and at checkpoints



def _sorted_adapter_config(model_dir: Path) -> None:
    """peft writes a LoRA's target modules from a set, in an order that changes from process to
    process (string hashing): sorted, the same training gives the same bytes (a rerun that
    repairs a damaged checkpoint then matches the record)."""
    path = Path(model_dir) / "adapter_config.json"
    if path.is_file():
        conf = json.loads(path.read_text())
        if isinstance(conf.get("target_modules"), list):
            conf["target_modules"] = sorted(conf["target_modules"])
            path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")


class TorchSetup:
    """head / LoRA, and full fine-tuning on one GPU: plain PyTorch trains the model's
    trainable parameters (fp32) with AdamW (fused on GPU), autocast to the trial's
    precision, gradient clipping, warm-up; the model compiled where train.compile says."""

    rank, world = 0, 1

    def __init__(self, model, cfg: StudyConfig, lr: float, saved: str, device: str, dtype,
                 notes: list[str] | None = None, record: dict | None = None):
        import torch

        self.model = self.module = model.to(device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in self.params)
        self.total = sum(p.numel() for p in model.parameters())
        self.optim = torch.optim.AdamW(self.params, lr=lr, weight_decay=cfg.train.weight_decay,
                                       fused=device == "cuda")
        self.sched = _warmup(self.optim, cfg.train.warmup_steps)
        self.lr, self.saved, self.notes = lr, saved, notes or []
        self.record = record or {}  # what the manifest says of this strategy's setup
        self.device, self.dtype, self.engine = device, dtype, "torch"
        self.forward = self.model
        if device == "cuda" and resolved(cfg)["train_compiled"] == "yes":
            self.forward = torch.compile(self.model)
            self.engine += "+compile"

    def step(self, parts: list[tuple], empty: bool):
        """One optimizer step over the micro-batches of `micro_parts`; returns the step's
        loss as a device tensor (nothing here waits for the GPU)."""
        import torch

        total = 0.0
        for ids, mask, labels, w in parts:
            with torch.autocast(self.device, dtype=self.dtype,
                                enabled=self.dtype != torch.float32):
                loss = self.forward(input_ids=ids, attention_mask=mask, labels=labels).loss
            (loss * w).backward()  # w = 0: a part without one loss token
            total = total + _part_loss(loss, w, empty, len(parts))
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad(set_to_none=True)
        return total

    def save_ckpt(self, ckpt: Path, step: int, losses: list[float]) -> None:
        _save_local(ckpt, self.model, self.optim, self.sched, step, losses)

    def load_ckpt(self, ckpt: Path) -> tuple[int, list[float]]:
        return _load_local(ckpt, self.model, self.optim, self.sched)

    def export(self, model_dir: Path) -> None:
        self.model.save_pretrained(model_dir)
        _sorted_adapter_config(model_dir)

    def sync(self) -> None:
        pass


class DeepSpeedSetup:
    """full: every weight trains through a DeepSpeed engine (ZeRO stage from config; a torch
    AdamW passed in, so no DeepSpeed op needs compiling), one rank of a process group."""

    saved = "full_model"

    def __init__(self, model, cfg: StudyConfig, device: str, dtype):
        import deepspeed
        import deepspeed.ops
        import torch
        import torch.distributed as dist

        t = cfg.train
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # no op build on CPU
        _init_single_process_group("nccl" if device == "cuda" else "gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=t.full.lr, weight_decay=t.weight_decay)
        self.model, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optim, lr_scheduler=lambda opt: _warmup(opt, t.warmup_steps),
            config=deepspeed_config(cfg, self.world, dtype == torch.bfloat16))
        self.module = self.model.module
        numel = lambda p: getattr(p, "ds_numel", p.numel())  # noqa: E731  (ZeRO-3 partitions)
        self.trainable = sum(numel(p) for p in self.module.parameters() if p.requires_grad)
        self.total = sum(numel(p) for p in self.module.parameters())
        self.zero_stage, self.lr, self.notes, self.record = t.full.zero_stage, t.full.lr, [], {}
        self.engine = f"deepspeed-zero{t.full.zero_stage}"

    def step(self, parts: list[tuple], empty: bool):
        """The engine steps the optimizer after `gradient_accumulation_steps` micro-steps (the
        parts of one step) and divides each part's loss by their number: x len(parts)."""
        total = 0.0
        for ids, mask, labels, w in parts:
            loss = self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
            self.model.backward(loss * (w * len(parts)))  # w = 0: no loss tokens in the part
            self.model.step()
            total = total + _part_loss(loss, w, empty, len(parts))
        return total

    def save_ckpt(self, ckpt: Path, step: int, losses: list[float]) -> None:
        _save_deepspeed(ckpt, self.model, step, losses)

    def load_ckpt(self, ckpt: Path) -> tuple[int, list[float]]:
        return _load_deepspeed(ckpt, self.model)

    def export(self, model_dir: Path) -> None:
        if self.zero_stage == 3:  # gather the partitions on every rank, rank 0 writes
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.module.parameters()),
                                                   modifier_rank=None):
                if self.rank == 0:
                    self.module.save_pretrained(model_dir)
        elif self.rank == 0:
            self.module.save_pretrained(model_dir)

    def sync(self) -> None:
        import torch.distributed as dist

        dist.barrier()  # a one-process group stays up: DeepSpeed caches its groups


def setup_full(cfg: StudyConfig, model, device: str, dtype) -> DeepSpeedSetup | TorchSetup:
    """DeepSpeed ZeRO across workers; plain torch for a trial on one GPU (train.full.engine)."""
    if resolved(cfg)["train_engine"] == "torch":
        return TorchSetup(model, cfg, cfg.train.full.lr, "full_model", device, dtype)
    return DeepSpeedSetup(model, cfg, device, dtype)


def setup_head(cfg: StudyConfig, model, device: str, dtype) -> TorchSetup:
    notes = []
    untied = untie_head(model)
    if untied:
        notes.append("lm_head was tied to the input embedding: untied (copied) before "
                     "training, so only the head trains and the embedding stays frozen")
        log.warning("head-only: %s", notes[-1])
    for p in model.parameters():
        p.requires_grad_(False)
    model.get_output_embeddings().weight.requires_grad_(True)
    return TorchSetup(model, cfg, cfg.train.head.lr, "full_model", device, dtype, notes,
                      {"head_untied": untied})


# The attention projections LoRA adapts when train.lora.target_modules is empty, by model type
# (names match as peft does: the module's name or its last dotted parts). GPT-2's `c_proj`
# exists in attention and MLP: `attn.c_proj` is the attention's.
_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
LORA_TARGETS = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2"), _QKVO),
    "gpt2": ["attn.c_attn", "attn.c_proj"],
    "gpt_neox": ["query_key_value", "attention.dense"],
}


def lora_targets(cfg: StudyConfig, model_type: str) -> list[str] | None:
    """The configured targets, else the architecture's attention projections, else None
    (peft's own default for the architecture)."""
    return list(cfg.train.lora.target_modules) or LORA_TARGETS.get(model_type)


def setup_lora(cfg: StudyConfig, model, device: str, dtype) -> TorchSetup:
    from peft import LoraConfig, get_peft_model

    lo = cfg.train.lora
    model = get_peft_model(model, LoraConfig(
        r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, bias=lo.bias,
        target_modules=lora_targets(cfg, model.config.model_type),
        modules_to_save=list(lo.modules_to_save) or None, task_type="CAUSAL_LM"))
    targets = model.peft_config["default"].target_modules
    return TorchSetup(model, cfg, lo.lr, "lora_adapter", device, dtype,
                      record={"lora_targets": sorted(targets) if not isinstance(targets, str)
                              else [targets]})


SETUPS = {"full": setup_full, "head": setup_head, "lora": setup_lora}


def train_here(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
               upstream: str, on_loss=None, device: str | None = None,
               record: dict | None = None) -> None:
    """The training loop of every strategy, in this process (one rank of `full`); rank 0
    writes the model, metrics.json and, last, the manifest (with `record` added)."""
    import torch
    import torch.distributed as dist

    from memlab.io.progress import Progress

    t = cfg.train
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype(t.precision, device)
    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(base_model)
    model = load_causal_lm(base_model, torch.float32)  # fp32 master weights; bf16 via DS/autocast
    rows = read_dataset(data_dir)
    stream = training_stream(rows, cfg.seed)
    if not stream:
        raise ValueError("training stream is empty: no members with dup_count > 0")
    fmt = _format_record(tok, rows, cfg)
    steps = count_steps(len(stream), cfg)
    ckpt = out_dir / CKPT
    setup = SETUPS[t.strategy](cfg, model, device, dtype)
    first, losses = setup.load_ckpt(ckpt)
    if first:
        log.info("train: resuming from the checkpoint of step %d in %s", first, ckpt)
    setup.module.train()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    bar = Progress(steps, f"train {t.strategy}", unit="step")
    bar.update(first)
    parts = micro_steps(cfg, setup.world)
    cuda = device == "cuda"
    pending: list = []  # (step, loss on the device): no per-step wait for the GPU
    timed = {"all": 0.0, "tokens": 0.0, "t0": None}  # tokens (of the steps after the warm-up)

    def flush() -> None:
        """Bring the pending losses to the host (one sync), log and show them."""
        if not pending:
            return
        values = torch.stack([v for _, v in pending]).tolist()
        for (step, _), value in zip(pending, values):
            losses.append(value)
            if on_loss is not None and step % t.log_every == 0:
                on_loss(step, value)
        bar.update(len(pending), postfix=f"loss {losses[-1]:.3f}")
        pending.clear()

    last_flush = time.perf_counter()
    warm = min(WARMUP_STEPS, steps - first)  # steps not timed (when there are more)
    batches = _batches(stream, tok, cfg, first, setup.rank, setup.world)
    for step, (ids, mask, labels, empty) in enumerate(batches, start=first):
        if step >= steps:
            break
        ntok = float(mask.sum()) * (not empty)
        nopad = cuda and bool(mask.all())  # causal attention without a mask: SDPA's flash path
        work = [(_to(i, device), None if nopad else _to(m, device), _to(lab, device), w)
                for i, m, lab, w in micro_parts(ids, mask, labels, parts, empty)]
        value = setup.step(work, empty).float()
        if setup.world > 1:  # the loss of the global batch: mean over the ranks that had rows
            had = torch.ones_like(value) * (not empty)
            both = torch.stack([value * had, had, torch.full_like(value, ntok)])
            dist.all_reduce(both)
            value, ntok = both[0] / both[1], both[2]  # (device tensors, read at a flush)
        elif empty:  # no token carried loss (loss_on=response): the step has no loss
            value = torch.full_like(value, float("nan"))
        pending.append((step, value))
        timed["all"] = timed["all"] + ntok
        if timed["t0"] is not None:
            timed["tokens"] = timed["tokens"] + ntok
        done = step + 1 - first
        ckpt_now = t.checkpoint_every and (step + 1) % t.checkpoint_every == 0 \
            and step + 1 < steps
        if done == warm or ckpt_now or time.perf_counter() - last_flush > FLUSH_S:
            flush()
            last_flush = time.perf_counter()
            if done == warm and done < steps - first:
                timed["t0"] = last_flush
        if ckpt_now:
            setup.save_ckpt(ckpt, step + 1, losses)
    flush()
    if cuda:
        torch.cuda.synchronize()
    train_time = time.time() - start
    if timed["t0"] is not None:  # tokens per second after the warm-up, else over all steps
        rate = float(timed["tokens"]) / max(time.perf_counter() - timed["t0"], 1e-9)
    else:
        rate = float(timed["all"]) / max(train_time, 1e-9)
    setup.export(out_dir / "model")

    metrics = {
        "trainable_params": setup.trainable,
        "total_params": setup.total,
        "trainable_frac": setup.trainable / setup.total,
        "train_steps": len(losses),
        "train_sequences": len(losses) * t.batch_size,
        "train_time_s": train_time,
        "train_tokens_per_s": rate,
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "lr": setup.lr,
    }
    if device == "cuda":  # what the plan's memory estimate (and gpu_share=memory) is held to
        metrics["gpu_peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if t.loss_on == "response":
        metrics["steps_without_loss_tokens"] = sum(math.isnan(x) for x in losses)
        if metrics["steps_without_loss_tokens"]:
            log.warning("train: %d step(s) had no token that carries loss (their responses "
                        "start beyond train.seq_len=%d)", metrics["steps_without_loss_tokens"],
                        t.seq_len)
    if setup.rank == 0:
        tok.save_pretrained(out_dir / "model")
        write_json_atomic({"metrics": metrics, "losses": losses, "notes": setup.notes},
                          out_dir / "metrics.json")
        write_manifest(out_dir, upstream=upstream, outputs=["model", "metrics.json"],
                       volatile=("metrics.json",),
                       saved=setup.saved, base_model=base_model, strategy=t.strategy,
                       engine=setup.engine, workers=setup.world,
                       vocab_size=setup.module.config.vocab_size, device=device,
                       dtype=str(dtype).removeprefix("torch."), resumed_from_step=first,
                       notes=setup.notes, **setup.record, **fmt, **metrics, **(record or {}))
        shutil.rmtree(ckpt, ignore_errors=True)  # the finished stage no longer needs it
    setup.sync()
