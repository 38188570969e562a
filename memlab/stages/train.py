"""Train stage: fine-tune the base model on the duplicated member stream, with the trial's
strategy (memlab/strategies/: full, head-only, LoRA, or a study's own).

Every strategy sees the same sequences in the same order for the same number of steps: the
strategy prepares the model (what trains), the engine it resolved to trains it (plain torch,
or DeepSpeed ZeRO: memlab/components/training.py), and one loop (`train_here`) drives either.
With train.dp the batches are Poisson-sampled from the same stream, for the same steps, and
Opacus makes the plain-torch step private (memlab/components/privacy.py).
A sequence is the first `train.seq_len` tokens of a document as `formats.encode` renders it
(the attack uses the same tokens); with `train.loss_on: response` the tokens before the
response carry no loss (labels -100). The stage's folder gets `model/` (full weights, or the
adapter), `metrics.json` (the loss curve; what the manifest records) and, last, the manifest
(the runner writes it). In a sweep, DeepSpeed training runs as a Ray Train TorchTrainer of
`resources.<strategy>.workers` workers, each taking its contiguous slice of every global batch.
A step may be split into micro-batches (train.micro_batch) whose gradients add up to the
step's; the loop does not wait for the GPU between steps (losses come to the host every FLUSH_S
seconds). With `train.checkpoint_every`, a resumable checkpoint is kept in `ckpt/`; a rerun
continues from it, and it is removed once the stage is done.

Evaluation points (train.eval_at / eval_every; memlab/config/chain.py says how they are
evaluated): after each point's optimizer step the loop exports the model as the final export
does (the strategy's `saved`: an adapter, or full weights) into `at/<step>/model`, with a
manifest written last (`saved`, `base_model`: what generation loads; its digest is what the
point's generate stage is built from). Exporting reads the weights only: the training, and its
final model, are the same with or without points. A point whose export is on disk is not
exported again. The points are in no key, so a rerun with new points finds the stage done:
the runner then asks `reexport` for the exports it lacks, which trains again from the start,
with the same seed, data order and schedule, up to the last point it needs, exports only
those and writes nothing else (the final model, its manifest and every export on disk are
kept; on CPU in float32 the weights come back bit for bit, on a GPU they may differ in the
last bits, and the point's stages are keyed on the export's own manifest). The same happens
for an export train.keep_checkpoints dropped once its point was scored, should a changed
attack setting need to generate from it again.

Extending a training (more train.epochs, where the schedule allows it): a training about to
start from step 0 continues the final state of a finished shorter one with otherwise the same
key, and a finished one keeps its final state (train.extendable): memlab/components/extend.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

from memlab.components.data import read_dataset, training_stream
from memlab.components.extend import (
    EXTENDED,
    FINAL_STATE,
    Extension,
    continue_from,
    keep_final_state,
    keeps_final_state,
    reuse_points,
    shorter_training,
)
from memlab.components.formats import chat_layout, encode
from memlab.components.models import (
    load_causal_lm,
    load_tokenizer,
    model_identity,
    torch_dtype,
    torch_threads,
)
from memlab.components.privacy import PrivateSetup, poisson_batches
from memlab.components.training import CKPT, Setup, make_setup, micro_parts, micro_steps
from memlab.config.keys import count_steps, eval_steps
from memlab.config.placement import selectors
from memlab.config.schema import StudyConfig
from memlab.io.paths import checkpoint_dir
from memlab.io.shards import outputs_present, write_json_atomic, write_manifest
from memlab.stages.work import TrialContext, Work, upstream_of

log = logging.getLogger(__name__)

RAY_STORAGE = "_ray"  # a Ray Train fit's own state, removed once it finished
WARMUP_STEPS = 2  # not timed: allocator, compilation, communicator set-up
FLUSH_S = 2.0  # losses come to the host (one sync) at most this often, and at checkpoints
TOKENIZE_CHUNK = 4096  # documents per batched tokenizer call


def _fit(ctx: TrialContext):
    """Where the trial trains: in this process, or across Ray Train workers for DeepSpeed in
    a sweep."""
    from memlab.config.keys import resolved

    return _fit_ray_train if ctx.ray_workers and \
        resolved(ctx.cfg)["train_engine"] == "deepspeed" else train_here


def _compute(ctx: TrialContext, folder: Path) -> dict:
    """Fine-tune into `folder` (continuing a shorter training where one can be: extend.py);
    the manifest's fields, as rank 0 recorded them in metrics.json."""
    _fit(ctx)(ctx.cfg, ctx.base_model, ctx.dir("data"), folder, ctx.on_loss,
              extend=shorter_training(ctx.cfg, upstream_of(ctx, "train"), folder))
    return json.loads((folder / "metrics.json").read_text())["manifest"]


def _reexport(ctx: TrialContext, folder: Path, steps: list[int]) -> None:
    """The exports of evaluation points `steps` that the finished stage in `folder` lacks: the
    same training again from the start, up to the last of them (see the module's doc)."""
    log.info("train %s: the model at step(s) %s is not on disk (evaluation points added "
             "since it trained, or dropped by train.keep_checkpoints): training again from "
             "the start, same seed, data order and schedule, up to step %d to export it; the "
             "final model and the exports on disk are kept", folder.name,
             ", ".join(map(str, steps)), max(steps))
    _fit(ctx)(ctx.cfg, ctx.base_model, ctx.dir("data"), folder, None, redo=steps)
    shutil.rmtree(folder / RAY_STORAGE, ignore_errors=True)  # (Ray Train's, as WORK's scratch)


WORK = Work(
    compute=_compute,
    reexport=_reexport,
    # the base model's identity (a prepared model's identity file; else its path or hub id)
    built_from=lambda ctx: {"base_model": model_identity(ctx.base_model)},
    scratch=(CKPT, RAY_STORAGE),
    volatile=("metrics.json",),
)


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


def _step_rows(stream: list[dict], cfg: StudyConfig, start: int, rank: int,
               world: int) -> list[tuple[list, bool]]:
    """(rows, empty) of every step from `start`: this rank's slice of the stream's next
    train.batch_size sequences; with train.dp, the step's Poisson-sampled sequences
    (memlab/components/privacy.py), a draw of none being row 0 with its loss x 0."""
    t, steps = cfg.train, count_steps(len(stream), cfg)
    if t.dp.on:
        drawn = poisson_batches(len(stream), t.batch_size, cfg.seed, steps)[start:]
        return [([stream[i] for i in idx], False) if idx else (stream[:1], True)
                for idx in drawn]
    steps_per_epoch = math.ceil(len(stream) / t.batch_size)
    return [_rank_rows(stream[s * t.batch_size:(s + 1) * t.batch_size], rank, world)
            for s in (step % steps_per_epoch for step in range(start, steps))]


def _batches(stream: list[dict], tok, cfg: StudyConfig, start: int = 0, rank: int = 0,
             world: int = 1):
    """Yield (input_ids, attention_mask, labels, empty) per optimizer step from step `start`:
    this rank's part of the global batch (`_step_rows`), right-padded. Every document this
    rank trains on from `start` is tokenized once, up front, in batched calls (one call per
    document cost more host time per step than a 135M model's step on a GPU).
    `empty`: a rank left without rows, or rows without one token that carries loss (their
    responses start beyond seq_len): the step's loss counts x 0."""
    t = cfg.train
    plan = _step_rows(stream, cfg, start, rank, world)  # (rows, empty) of every step
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


def count_sequences(stream_len: int, cfg: StudyConfig, steps: int) -> int:
    """Sequences the first `steps` optimizer steps train on, as `_batches` cuts the stream:
    each epoch's last batch holds what is left of the stream, not train.batch_size
    (steps x batch_size said 176 for 170 trained); with train.dp, the Poisson batches drawn."""
    if cfg.train.dp.on:
        return sum(map(len, poisson_batches(stream_len, cfg.train.batch_size, cfg.seed,
                                            count_steps(stream_len, cfg))[:steps]))
    per_epoch = math.ceil(stream_len / cfg.train.batch_size)
    epochs, rest = divmod(steps, per_epoch)
    return epochs * stream_len + rest * cfg.train.batch_size  # (rest < per_epoch: full ones)


def _fit_ray_train(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path,
                   on_loss, redo: list[int] | None = None,
                   extend: Extension | None = None) -> None:
    """DeepSpeed training as a Ray Train TorchTrainer fitted from inside the Tune trial:
    `resources.<strategy>.workers` workers of its `cpu` / `gpu` each, all on one node with its
    `labels` (`memlab plan` / `run` refuse a trial no such node can hold), one DeepSpeed ZeRO
    group across them (gloo on CPU, NCCL on GPU). A failed worker group is restarted up to
    sweep.max_failures times and continues from the last checkpoint (train.checkpoint_every).
    Its state (RAY_STORAGE) goes once the stage is done."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    res = cfg.reserved
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg, "base_model": base_model, "data_dir": data_dir,
                           "out_dir": out_dir, "on_loss": on_loss, "redo": redo,
                           "extend": extend},
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


def _worker_loop(c: dict) -> None:
    """One Ray Train worker: the torch process group is already set up by Ray Train."""
    import ray
    import ray.train
    import torch

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(ctx.get_world_size()),
                      LOCAL_RANK=str(ctx.get_local_rank()))
    cfg: StudyConfig = c["cfg"]
    from memlab.strategies import load_plugins

    load_plugins(cfg.train.plugins)  # (before anything reads the strategy's sections)
    torch.set_num_threads(torch_threads(cfg))
    device = "cpu"
    if torch.cuda.is_available():
        from ray.train.torch import get_device

        torch.cuda.set_device(get_device())
        device = "cuda"
    nodes: list = [None] * ctx.get_world_size()
    torch.distributed.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    train_here(cfg, c["base_model"], c["data_dir"], c["out_dir"],
               c["on_loss"] if rank == 0 else None, device, {"worker_nodes": nodes},
               c.get("redo"), c.get("extend"))


class LossLog:
    """The losses of the steps, brought to the host in bursts (one sync each, at most every
    FLUSH_S seconds and at checkpoints: no per-step wait for the GPU), logged every
    `train.log_every`-th step (rank 0) and shown on the progress line; tokens per second after
    the first WARMUP_STEPS steps."""

    def __init__(self, cfg: StudyConfig, steps: int, first: int, losses: list[float], on_loss):
        from memlab.io.progress import Progress

        self.cfg, self.losses, self.on_loss = cfg, losses, on_loss
        self.bar = Progress(steps, f"train {cfg.train.strategy}", unit="step")
        self.bar.update(first)
        self.pending: list = []  # (step, loss on the device)
        self.warm = min(WARMUP_STEPS, steps - first)  # steps not timed (when there are more)
        self.more = steps - first > self.warm
        self.tokens_all, self.tokens_timed, self.t0 = 0.0, 0.0, None
        self.last = time.perf_counter()

    def add(self, step: int, done: int, value, ntok, checkpoint: bool) -> None:
        self.pending.append((step, value))
        self.tokens_all = self.tokens_all + ntok
        if self.t0 is not None:
            self.tokens_timed = self.tokens_timed + ntok
        if done == self.warm or checkpoint or time.perf_counter() - self.last > FLUSH_S:
            self.flush()
            self.last = time.perf_counter()
            if done == self.warm and self.more:
                self.t0 = self.last

    def flush(self) -> None:
        """Bring the pending losses to the host (one sync), log and show them."""
        import torch

        if not self.pending:
            return
        values = torch.stack([v for _, v in self.pending]).tolist()
        for (step, _), value in zip(self.pending, values):
            self.losses.append(value)
            if self.on_loss is not None and step % self.cfg.train.log_every == 0:
                self.on_loss(step, value)
        self.bar.update(len(self.pending), postfix=f"loss {self.losses[-1]:.3f}")
        self.pending.clear()

    def rate(self, train_time: float) -> float:
        """Tokens per second after the warm-up, else over all steps."""
        if self.t0 is not None:
            return float(self.tokens_timed) / max(time.perf_counter() - self.t0, 1e-9)
        return float(self.tokens_all) / max(train_time, 1e-9)


def _steps(setup: Setup, cfg: StudyConfig, batches, first: int, steps: int, ckpt: Path | None,
           log_: LossLog, device: str, done=lambda n: None) -> None:
    """Optimizer steps `first`..`steps` over `batches`; a checkpoint every
    train.checkpoint_every steps (not after the last; none without `ckpt`); `done(n)` after
    the n-th step (evaluation points' exports)."""
    import torch
    import torch.distributed as dist

    t, cuda = cfg.train, device == "cuda"
    parts = micro_steps(cfg, setup.world)
    for step, (ids, mask, labels, empty) in enumerate(batches, start=first):
        if step >= steps:
            break
        ntok = float(mask.sum()) * (not empty)
        nopad = cuda and bool(mask.all())  # causal attention without a mask: SDPA's flash path
        n = micro_steps(cfg, 1, len(ids)) if t.dp.on else parts  # (DP: batches vary in size)
        work = [(_to(i, device), None if nopad else _to(m, device), _to(lab, device), w)
                for i, m, lab, w in micro_parts(ids, mask, labels, n, empty)]
        value = setup.step(work, empty).float()
        if setup.world > 1:  # the loss of the global batch: mean over the ranks that had rows
            had = torch.ones_like(value) * (not empty)
            both = torch.stack([value * had, had, torch.full_like(value, ntok)])
            dist.all_reduce(both)
            value, ntok = both[0] / both[1], both[2]  # (device tensors, read at a flush)
        elif empty:  # no token carried loss (loss_on=response): the step has no loss
            value = torch.full_like(value, float("nan"))
        ckpt_now = bool(t.checkpoint_every) and (step + 1) % t.checkpoint_every == 0 \
            and step + 1 < steps and ckpt is not None
        log_.add(step, step + 1 - first, value, ntok, ckpt_now)
        if ckpt_now:
            setup.save_ckpt(ckpt, step + 1, log_.losses)
        done(step + 1)
    log_.flush()


def train_here(cfg: StudyConfig, base_model: str, data_dir: Path, out_dir: Path, on_loss=None,
               device: str | None = None, record: dict | None = None,
               redo: list[int] | None = None, extend: Extension | None = None) -> None:
    """The training loop of every strategy, in this process (one rank of a DeepSpeed group);
    rank 0 writes the model and metrics.json (its "manifest": what the stage's manifest
    records, with `record` added), and the evaluation points' exports not on disk yet.
    `on_loss(step, loss)`: every train.log_every-th step's loss (rank 0), in bursts as they
    reach the host. `redo`: only export these evaluation points again, training from the
    start up to the last of them (no resumable checkpoint, no final model, no metrics).
    `extend`: a shorter training to continue from its final state (unless this one resumes
    from a checkpoint of its own); with train.extendable, the final state is kept."""
    import torch

    from memlab.strategies import load_plugins

    load_plugins(cfg.train.plugins)  # (a study's own strategy, in a Ray worker)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype(cfg.train.precision, device)
    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(base_model)
    model = load_causal_lm(base_model, torch.float32)  # fp32 master weights; bf16 via DS/autocast
    rows = read_dataset(data_dir)
    stream = training_stream(rows, cfg.seed)
    if not stream:
        raise ValueError("training stream is empty: no members with dup_count > 0")
    steps, ckpt = count_steps(len(stream), cfg), out_dir / CKPT
    setup = make_setup(cfg, model, device, dtype, steps)
    if cfg.train.dp.on:  # (validate refused DP through DeepSpeed)
        setup = PrivateSetup(setup, cfg, len(stream), steps)
    first, losses = setup.load_ckpt(ckpt) if not redo else (0, [])
    resumed, extended = first, None
    if first:
        log.info("train: resuming from the checkpoint of step %d in %s", first, ckpt)
        if (ckpt / EXTENDED).is_file():  # (an extension's own checkpoint)
            extended = json.loads((ckpt / EXTENDED).read_text())
    elif not redo:
        if setup.rank == 0:
            (ckpt / EXTENDED).unlink(missing_ok=True)  # (an earlier attempt's)
        if extend is not None:
            first, losses, extended = continue_from(setup, extend, steps, ckpt)
    points = set(redo) if redo else {  # (an export on disk is kept)
        s for s in eval_steps(cfg, steps) if not outputs_present(checkpoint_dir(out_dir, s))}

    def done(n: int) -> None:
        if n in points:
            export_point(setup, tok, base_model, out_dir, n)
    if extended is not None and resumed == 0:  # the points the shorter training passed
        if setup.rank == 0:
            reuse_points(extend.folder, out_dir, sorted(s for s in points if s < first))
        setup.sync()
        done(first)  # (its final model)
    setup.module.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    until = max(redo) if redo else steps
    losses_ = LossLog(cfg, until, first, losses, on_loss)
    _steps(setup, cfg, _batches(stream, tok, cfg, first, setup.rank, setup.world), first,
           until, None if redo else ckpt, losses_, device, done)
    if redo:
        return
    if device == "cuda":
        torch.cuda.synchronize()
    train_time = time.time() - start
    rate = losses_.rate(train_time)
    if keeps_final_state(cfg, setup.saved):
        keep_final_state(setup, out_dir / FINAL_STATE, steps, losses)
    setup.export(out_dir / "model")
    if setup.rank == 0:
        tok.save_pretrained(out_dir / "model")
        _record(cfg, setup, out_dir, losses, count_sequences(len(stream), cfg, len(losses)),
                train_time, rate, device, dtype, base_model,
                {**_format_record(tok, rows, cfg), "resumed_from_step": resumed,
                 **({"extended_from": extended} if extended else {}), **(record or {})})
    setup.sync()


def export_point(setup: Setup, tok, base_model: str, out_dir: Path, step: int) -> None:
    """The model after `step` optimizer steps into `at/<step>/` of the train folder, as the
    final export (the strategy's adapter or full weights, the tokenizer), its manifest last:
    what generation loads (memlab/components/models.py, load_trained)."""
    folder = checkpoint_dir(out_dir, step)
    if setup.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)  # (a partial export of an earlier attempt)
    setup.sync()
    setup.export(folder / "model")
    if setup.rank == 0:
        tok.save_pretrained(folder / "model")
        write_manifest(folder, outputs=["model"], step=step, saved=setup.saved,
                       base_model=base_model, engine=setup.engine)
    setup.sync()


def _record(cfg: StudyConfig, setup: Setup, out_dir: Path, losses: list[float],
            sequences: int, train_time: float, rate: float, device: str, dtype,
            base_model: str, extra: dict) -> None:
    """metrics.json: the training's figures (`sequences`: those trained on), its loss curve,
    the setup's notes, and the stage manifest's fields."""
    import torch

    t = cfg.train
    metrics = {
        "trainable_params": setup.trainable,
        "total_params": setup.total,
        "trainable_frac": setup.trainable / setup.total,
        "train_steps": len(losses),
        "train_sequences": sequences,
        "train_time_s": train_time,
        "train_tokens_per_s": rate,
        "final_loss": losses[-1],
        "first_loss": losses[0],
        "lr": setup.lr,
        **setup.figures(),  # (DP: the privacy spent, memlab/components/privacy.py)
    }
    if device == "cuda":  # what the plan's memory estimate (and gpu_share=memory) is held to
        metrics["gpu_peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if t.loss_on == "response":
        metrics["steps_without_loss_tokens"] = sum(math.isnan(x) for x in losses)
        if metrics["steps_without_loss_tokens"]:
            log.warning("train: %d step(s) had no token that carries loss (their responses "
                        "start beyond train.seq_len=%d)", metrics["steps_without_loss_tokens"],
                        t.seq_len)
    manifest = dict(outputs=["model", "metrics.json"], saved=setup.saved, base_model=base_model,
                    strategy=t.strategy, engine=setup.engine, workers=setup.world,
                    vocab_size=setup.module.config.vocab_size, device=device,
                    dtype=str(dtype).removeprefix("torch."), notes=setup.notes,
                    setup=setup.record, **extra, **metrics)
    write_json_atomic({"metrics": metrics, "losses": losses, "notes": setup.notes,
                       "manifest": manifest}, out_dir / "metrics.json")
