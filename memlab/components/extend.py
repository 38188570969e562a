"""Extending a training: a longer training (more train.epochs) continues the final state of a
finished shorter one instead of starting again, where the schedule allows it
(the train stage, memlab/stages/train.py, calls these).

Every epoch goes through the training stream in the same seeded order (`training_stream`
shuffles it once; step s trains on its batch s mod steps-per-epoch), so the first steps of a
longer training are a shorter one's as long as the learning rate of a step does not depend on
the total steps: train.lr_schedule=constant (the warm-up counts steps, not a fraction of them)
and no train.dp (Opacus's noise is chosen for the total steps). Such a training keeps its final
state, as a checkpoint, in `final_state/` (train.extendable: adapters by default, 3x an
adapter's size; `all` also keeps full weights' 12 bytes per parameter). A training about to
start from step 0 looks, beside its own folder, for the finished training whose key is its own
config's with fewer epochs (any other changed setting names another key: it is never
continued), the longest first, loads its final state (weights, optimizer and schedule, RNG) and
trains only the steps after it: the log says "train: extending <key> from step N", the manifest
(and the trial's result.json) `extended_from` (its key, step and epochs); on CPU in float32 the
result is the training from step 0's, bit for bit. Where the schedule does not allow it, one
line says why and it trains from step 0. A crash during the extension resumes from its own
checkpoint. Evaluation points before that step are the shorter training's exports (hard links),
the one at it its final model; one the shorter training dropped is trained again (the runner's
reexport, from step 0). The points' generate and score stages are keyed by this training's key:
they are computed again.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from memlab.components.training import Setup
from memlab.config.keys import stage_keys
from memlab.config.schema import StudyConfig
from memlab.io.paths import checkpoint_dir
from memlab.io.shards import outputs_present, stage_done, write_json_atomic

log = logging.getLogger(__name__)

FINAL_STATE = "final_state"  # the finished training's resumable state (train.extendable)
STATE_DONE = "done.json"  # in FINAL_STATE, written last: its step and the group that wrote it
EXTENDED = "extended_from.json"  # in CKPT: the shorter training this one continues


@dataclass(frozen=True)
class Extension:
    """A finished shorter training that this one continues (see the module's doc)."""

    folder: Path  # its train folder (its final state in FINAL_STATE)
    key: str
    epochs: int
    step: int  # its last step: where this training continues
    world: int  # the ranks that wrote its state (a ZeRO state loads on as many)


def why_not_extended(cfg: StudyConfig) -> str:
    """Why a longer training cannot continue this config's shorter one ('' where it can): its
    first steps would not be the shorter training's."""
    t = cfg.train
    if t.lr_schedule != "constant":
        return (f"train.lr_schedule={t.lr_schedule} decays over the trial's total steps, so a "
                "longer training's first steps have other learning rates")
    if t.dp.on:
        return "train.dp chooses the noise per step for the trial's total steps"
    return ""


def keeps_final_state(cfg: StudyConfig, saved: str) -> bool:
    """The finished training keeps its final state (train.extendable, for a strategy that saves
    `saved`): where a longer training could continue it."""
    keep = cfg.train.extendable
    return not why_not_extended(cfg) and (
        keep == "all" or (keep == "adapters" and saved == "adapter"))


def shorter_training(cfg: StudyConfig, upstream: str, folder: Path) -> Extension | None:
    """The longest finished training beside `folder` (the same runs root) whose config is this
    trial's with fewer train.epochs (its train key: the same data, model, strategy, seed and
    every other training setting, from the same upstream), and whose final state was kept;
    None (with one line saying why, where such a training exists) when there is none, or the
    schedule does not allow continuing one."""
    if cfg.train.epochs == 1:
        return None
    found = []
    for epochs in range(cfg.train.epochs - 1, 0, -1):
        shorter = copy.deepcopy(cfg)
        shorter.train.epochs = epochs
        other = folder.parent / stage_keys(shorter).train
        if other != folder and stage_done(other, upstream):
            found.append((epochs, other))
    if not found:
        return None
    if why := why_not_extended(cfg):
        log.info("train: training from step 0, not extending %s (%d epoch(s)): %s",
                 found[0][1].name, found[0][0], why)
        return None
    for epochs, other in found:
        done = other / FINAL_STATE / STATE_DONE
        if done.is_file():
            state = json.loads(done.read_text())
            return Extension(other, other.name, epochs, state["step"], state["world"])
    log.info("train: training from step 0, not extending %s (%d epoch(s)): it kept no final "
             "state (train.extendable=%s when it trained, or its strategy's weights are not "
             "an adapter)", found[0][1].name, found[0][0], cfg.train.extendable)
    return None


def continue_from(setup: Setup, extend: Extension, steps: int,
              ckpt: Path) -> tuple[int, list[float], dict | None]:
    """Load the final state of the shorter training `extend` into `setup` (the weights, the
    optimizer and schedule, the RNG; its losses): (its step, its losses, what the manifest
    records of it), with the log's line, and a note in this training's checkpoint folder (a
    crash resumed from a later checkpoint still says it); (0, [], None), with one line saying
    why, where it cannot be continued."""
    why = ""
    if extend.step >= steps:
        why = f"it ended at step {extend.step}, not before this training's last ({steps})"
    elif extend.world != setup.world:
        why = (f"its state was written by {extend.world} rank(s), this training has "
               f"{setup.world}")
    if why:
        log.info("train: training from step 0, not extending %s: %s", extend.key, why)
        return 0, [], None
    first, losses = setup.load_ckpt(extend.folder / FINAL_STATE)
    if first != extend.step:  # (a damaged final state: its done.json says another step)
        raise RuntimeError(f"train: the final state of {extend.key} loaded at step {first}, "
                           f"its {STATE_DONE} says {extend.step}: remove "
                           f"{extend.folder / FINAL_STATE} to train from step 0")
    log.info("train: extending %s from step %d (its %d epoch(s)) to step %d", extend.key,
             first, extend.epochs, steps)
    extended = {"key": extend.key, "step": first, "epochs": extend.epochs}
    if setup.rank == 0:
        write_json_atomic(extended, ckpt / EXTENDED)
    return first, losses, extended


def keep_final_state(setup: Setup, folder: Path, steps: int, losses: list[float]) -> None:
    """The finished training's resumable state into `folder` (as a checkpoint: the trainable
    weights, optimizer and schedule, RNG per rank), STATE_DONE last."""
    if setup.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)  # (a partial one of an earlier attempt)
    setup.sync()
    setup.save_ckpt(folder, steps, losses)
    setup.sync()
    if setup.rank == 0:
        write_json_atomic({"step": steps, "world": setup.world, "engine": setup.engine},
                          folder / STATE_DONE)


def reuse_points(shorter: Path, out_dir: Path, steps: list[int]) -> None:
    """The exports of evaluation points `steps` (before the step this training continues from)
    that the shorter training in `shorter` has on disk, hard-linked (copied across file
    systems) into at/<step>/ here: the same models. One it dropped (train.keep_checkpoints) is
    made again once this training finished (the runner's reexport)."""
    reused = []
    for step in steps:
        src, dst = checkpoint_dir(shorter, step), checkpoint_dir(out_dir, step)
        if not outputs_present(src):
            continue
        tmp = dst.with_name(f".{step}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, copy_function=_link_or_copy)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
        reused.append(step)
    if steps:
        log.info("train: evaluation point(s) %s taken from %s%s",
                 ", ".join(map(str, reused)) or "none", shorter.name,
                 f"; {', '.join(str(s) for s in steps if s not in reused)} not on disk there "
                 "(made again once this training finished)" if len(reused) < len(steps) else "")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
