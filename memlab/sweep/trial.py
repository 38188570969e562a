"""One trial: a plain function of its typed plan.

train -> generate -> (the base model's pass) -> score, each stage's output addressed by its
own key (memlab/config/keys.py) and shared with every trial whose chain reaches it: a
finished output is reused, one that another trial is computing is waited for. The trial's
results are written to disk (result.json) before anything is logged; then its MLflow run gets
params, tags, metrics, the loss curve and artifacts. A trial whose logging fails (MLflow
unreachable for `tracking.retry_s`) still finishes: the sweep names it and
`memlab run --resume` logs it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from memlab.components.models import torch_threads
from memlab.config.keys import StageKeys, file_sha256, resolved
from memlab.config.load import flatten, to_dict
from memlab.config.schema import StudyConfig
from memlab.io.paths import stage_dir, trial_dir
from memlab.io.shards import read_manifest, write_json_atomic
from memlab.tracking import desk
from memlab.tracking.mlflow_log import (
    Client,
    LiveRun,
    TrackingError,
    system_metrics,
    system_metrics_on,
    trial_run,
)

log = logging.getLogger(__name__)

LOGGED = "logged.json"  # in the trial folder: the MLflow run that holds this result.json


@dataclass(frozen=True)
class Tracking:
    """Where the trials of a sweep log."""

    uri: str
    experiment_id: str
    parent_run_id: str | None = None
    retry_s: float = 60.0


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

    @property
    def base_dir(self) -> Path | None:
        """The base model's pass over the dataset, if the study asks for it."""
        m = self.config.score.membership
        return self.stage("base") if m.enabled and m.base_pass else None


def _say(plan: TrialPlan, stage: str, out) -> None:
    if out.computed:
        how = "computed"
    elif out.waited_s > 1:
        how = f"reused, after waiting {out.waited_s:.0f} s for the trial computing it"
    else:
        how = "reused (finished earlier)"
    print(f"[memlab] {plan.name}: {stage} {out.folder.name} {how}", file=sys.stderr, flush=True)


def stages_done(plan: TrialPlan) -> bool:
    """Every stage of the trial finished from its current upstream, every output present
    (reads manifests only): the trial needs no compute, only its record and logging."""
    from memlab.io.shards import stage_done
    from memlab.stages.base import base_upstream
    from memlab.stages.generate import gen_upstream
    from memlab.stages.score import score_upstream
    from memlab.stages.train import train_upstream

    data, train, gen = plan.stage("data"), plan.stage("train"), plan.stage("gen")
    base = plan.base_dir
    return (stage_done(train, train_upstream(data, plan.base_model))
            and stage_done(gen, gen_upstream(train, data))
            and (base is None or stage_done(base, base_upstream(data, plan.base_model)))
            and stage_done(plan.stage("score"), score_upstream(plan.config, gen, base)))


def run_trial(plan: TrialPlan, log: bool = True) -> dict:
    """Every stage of one trial (each reused when done), result.json, then MLflow (unless
    `log` is False: the caller knows MLflow is down)."""
    import ray
    import torch

    from memlab.io.shards import read_summary, stage_done
    from memlab.stages.base import run_base
    from memlab.stages.generate import run_generate
    from memlab.stages.score import flat_metrics, run_score
    from memlab.stages.train import run_train, train_upstream
    from memlab.stages.warm import pool_for

    cfg = plan.config
    threads = torch_threads(cfg)
    torch.set_num_threads(threads)
    plan.dir.mkdir(parents=True, exist_ok=True)
    node = ({"ray.trial_node": ray.get_runtime_context().get_node_id()}
            if ray.is_initialized() else {})
    data = plan.stage("data")
    trains = not stage_done(plan.stage("train"), train_upstream(data, plan.base_model))
    t = cfg.tracking
    watch = system_metrics_on(t.system_metrics)
    # the run opened before computing: the loss shows as it trains, the system metrics as it runs
    live = (_live_run(plan, node) if log and (trains or (watch and not stages_done(plan)))
            else None)
    try:
        with system_metrics(plan.tracking.uri, live.run_id if live and watch else None,
                            t.system_metrics_s):
            train = run_train(cfg, plan.base_model, data, plan.stage("train"), on_loss=live,
                              ray_workers=resolved(cfg)["train_engine"] == "deepspeed")
            _say(plan, "train", train)
            # the sweep's warm actors, if it started them (else each stage starts its own)
            pool = pool_for(cfg, plan.base_model) if ray.is_initialized() and \
                not stages_done(plan) else None
            gen = run_generate(cfg, train.folder, data, plan.stage("gen"), threads, pool)
            _say(plan, "gen", gen)
            if plan.base_dir is not None:
                base = run_base(cfg, plan.base_model, data, plan.base_dir, threads, pool)
                _say(plan, "base", base)
            score = run_score(cfg, plan.key, gen.folder, data, plan.stage("score"), threads,
                              plan.base_dir, pool)
            _say(plan, "score", score)
    except BaseException:
        if live is not None:
            live.fail()  # the run opened before training does not stay RUNNING
        raise
    train_metrics = {k: train.manifest[k] for k in (
        "trainable_params", "total_params", "trainable_frac", "train_steps", "train_time_s",
        "train_tokens_per_s", "final_loss")}
    # documents the dataset stage left out (empty, too few words, a repeated text, ...)
    skipped = (read_manifest(data) or {}).get("skipped", {})
    data_metrics = {f"data_skipped_{k}": v for k, v in skipped.items()}
    if gen.manifest.get("docs_too_short"):  # (fewer tokens than prefix + suffix: not attacked)
        data_metrics["data_skipped_too_short_to_attack"] = gen.manifest["docs_too_short"]
    result = {"key": plan.key, "name": plan.name, "point": plan.point,
              "strategy": cfg.train.strategy, "model": plan.model_label,
              "dup_factor": cfg.data.dup_factor, "seed": cfg.seed,
              "keys": dataclasses.asdict(plan.keys),
              "train": train_metrics, "generated_samples": gen.manifest["rows"],
              "metrics": {**train_metrics, **data_metrics,
                          **flat_metrics(read_summary(score.folder))}}
    # a rerun of a finished trial checks (and repairs) every stage but rewrites nothing
    _write_if_changed(to_dict(cfg), plan.dir / "config.json")
    _write_if_changed(result, plan.dir / "result.json")
    if not (plan.dir / "train_loss.png").is_file():
        _loss_plot(train.folder / "metrics.json", plan.dir / "train_loss.png")
    result["logged"] = is_logged(plan) and live is None  # (a live run must be finished)
    if log and not result["logged"]:
        try:
            log_trial(plan, node)
            result["logged"] = True
        except TrackingError as e:
            print(f"[memlab] {plan.name}: results on disk ({plan.dir}), NOT logged to MLflow: "
                  f"{e}", file=sys.stderr, flush=True)
    return result


def _live_run(plan: TrialPlan, tags: dict) -> LiveRun | None:
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


def is_logged(plan: TrialPlan) -> bool:
    """Its result.json, as it is now, is in an MLflow run at the sweep's tracking URI."""
    marker, result = plan.dir / LOGGED, plan.dir / "result.json"
    if not (marker.is_file() and result.is_file()):
        return False
    done = json.loads(marker.read_text())
    return done.get("uri") == plan.tracking.uri and done.get("result") == file_sha256(result)


def log_trial(plan: TrialPlan, tags: dict | None = None) -> str:
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
    # what the strategy's setup did that the config does not say
    run.log_params({f"train.{k}": v for k, v in man.items()
                    if k in ("head_untied", "lora_targets")})
    metrics = {k: v for k, v in result["metrics"].items() if _finite(v)}
    threshold = cfg.score.headline_threshold
    run.log_metrics({**metrics, **desk.headline_metrics(metrics, threshold)})
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
                                            and cfg.train.strategy == "lora"):
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


def log_text(cfg) -> bool:
    """tracking.log_text resolved: auto is on for the demo corpus only."""
    t = cfg.tracking.log_text
    return t == "on" or (t == "auto" and cfg.data.source == "demo")


def write_examples(plan: TrialPlan, per_split: int = 10) -> Path:
    """The trial's generations most similar to their true suffix (members and non-members,
    `per_split` each), with their scores: `examples.jsonl` in the trial's folder."""
    import pyarrow.parquet as pq

    def rows_of(folder: Path, wanted: tuple[str, ...]) -> list[dict]:
        out = []
        for f in sorted(folder.glob("part-*.parquet")):
            names = pq.read_schema(f).names
            out += pq.read_table(f, columns=[c for c in wanted if c in names]).to_pylist()
        return out

    gen = {r["sample_id"]: r for r in rows_of(plan.stage("gen"), (
        "sample_id", "doc_id", "split", "dup_count", "gen_text", "suffix_text"))}
    scores = rows_of(plan.stage("score"), ("sample_id", "sim_to_source", "plag_label",
                                           "exact_extracted"))
    rows = [{**gen[s["sample_id"]], **s} for s in scores if s["sample_id"] in gen]
    rows.sort(key=lambda r: (-(r.get("sim_to_source") or 0.0), r["sample_id"]))
    out = plan.dir / "examples.jsonl"
    picked = [r for split in ("member", "nonmember")
              for r in [x for x in rows if x["split"] == split][:per_split]]
    out.write_text("".join(json.dumps(r, default=str) + "\n" for r in picked))
    return out


def _write_if_changed(obj: dict, path: Path) -> None:
    if not (path.is_file() and json.loads(path.read_text()) == json.loads(json.dumps(obj))):
        write_json_atomic(obj, path)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


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

    logging.basicConfig(level=os.environ.get("MEMLAB_LOG", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    result = run_trial(plans[tune_config["trial_key"]])
    m = result["metrics"]
    shown = {k: v for k, v in m.items()
             if k in HEADLINE or (k.startswith("exact_pct/") and _finite(v))}
    tune.report({**{k.replace("/", "."): v for k, v in shown.items()},
                 "logged": int(result["logged"]), "trial_s": time.time() - t0})


HEADLINE = ("train_time_s", "trainable_params", "final_loss", "heldout_ppl")
