"""A trial in MLflow: its run opened before it computes (the loss shows as it trains), and
its finished record logged (params, tags, metrics, the loss curve, artifacts), at most once
per result.json (`logged.json` in the trial's folder says which run holds it). The run's
layout in the UI: memlab/tracking/desk.py; every MLflow call: memlab/tracking/mlflow_log.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from memlab.config.digests import file_sha256
from memlab.config.keys import StageKeys
from memlab.config.load import flatten, to_dict
from memlab.config.schema import StudyConfig
from memlab.io.shards import read_manifest, sample_rows, write_json_atomic
from memlab.tracking import desk
from memlab.tracking.mlflow_log import Client, LiveRun, TrackingError, trial_run

log = logging.getLogger(__name__)

LOGGED = "logged.json"  # in the trial folder: the MLflow run that holds this result.json


@dataclass(frozen=True)
class Tracking:
    """Where the trials of a sweep log."""

    uri: str
    experiment_id: str
    parent_run_id: str | None = None
    retry_s: float = 60.0


class Trial(Protocol):
    """What logging needs of a trial (memlab.sweep.trial.TrialPlan)."""

    config: StudyConfig
    keys: StageKeys
    name: str
    tracking: Tracking
    tags: dict[str, str]

    @property
    def key(self) -> str: ...

    @property
    def dir(self) -> Path: ...

    def stage(self, name: str) -> Path: ...


def live_run(plan: Trial, tags: dict) -> LiveRun | None:
    """The trial's MLflow run opened before training, so the loss shows as it trains (one
    attempt: a trial never waits for tracking before it computes)."""
    t = plan.tracking
    try:
        run = trial_run(Client(t.uri, retry_s=0), t.experiment_id, plan.config.sweep.name,
                        plan.key, plan.name, params=flatten(to_dict(plan.config)),
                        tags={**plan.tags, **tags}, parent_run_id=t.parent_run_id)
    except TrackingError as e:
        log.warning("%s: MLflow not reachable before training (%s); logging at the end",
                    plan.name, e)
        return None
    return LiveRun(t.uri, run.run_id)


def is_logged(plan: Trial) -> bool:
    """Its result.json, as it is now, is in an MLflow run at the sweep's tracking URI."""
    marker, result = plan.dir / LOGGED, plan.dir / "result.json"
    if not (marker.is_file() and result.is_file()):
        return False
    done = json.loads(marker.read_text())
    return done.get("uri") == plan.tracking.uri and done.get("result") == file_sha256(result)


def log_trial(plan: Trial, tags: dict | None = None) -> str:
    """Log a finished trial (its result.json and stage outputs) to its MLflow run: params,
    tags, metrics, the loss curve (points logged live are not repeated), artifacts. Safe to
    repeat; raises TrackingError when MLflow stays unreachable. Returns the run id."""
    cfg, t = plan.config, plan.tracking
    result = json.loads((plan.dir / "result.json").read_text())
    train_dir = plan.stage("train")
    train = json.loads((train_dir / "metrics.json").read_text())
    client = Client(t.uri, t.retry_s)
    run = trial_run(client, t.experiment_id, cfg.sweep.name, plan.key, plan.name,
                    params=flatten(to_dict(cfg)),
                    tags={**plan.tags, **(tags or {}), **plan.keys.tags(),
                          **{f"note.{i}": n for i, n in enumerate(train["notes"])}},
                    parent_run_id=t.parent_run_id)
    man = json.loads((train_dir / "_MANIFEST.json").read_text())
    if man.get("worker_nodes"):
        run.set_tags({"ray.train_worker_nodes": ",".join(man["worker_nodes"])})
    actors = sorted({n for d in (plan.stage("gen"), plan.stage("score"))
                     if (d / "_MANIFEST.json").is_file()
                     for n in json.loads((d / "_MANIFEST.json").read_text()).get("actor_nodes",
                                                                                   [])})
    if actors:  # where its generation and scoring actors ran (not the shared base-model pass)
        run.set_tags({"ray.actor_nodes": ",".join(actors)})
    # what the strategy's setup did that the config does not say (before strategy modules:
    # head_untied and lora_targets at the manifest's top level)
    setup = {**{k: man[k] for k in ("head_untied", "lora_targets") if k in man},
             **man.get("setup", {})}
    run.log_params({f"train.{k}": v for k, v in setup.items()})
    if stop := result.get("stopped"):  # train.stop_when: where it fired, and why
        run.set_tags({"stopped_at": str(stop["step"]), "stopped_rule": stop["rule"]})
    if ext := result.get("extended_from"):  # a training that continued a shorter one
        run.set_tags({"extended_from": f"{ext['key']}@{ext['step']}"})
    metrics = {k: v for k, v in result["metrics"].items() if finite(v)}
    metrics |= {"stopped_value": stop["value"]} if stop else {}
    threshold = cfg.score.headline_threshold
    # evaluation points: the headline metrics against the optimizer step, the final model's
    # at its last step (points logged earlier are not repeated)
    at = [(p["step"], p["metrics"]) for p in result.get("checkpoints", [])]
    curves = desk.curves(at + [(result["train"]["train_steps"], metrics)], threshold) \
        if at else {}
    run.log_metrics({k: v for k, v in {**metrics, **desk.headline_metrics(
        metrics, threshold)}.items() if k not in curves})
    for name, steps in curves.items():
        run.log_history_at(name, steps)
    for name, points in desk.vs_dup(metrics, threshold).items():  # (step: a member's copies)
        run.log_history_at(name, points)
    run.log_history("train_loss", train["losses"], cfg.train.log_every)
    data_man = read_manifest(plan.stage("data")) or {}
    ref = str(data_man.get("source_ref", cfg.data.source))
    run.log_dataset(name=os.path.basename(ref.rstrip("/")) if cfg.data.source == "local"
                    else ref, digest=plan.keys.data, source=ref, source_type=cfg.data.source,
                    profile={k: data_man[k] for k in ("rows", "members", "nonmembers",
                                                      "sha256") if k in data_man})
    if cfg.tracking.log_models == "all" or (cfg.tracking.log_models == "adapters"
                                            and cfg.strategy.saved == "adapter"):
        run.log_artifacts(train_dir / "model", "model")
    if log_text(cfg):  # (off: no training text, prompt or generation leaves the runs folder)
        run.log_artifact(write_examples(plan), "examples")
    for path, subdir in ((plan.dir / "config.json", None), (plan.dir / "result.json", None),
                         (train_dir / "metrics.json", "train"),
                         (plan.stage("score") / "summary.parquet", "scores"),
                         (plan.dir / "train_loss.png", "plots")):
        run.log_artifact(path, subdir)
    run.finish(ok=True)
    write_json_atomic({"uri": t.uri, "run_id": run.run_id,
                       "result": file_sha256(plan.dir / "result.json")}, plan.dir / LOGGED)
    return run.run_id


def dp_tags(cfg: StudyConfig) -> dict[str, str]:
    """The trial's DP settings as MLflow tags next to its strategy, so that the runs list
    groups and filters by them: `dp_epsilon` and `dp_delta`, the target (`off` without DP).
    What it spent is a metric (dp_epsilon_spent), with the noise multiplier."""
    dp = cfg.train.dp
    if not dp.on:
        return {"dp_epsilon": "off", "dp_delta": "off"}
    return {"dp_epsilon": f"{dp.epsilon:g}", "dp_delta": f"{dp.delta:g}"}


def log_text(cfg) -> bool:
    """tracking.log_text resolved: auto is on for the demo corpus only."""
    t = cfg.tracking.log_text
    return t == "on" or (t == "auto" and cfg.data.source == "demo")


def write_examples(plan: Trial, per_split: int = 10) -> Path:
    """The trial's generations most similar to their true suffix (members and non-members,
    `per_split` each), with their scores: `examples.jsonl` in the trial's folder."""
    rows = sample_rows(plan.stage("gen"), plan.stage("score"),
                       ("doc_id", "split", "dup_count", "gen_text", "suffix_text"),
                       ("sim_to_source", "plag_label", "exact_extracted"))
    rows.sort(key=lambda r: (-(r.get("sim_to_source") or 0.0), r["sample_id"]))
    out = plan.dir / "examples.jsonl"
    picked = [r for split in ("member", "nonmember")
              for r in [x for x in rows if x["split"] == split][:per_split]]
    out.write_text("".join(json.dumps(r, default=str) + "\n" for r in picked))
    return out


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def log_pending(plans: list[Trial]) -> list[Trial]:
    """Log the finished trials whose results are not in MLflow yet (a trial's own attempt
    failed, or it finished before a crash); stop at the first failure (MLflow is down).
    Returns the finished trials still not logged."""
    finished = [p for p in plans if (p.dir / "result.json").is_file()]
    pending = [p for p in finished if not is_logged(p)]
    for i, p in enumerate(pending):
        try:
            log_trial(p)
            log.info(f"{p.name}: logged to MLflow")
        except TrackingError as e:
            log.warning(f"MLflow: {e}")
            return pending[i:]
    return []


def log_sweep_summary(tracking: Tracking, files: list[Path], settings, failed: int, secs: float,
                      plans: list, done: int, trials: int) -> None:
    """Sweep-level results on the sweep's run: the report's `files` (tables as CSV, Markdown
    and HTML, figures) under `summary`, the base models where `settings.log_models` is all
    (each once), counts (`done` of `trials` finished)."""
    from memlab.tracking.mlflow_log import TrackedRun

    run = TrackedRun(Client(tracking.uri, tracking.retry_s), tracking.parent_run_id)
    for path in files:
        if path.is_file():
            run.log_artifact(path, "summary")
            if path.suffix == ".png":  # (also as images: the chart view shows them)
                run.log_image(path, f"study/{path.stem}")
    if settings.log_models == "all":
        logged = set()
        for p in plans:
            if p.model_label not in logged and Path(p.base_model).is_dir():
                run.log_artifacts(p.base_model, f"base_model/{p.model_label}")
                logged.add(p.model_label)
    run.log_metrics({"trials_finished": done, "trials_failed": failed,
                     "sweep_minutes": secs / 60})
    run.finish(ok=done == trials and not failed)
