"""One trial: a plain function of its config. train -> generate -> score, each stage skipped
when its manifest exists, everything tracked in the trial's MLflow run."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from memlab.config.load import Located, flatten, from_dict
from memlab.config.schema import StudyConfig
from memlab.io.paths import stage_dir, trial_dir
from memlab.io.shards import write_json_atomic

log = logging.getLogger(__name__)


def trial_threads(cfg: StudyConfig) -> int:
    if cfg.train.threads:
        return cfg.train.threads
    res = getattr(cfg.resources, cfg.train.strategy)
    return max(1, math.ceil(res.cpu))


def run_trial(payload: dict) -> dict:
    """Run every stage of one trial. `payload` is what the sweep driver prepared (see
    memlab.sweep.run.trial_payload). Returns the trial's result record."""
    import torch

    from memlab.stages.generate import run_generate
    from memlab.stages.score import run_score
    from memlab.stages.train import run_train, run_train_workers
    from memlab.tracking.mlflow_log import trial_run

    problems: list[str] = []
    cfg = from_dict(StudyConfig, payload["config"], "", Located(), problems)
    if problems:
        raise ValueError("; ".join(problems))
    key = payload["key"]
    threads = trial_threads(cfg)
    torch.set_num_threads(threads)
    tdir = trial_dir(cfg, key)
    tdir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(payload["data_dir"])

    run = trial_run(payload["tracking_uri"], payload["experiment_id"], key, payload["name"],
                    params=flatten(payload["config"]), tags=payload["tags"],
                    parent_run_id=payload.get("parent_run_id"))
    try:
        import ray

        if ray.is_initialized():
            run.set_tags({"ray.trial_node": ray.get_runtime_context().get_node_id()})
        train_dir = stage_dir(cfg, key, "train")
        if cfg.train.strategy == "full":  # DeepSpeed across Ray Train workers
            train = run_train_workers(cfg, payload["base_model"], data_dir, train_dir,
                                      (payload["tracking_uri"], run.run_id), tdir / "_ray_train")
        else:
            train = run_train(cfg, payload["base_model"], data_dir, train_dir,
                              on_loss=lambda step, loss: run.log_metric("train_loss", loss, step)
                              if step % cfg.train.log_every == 0 else None)
        for note in train.get("notes", []):
            run.set_tags({"note.head_untied": note})
        gen = run_generate(cfg, train_dir, data_dir,
                           stage_dir(cfg, key, "gen"), threads)
        scores = run_score(cfg, key, stage_dir(cfg, key, "gen"), data_dir,
                           stage_dir(cfg, key, "scores"), threads)
        train_metrics = {k: train[k] for k in ("trainable_params", "total_params",
                                                "trainable_frac", "train_steps",
                                                "train_time_s", "train_tokens_per_s",
                                                "final_loss")}
        metrics = {**train_metrics, **scores["metrics"],
                   "generated_samples": gen["rows"]}
        run.log_metrics({k: v for k, v in metrics.items() if _finite(v)})
        result = {"key": key, "name": payload["name"], "point": payload["point"],
                  "strategy": cfg.train.strategy, "model": payload["model_label"],
                  "dup_factor": cfg.data.dup_factor, "seed": cfg.seed,
                  "mlflow_run_id": run.run_id, "metrics": metrics}
        # a rerun of a finished trial checks (and repairs) every stage but rewrites nothing
        _write_if_changed(result, tdir / "result.json")
        _write_if_changed(payload["config"], tdir / "config.json")
        run.log_artifact(tdir / "config.json")
        run.log_artifact(tdir / "result.json")
        run.log_artifact(stage_dir(cfg, key, "train") / "metrics.json", "train")
        run.log_artifact(stage_dir(cfg, key, "scores") / "summary.parquet", "scores")
        _loss_plot(tdir, run)
        run.finish(ok=True)
        return result
    except BaseException:
        run.finish(ok=False)
        raise


def _write_if_changed(obj: dict, path: Path) -> None:
    if not (path.is_file() and json.loads(path.read_text()) == json.loads(json.dumps(obj))):
        write_json_atomic(obj, path)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _loss_plot(tdir: Path, run) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = json.loads((tdir / "train" / "metrics.json").read_text())["losses"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(len(losses)), losses)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    fig.tight_layout()
    out = tdir / "train_loss.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    run.log_artifact(out, "plots")


def tune_trainable(tune_config: dict, payloads: dict) -> None:
    """Ray Tune function trainable: run the trial named by `trial_key` in the config and report
    its headline metrics. `payloads` (trial_key -> payload) is bound by tune.with_parameters."""
    from ray import tune

    logging.basicConfig(level=os.environ.get("MEMLAB_LOG", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")
    result = run_trial(payloads[tune_config["trial_key"]])
    m = result["metrics"]
    shown = {k: v for k, v in m.items()
             if k in HEADLINE or (k.startswith("exact_pct/") and _finite(v))}
    tune.report({k.replace("/", "."): v for k, v in shown.items()})


HEADLINE = ("train_time_s", "trainable_params", "final_loss", "heldout_ppl")
