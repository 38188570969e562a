"""The sweep driver: prepare what trials share (datasets, base models, the MLflow experiment)
once, run one Ray Tune trial per grid cell with the resources of its strategy, then report."""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from pathlib import Path

from memlab.cli import dup_label, model_label
from memlab.config.expand import Study
from memlab.config.load import to_dict
from memlab.config.schema import StudyConfig
from memlab.io.paths import artifact_root, data_key, dataset_dir, default_tracking_uri

log = logging.getLogger("memlab")


FULL_DRIVER_CPU = 0.1
"""What the process of a `full` trial reserves: it only waits for its Ray Train workers
(which reserve resources.full.* each, in a placement group of their own) and then drives the
generation and scoring actors, which are scheduled when they start, after training."""


def trial_resources(cfg: StudyConfig) -> tuple[list[dict], list[dict]]:
    """The Tune trial's placement-group bundles and their label selectors.

    head / lora: the trial process (it trains), then one bundle per generation / scoring actor
    (Ray Data work launched by the trial is scheduled inside the trial's placement group).
    full: the trial process only (FULL_DRIVER_CPU): its workers and actors are reserved when
    they start, so full trials waiting for workers hold almost nothing (no deadlock between
    trials holding actor bundles and workers waiting for them)."""
    res = getattr(cfg.resources, cfg.train.strategy)
    if cfg.train.strategy == "full":
        bundles = [{"CPU": FULL_DRIVER_CPU}]
    else:
        a = cfg.attack
        actor = {"CPU": a.actor_cpus, **({"GPU": a.actor_gpus} if a.actor_gpus else {})}
        bundles = [{"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu else {})}]
        bundles += [actor] * a.actors
    return bundles, [dict(res.labels) for _ in bundles]


def _absolute(cfg: StudyConfig) -> StudyConfig:
    """Trials run in other processes (and nodes): make every path absolute."""
    cfg = copy.deepcopy(cfg)
    absolute = lambda p: str(Path(p).expanduser().resolve())  # noqa: E731
    cfg.sweep.runs_root = absolute(cfg.sweep.runs_root)
    cfg.model.cache_dir = absolute(cfg.model.cache_dir)
    if cfg.data.path:
        cfg.data.path = absolute(cfg.data.path)
    if cfg.model.source == "gguf" and cfg.model.name:
        cfg.model.name = absolute(cfg.model.name)
    if Path(cfg.score.embedder).expanduser().exists():
        cfg.score.embedder = absolute(cfg.score.embedder)
    if cfg.tracking.uri:
        cfg.tracking.uri = _absolute_uri(cfg.tracking.uri)
    return cfg


def _absolute_uri(uri: str) -> str:
    """A relative SQLite or file store would land in each trial's own working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return str(Path(uri).expanduser().resolve())
    return uri


def prepare(study: Study, tracking_uri: str | None) -> list[dict]:
    """Datasets and base models once per distinct config; the experiment; trial payloads."""
    from memlab.components.data import build_dataset, read_dataset
    from memlab.components.models import prepare_base_model
    from memlab.tracking.mlflow_log import ensure_experiment, provenance, sweep_run

    datasets: dict[str, dict] = {}
    models: dict[str, dict] = {}
    payloads = []
    base = _absolute(study.base)
    uri = _absolute_uri(tracking_uri or base.tracking.uri or default_tracking_uri(base))
    exp_name = base.tracking.experiment or base.sweep.name
    local_store = uri.startswith("sqlite:") or "://" not in uri
    exp_id = ensure_experiment(uri, exp_name, str(artifact_root(base)) if local_store else None)
    prov = provenance(Path(__file__).resolve().parent)
    parent = sweep_run(uri, exp_id, base.sweep.name, params=sweep_params(study),
                       tags={**prov, "trials": str(len(study.trials))})
    for trial in study.trials:
        cfg = _absolute(trial.config)
        dkey = data_key(cfg)
        if dkey not in datasets:
            print(f"[memlab] dataset {dkey}: building shards ...", flush=True)
            man = build_dataset(cfg.data, dataset_dir(cfg))
            datasets[dkey] = man
        mkey = repr((to_dict(cfg)["model"], dkey if cfg.model.source == "tiny" else None))
        if mkey not in models:
            print(f"[memlab] base model {model_label(cfg)}: preparing ...", flush=True)
            texts = ([r["text"] for r in read_dataset(dataset_dir(cfg))]
                     if cfg.model.source == "tiny" else None)
            models[mkey] = prepare_base_model(cfg.model, texts, seed=cfg.data.seed)
        model = models[mkey]
        tags = {**prov, "strategy": cfg.train.strategy, "sweep": cfg.sweep.name,
                "model": model_label(cfg), "dup_counts": dup_label(cfg),
                "data_key": dkey, "data_sha256": datasets[dkey]["sha256"],
                "data_source": datasets[dkey]["source_ref"],
                **{f"model.{k}": v for k, v in model["identity"].items()}}
        payloads.append({"key": trial.key, "name": trial.name, "point": trial.point,
                         "config": to_dict(cfg), "data_dir": str(dataset_dir(cfg)),
                         "base_model": model["path"], "model_label": model_label(cfg),
                         "tracking_uri": uri, "experiment_id": exp_id, "tags": tags,
                         "parent_run_id": parent.run_id})
    return payloads


def sweep_params(study: Study) -> dict:
    """What the parent run records once: the grid and the config the trials share."""
    from memlab.config.load import flatten

    grid = study.grid or {}
    shared = {k: v for k, v in flatten(to_dict(study.base)).items() if k not in grid}
    return {**{f"grid.{k}": json.dumps(v) for k, v in grid.items()}, **shared}


def log_sweep_summary(payloads: list[dict], root: Path, failed: int, secs: float) -> None:
    """Sweep-level results on the parent run: the summary table (CSV/MD) and plot, counts."""
    from memlab.tracking.mlflow_log import TrackedRun

    p = payloads[0]
    run = TrackedRun(p["tracking_uri"], p["parent_run_id"])
    for name in ("results.csv", "results.md", "results.png"):
        if (root / name).is_file():
            run.log_artifact(root / name, "summary")
    done = sum((root / q["key"] / "result.json").is_file() for q in payloads)
    run.log_metrics({"trials_finished": done, "trials_failed": failed, "sweep_minutes":
                     secs / 60})
    run.finish(ok=done == len(payloads) and not failed)


def _init_ray() -> None:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        # the dashboard serves the State API Ray Train's placement-group cleaner relies on
        local = {} if address else {"include_dashboard": True, "dashboard_host": "127.0.0.1",
                                    "dashboard_port": None}
        try:
            ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING,
                     **local)
        except Exception as e:  # a Ray without its dashboard packages (ray, not ray[default])
            if "dashboard" not in str(e):
                raise
            ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)


def run_tune(study: Study, payloads: list[dict], resume: bool) -> int:
    """Run the trials; return how many failed."""
    from ray import tune

    from memlab.sweep.trial import tune_trainable

    by_key = {p["key"]: p for p in payloads}
    names = {p["key"]: p["name"] for p in payloads}
    requests = {}
    for t in study.trials:
        bundles, labels = trial_resources(t.config)
        requests[t.key] = tune.PlacementGroupFactory(
            bundles, strategy="PACK",
            **({"bundle_label_selector": labels} if any(labels) else {}))
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, payloads=by_key),
        resources=lambda spec: requests[spec["trial_key"]])
    storage = str(Path(payloads[0]["config"]["sweep"]["runs_root"]) / study.name / "_tune")
    path = os.path.join(storage, "tune")
    keys_file = Path(storage) / "trial_keys.json"
    same_grid = keys_file.is_file() and json.loads(keys_file.read_text()) == sorted(by_key)
    if resume and same_grid and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        # A fresh Tune run; finished trials still skip every finished stage (manifests).
        keys_file.parent.mkdir(parents=True, exist_ok=True)
        keys_file.write_text(json.dumps(sorted(by_key)))
        name_of = lambda trial: names[trial.config["trial_key"]]  # noqa: E731
        tuner = tune.Tuner(
            trainable,
            param_space={"trial_key": tune.grid_search(list(by_key))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=study.base.sweep.max_concurrent_trials or None,
                trial_name_creator=name_of, trial_dirname_creator=name_of),
            run_config=tune.RunConfig(name="tune", storage_path=storage, verbose=1,
                                      failure_config=tune.FailureConfig(
                                          max_failures=study.base.sweep.max_failures)),
        )
    failed = 0
    for r in tuner.fit():
        if r.error is not None:
            failed += 1
            print(f"[memlab] trial failed: {r.error}", file=sys.stderr)
    return failed


def run_sweep(study: Study, tracking_uri: str | None = None, resume: bool = False) -> int:
    from memlab.stages.report import write_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.time()
    print(f"[memlab] sweep '{study.name}': {len(study.trials)} trials", flush=True)
    payloads = prepare(study, tracking_uri)
    print(f"[memlab] prepared in {time.time() - start:.0f} s; starting Ray Tune", flush=True)
    _init_ray()
    failed = run_tune(study, payloads, resume)
    report = write_report(study)
    print(report)
    root = Path(payloads[0]["config"]["sweep"]["runs_root"]) / study.name
    log_sweep_summary(payloads, root, failed, time.time() - start)
    uri = payloads[0]["tracking_uri"]
    print(f"\n[memlab] sweep finished in {(time.time() - start) / 60:.1f} min")
    print("[memlab] open the MLflow UI with:")
    if uri.startswith("sqlite:"):
        mlflow = Path(sys.executable).parent / "mlflow"
        exe = os.path.relpath(mlflow) if mlflow.is_relative_to(Path.cwd()) else "mlflow"
        print(f"    {exe} ui --backend-store-uri {uri} --port 5000")
        print("  then browse http://127.0.0.1:5000")
    else:
        print(f"    browse {uri}")
    missing = [t.key for t in study.trials if not (root / t.key / "result.json").is_file()]
    if missing or failed:
        print(f"[memlab] {max(len(missing), failed)} trial(s) did not finish: "
              f"{', '.join(missing)}", file=sys.stderr)
        return 1
    return 0

