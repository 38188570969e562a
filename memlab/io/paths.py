"""Where everything lives. Every path derives from the runs root and a content key; no
timestamps, no random suffixes.

    <runs_root>/stages/data/<data_key>/     dataset shards (+ corpus embeddings, plagiarism index)
    <runs_root>/stages/train/<train_key>/   the fine-tuned model or adapter, loss curve;
                                            at/<step>/: the model at an evaluation point
    <runs_root>/stages/gen/<gen_key>/       generation shards
    <runs_root>/stages/score/<score_key>/   score shards, summary.parquet
    <runs_root>/<sweep>/<trial_key>/        a trial's record: config.json, result.json, plots
    <runs_root>/<sweep>/results.*           the sweep's report
    <runs_root>/mlflow.db, mlartifacts/     the default MLflow store
    <runs_root>/cache/                      torch.compile's caches (train.compile)

Stage outputs are shared by every trial (of any sweep under the same runs root) whose chain
of keys reaches them, so each is computed once.
"""

from __future__ import annotations

from pathlib import Path

from memlab.config.chain import STAGES
from memlab.config.schema import StudyConfig


def runs_root(cfg: StudyConfig) -> Path:
    return Path(cfg.sweep.runs_root).expanduser()


def sweep_root(cfg: StudyConfig) -> Path:
    return runs_root(cfg) / cfg.sweep.name


def stage_dir(cfg: StudyConfig, stage: str, key: str) -> Path:
    """The output folder of one stage of the chain (memlab/config/chain.py) computed under
    `key`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r} (one of {', '.join(STAGES)})")
    return runs_root(cfg) / "stages" / stage / key


def checkpoint_dir(train_dir: str | Path, step: int) -> Path:
    """Where a train stage exports the model after `step` optimizer steps (an evaluation
    point, train.eval_at / eval_every): its `model/` and a manifest, as a train folder has."""
    return Path(train_dir) / "at" / str(step)


def trial_dir(cfg: StudyConfig, key: str) -> Path:
    return sweep_root(cfg) / key


def default_tracking_uri(cfg: StudyConfig) -> str:
    db = (runs_root(cfg) / "mlflow.db").resolve()
    return f"sqlite:///{db}"


def artifact_root(cfg: StudyConfig) -> Path:
    return (runs_root(cfg) / "mlartifacts").resolve()


def finished_trials(cfg: StudyConfig) -> dict[str, list[str]]:
    """Every sweep under the runs root with a finished trial (its result.json): sweep name ->
    trial keys. What `memlab report` names when none of a study's own trials finished."""
    found: dict[str, list[str]] = {}
    for result in sorted(runs_root(cfg).glob("*/*/result.json")):
        sweep = result.parent.parent.name
        if sweep != "stages":
            found.setdefault(sweep, []).append(result.parent.name)
    return found
