"""How a model trains, whatever its strategy: the `Setup` a training loop drives
(memlab/stages/train.py), in plain torch (`TorchSetup`) or through a DeepSpeed ZeRO engine
(`DeepSpeedSetup`): one optimizer step over a step's micro-batches, a resumable checkpoint
(trainable tensors + optimizer for plain torch, DeepSpeed's own for ZeRO; RNG states per
rank), the trained model's export. `make_setup` puts a strategy's prepared model (what trains:
memlab/strategies/) behind the engine the trial resolved to, made private by Opacus with
train.dp (memlab/components/privacy.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
from pathlib import Path
from typing import Protocol

from memlab.components.graphs import GraphedStep, graphable, tensor_lr
from memlab.config.keys import resolved
from memlab.config.schema import StudyConfig
from memlab.io.paths import runs_root


class Setup(Protocol):
    """What the training loop drives. `rank` / `world`: this process in its process group
    (1 rank outside DeepSpeed); `module`: the model being trained; `trainable` / `total`:
    parameter counts; `engine`: what trains it, as the manifest says; `notes` / `record` /
    `saved`: what the strategy's setup did (its Prepared) and how it saves."""

    rank: int
    world: int
    module: object
    trainable: int
    total: int
    lr: float
    engine: str
    notes: list[str]
    record: dict
    saved: str

    def step(self, parts: list[tuple], empty: bool): ...  # the step's loss (device tensor)

    def save_ckpt(self, ckpt: Path, step: int, losses: list[float]) -> None: ...

    def load_ckpt(self, ckpt: Path) -> tuple[int, list[float]]: ...  # (0, []): none

    def export(self, model_dir: Path) -> None: ...

    def sync(self) -> None: ...

    def figures(self) -> dict: ...  # what it adds to the training's metrics (DP: its privacy)


def make_setup(cfg: StudyConfig, model, device: str, dtype, steps: int) -> Setup:
    """The trial's strategy prepares the model (what trains); the engine it resolved to
    trains it for `steps` optimizer steps (what a decaying train.lr_schedule decays over):
    DeepSpeed ZeRO (a strategy trained that way has a `zero_stage` setting), else plain torch
    (which train.dp makes private: memlab/components/privacy.py `PrivateSetup`)."""
    strategy = cfg.strategy
    prepared = strategy.prepare(model, cfg)
    if resolved(cfg)["train_engine"] == "deepspeed":
        setup = DeepSpeedSetup(prepared.model, cfg, strategy.lr(cfg),
                               strategy.section(cfg).zero_stage, device, dtype, steps)
    else:
        setup = TorchSetup(prepared.model, cfg, strategy.lr(cfg), device, dtype, steps)
    setup.notes, setup.record, setup.saved = prepared.notes, prepared.record, strategy.saved
    return setup


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


def deepspeed_config(cfg: StudyConfig, world_size: int, bf16: bool, zero_stage: int) -> dict:
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
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def micro_steps(cfg: StudyConfig, world_size: int, rows: int | None = None) -> int:
    """Forward/backward passes per optimizer step on each rank (train.micro_batch): of its
    share of train.batch_size, or of the step's own `rows` (a DP step's Poisson-sampled batch,
    whose size varies)."""
    micro = cfg.train.micro_batch
    per_rank = cfg.train.batch_size // world_size if rows is None else rows
    return max(1, math.ceil(per_rank / micro)) if micro else 1


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


def lr_factor(step: int, warmup: int, schedule: str, steps: int) -> float:
    """The learning rate's factor for optimizer step `step` (from 0) of a training of `steps`
    steps: linear warm-up over `warmup` steps, then train.lr_schedule (constant, or a linear /
    cosine decay to 0 at the last step: the only part that depends on `steps`)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    left = max(0.0, 1.0 - (step - warmup) / max(1, steps - warmup))
    return left if schedule == "linear" else 0.5 * (1.0 - math.cos(math.pi * left))


def _schedule(optim, cfg: StudyConfig, steps: int):
    """The learning-rate schedule (`lr_factor`, the same for all strategies)."""
    import torch

    t = cfg.train
    return torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: lr_factor(s, t.warmup_steps, t.lr_schedule, steps))


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


def compile_cache(cfg: StudyConfig) -> None:
    """torch.compile's caches (inductor's FX graphs and kernels, Triton's binaries) under the
    runs root, in <runs_root>/cache/: a model shape compiled once is reused by every later
    trial and sweep of that root, on any node that mounts it (their default, under /tmp, is
    one machine's). A cache folder set in the environment is kept."""
    root = runs_root(cfg).resolve() / "cache"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))


class TorchSetup:
    """Plain PyTorch (every strategy but full fine-tuning across GPUs): the model's trainable
    parameters (fp32) with AdamW (fused on GPU), autocast to the trial's precision, gradient
    clipping, the schedule; the model compiled where train.compile says, each step one CUDA
    graph where train.cuda_graphs says (memlab/components/graphs.py)."""

    rank, world = 0, 1
    saved, notes, record = "full_model", [], {}  # (make_setup: the strategy's)

    def __init__(self, model, cfg: StudyConfig, lr: float, device: str, dtype, steps: int):
        import torch

        run = resolved(cfg)
        graphed = device == "cuda" and run["train_graphed"] == "yes"
        self.model = self.module = model.to(device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in self.params)
        self.total = sum(p.numel() for p in model.parameters())
        self.optim = torch.optim.AdamW(self.params, lr=lr, weight_decay=cfg.train.weight_decay,
                                       fused=device == "cuda", capturable=graphed)
        if graphed:
            tensor_lr(self.optim, device)
        self.sched = _schedule(self.optim, cfg, steps)
        self.lr = lr
        self.device, self.dtype, self.engine = device, dtype, "torch"
        self.forward = self.model
        if device == "cuda" and run["train_compiled"] == "yes":
            compile_cache(cfg)
            self.forward = torch.compile(self.model)
            self.engine += "+compile"
        self.graph = None
        if graphed and graphable(model, cfg.train.seq_len):
            parts = micro_steps(cfg, 1)
            self.graph = GraphedStep(self, parts, math.ceil(cfg.train.batch_size / parts),
                                     cfg.train.seq_len)

    def step(self, parts: list[tuple], empty: bool):
        """One optimizer step over the micro-batches of `micro_parts`; returns the step's
        loss as a device tensor (nothing here waits for the GPU)."""
        import torch

        if self.graph is not None:
            out = self.graph(parts, empty)
            self.sched.step()
            return out
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
        out = _load_local(ckpt, self.model, self.optim, self.sched)
        if self.graph is not None:
            tensor_lr(self.optim, self.device)
        return out

    def export(self, model_dir: Path) -> None:
        self.model.save_pretrained(model_dir)
        _sorted_adapter_config(model_dir)

    def sync(self) -> None:
        pass

    def figures(self) -> dict:
        return {}


class DeepSpeedSetup:
    """The model's trainable parameters through a DeepSpeed engine (ZeRO `zero_stage`; a torch
    AdamW passed in, so no DeepSpeed op needs compiling), one rank of a process group."""

    saved, notes, record = "full_model", [], {}  # (make_setup: the strategy's)

    def __init__(self, model, cfg: StudyConfig, lr: float, zero_stage: int, device: str,
                 dtype, steps: int):
        import deepspeed
        import deepspeed.ops
        import torch
        import torch.distributed as dist

        t = cfg.train
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # no op build on CPU
        _init_single_process_group("nccl" if device == "cuda" else "gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=lr, weight_decay=t.weight_decay)
        self.model, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optim, lr_scheduler=lambda opt: _schedule(opt, cfg, steps),
            config=deepspeed_config(cfg, self.world, dtype == torch.bfloat16, zero_stage))
        self.module = self.model.module
        numel = lambda p: getattr(p, "ds_numel", p.numel())  # noqa: E731  (ZeRO-3 partitions)
        self.trainable = sum(numel(p) for p in self.module.parameters() if p.requires_grad)
        self.total = sum(numel(p) for p in self.module.parameters())
        self.zero_stage, self.lr = zero_stage, lr
        self.engine = f"deepspeed-zero{zero_stage}"

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

    def figures(self) -> dict:
        return {}


