"""One trial: a plain function of its typed plan.

The trial's stages (memlab/config/chain.py: data -> train -> generate -> (the base model's
pass) -> score; then, with train.eval_at / eval_every, generate and score of each evaluation
point), each run by the one runner (memlab/stages/runner.py): each stage's output is
addressed by its own key and shared with every trial whose chain reaches it, a finished output
is reused, one that another trial is computing is waited for. The trial's results are written
to disk (result.json) before anything is logged; then its MLflow run gets params, tags,
metrics, the loss curve and artifacts (memlab/tracking/trials.py). A trial whose logging fails
(MLflow unreachable for `tracking.retry_s`) still finishes: the sweep names it and
`memlab run --resume` logs it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from memlab.components.models import torch_threads
from memlab.components.privacy import FIGURES as DP_FIGURES
from memlab.config.keys import StageKeys
from memlab.config.load import to_dict
from memlab.config.schema import StudyConfig
from memlab.io.paths import stage_dir, trial_dir
from memlab.io.shards import flat_metrics, read_manifest, read_summary, write_json_atomic
from memlab.stages.runner import chain_done, finished, run_chain, run_checkpoints
from memlab.stages.work import TrialContext
from memlab.tracking.mlflow_log import TrackingError, system_metrics, system_metrics_on
from memlab.tracking.stopping import first_stop
from memlab.tracking.trials import Tracking, finite, is_logged, live_run, log_trial

log = logging.getLogger(__name__)


@dataclass
class TrialPlan:
    """Everything one trial needs, prepared by the sweep driver (memlab.sweep.run)."""

    config: StudyConfig  # paths made absolute: trials run in other processes and nodes
    keys: StageKeys
    name: str
    point: dict
    base_model: str  # a local folder (or a hub id)
    model_label: str
    tracking: Tracking
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.keys.trial

    @property
    def dir(self) -> Path:
        return trial_dir(self.config, self.key)

    def stage(self, name: str) -> Path:
        return stage_dir(self.config, name, getattr(self.keys, name))

    def context(self, **kw) -> TrialContext:
        """The context its stages run in (memlab/stages/work.py)."""
        return TrialContext.of(self.config, self.keys, base_model=self.base_model, **kw)


def stages_done(plan: TrialPlan) -> bool:
    """Every stage of the trial finished, every output present: the trial needs no compute,
    only its record and logging."""
    return chain_done(plan.context())


def _said(plan: TrialPlan):
    def said(stage: str, out) -> None:
        if out.computed:
            how = "computed"
        elif out.waited_s > 1:
            how = f"reused, after waiting {out.waited_s:.0f} s for the trial computing it"
        else:
            how = "reused (finished earlier)"
        log.info(f"{plan.name}: {stage} {out.folder.name} {how}")
    return said


def run_trial(plan: TrialPlan, to_mlflow: bool = True) -> dict:
    """Every stage of one trial (each reused when done), result.json, then MLflow (unless
    `to_mlflow` is False: the caller knows MLflow is down)."""
    import ray
    import torch

    from memlab.stages.warm import warm_pool_for
    from memlab.strategies import load_plugins

    cfg = plan.config
    load_plugins(cfg.train.plugins)  # (a study's own strategy, in this process)
    threads = torch_threads(cfg)
    torch.set_num_threads(threads)
    plan.dir.mkdir(parents=True, exist_ok=True)
    node = ({"ray.trial_node": ray.get_runtime_context().get_node_id()}
            if ray.is_initialized() else {})
    trains, done = not finished(plan.context(), "train"), chain_done(plan.context())
    t = cfg.tracking
    watch = system_metrics_on(t.system_metrics)
    # the run opened before computing: the loss shows as it trains, the system metrics as it runs
    live = live_run(plan, node) if to_mlflow and (trains or (watch and not done)) else None
    # the sweep's warm actors, if it started them (else each shard stage starts its own)
    warm = warm_pool_for(cfg, plan.base_model) if ray.is_initialized() and not done else None
    ctx = plan.context(threads=threads, warm=warm, on_loss=live, ray_workers=True)
    try:
        with system_metrics(plan.tracking.uri, live.run_id if live and watch else None,
                            t.system_metrics_s):
            outputs = run_chain(ctx, _said(plan))
            points = run_checkpoints(ctx, _said(plan))  # (train.eval_at / eval_every)
    except BaseException:
        if live is not None:
            live.fail()  # the run opened before training does not stay RUNNING
        raise
    result = _result(plan, outputs, points)
    if stop := result.get("stopped"):
        log.info(f"{plan.name}: stopped at step {stop['step']} of {result['train']['train_steps']}"
                 f" (train.stop_when: {stop['rule']}, {stop['value']:g}); points after it not "
                 "evaluated")
    # a rerun of a finished trial checks (and repairs) every stage but rewrites nothing
    _write_if_changed(to_dict(cfg), plan.dir / "config.json")
    _write_if_changed(result, plan.dir / "result.json")
    if not (plan.dir / "train_loss.png").is_file():
        _loss_plot(outputs["train"].folder / "metrics.json", plan.dir / "train_loss.png")
    result["logged"] = is_logged(plan) and live is None  # (a live run must be finished)
    if to_mlflow and not result["logged"]:
        try:
            log_trial(plan, node)
            result["logged"] = True
        except TrackingError as e:
            log.warning(f"{plan.name}: results on disk ({plan.dir}), NOT logged to MLflow: {e}")
    return result


def _result(plan: TrialPlan, outputs: dict, points: dict | None = None) -> dict:
    """The trial's record: what it is, its training figures, its metrics; with evaluation
    points, each point's step, stage keys and metrics (`checkpoints`; none: the record is as
    it was before points existed); with train.stop_when, where it fired (`stopped`: step,
    rule, value; the final model's metrics stay in `metrics`); a training that continued a
    shorter one (train.extendable), which (`extended_from`: its train key, step, epochs)."""
    checkpoints = [{"step": step, "keys": {stage: out.folder.name for stage, out in o.items()},
                    "metrics": flat_metrics(read_summary(o["score"].folder))}
                   for step, o in sorted((points or {}).items())]
    cfg, train, gen = plan.config, outputs["train"], outputs["gen"]
    train_metrics = {k: train.manifest[k] for k in (
        "trainable_params", "total_params", "trainable_frac", "train_steps", "train_time_s",
        "train_tokens_per_s", "final_loss")}
    train_metrics |= {k: train.manifest[k] for k in DP_FIGURES if k in train.manifest}
    # documents the dataset stage left out (empty, too few words, a repeated text, ...)
    skipped = (read_manifest(plan.stage("data")) or {}).get("skipped", {})
    data_metrics = {f"data_skipped_{k}": v for k, v in skipped.items()}
    if gen.manifest.get("docs_too_short"):  # (fewer tokens than prefix + suffix: not attacked)
        data_metrics["data_skipped_too_short_to_attack"] = gen.manifest["docs_too_short"]
    scores = flat_metrics(read_summary(outputs["score"].folder))
    # train.stop_when: its stop point over the evaluated points and the final model, in step
    # order (the runner evaluated no point after it); None: no rule, or it never fired
    stop = first_stop(cfg.train.stop_when, [(p["step"], p["metrics"]) for p in checkpoints]
                      + [(train.manifest["train_steps"], scores)], cfg.score.headline_threshold)
    return {"key": plan.key, "name": plan.name, "point": plan.point,
            "strategy": cfg.train.strategy, "model": plan.model_label,
            "dup_factor": cfg.data.dup_factor, "seed": cfg.seed,
            "keys": plan.keys.named(),
            "train": train_metrics, "generated_samples": gen.manifest["rows"],
            "metrics": {**train_metrics, **data_metrics, **scores},
            **({"checkpoints": checkpoints} if checkpoints else {}),
            **({"stopped": stop} if stop else {}),
            **({"extended_from": train.manifest["extended_from"]}
               if "extended_from" in train.manifest else {})}


def _write_if_changed(obj: dict, path: Path) -> None:
    if not (path.is_file() and json.loads(path.read_text()) == json.loads(json.dumps(obj))):
        write_json_atomic(obj, path)


def _loss_plot(metrics_json: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = json.loads(metrics_json.read_text())["losses"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(len(losses)), losses)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)


def tune_trainable(tune_config: dict, plans: dict) -> None:
    """Ray Tune function trainable: run the trial named by `trial_key` in the config and report
    its headline metrics. `plans` (trial_key -> TrialPlan) is bound by tune.with_parameters."""
    from ray import tune

    t0 = time.time()
    result = run_trial(plans[tune_config["trial_key"]])
    m = result["metrics"]
    shown = {k: v for k, v in m.items()
             if k in HEADLINE or (k.startswith("exact_pct/") and finite(v))}
    tune.report({**{k.replace("/", "."): v for k, v in shown.items()},
                 "logged": int(result["logged"]), "trial_s": time.time() - t0})


HEADLINE = ("train_time_s", "trainable_params", "final_loss", "heldout_ppl")
