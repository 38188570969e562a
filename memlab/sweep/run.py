"""The sweep driver: prepare what trials share (datasets, base models, the MLflow experiment)
once, run one Ray Tune trial per grid cell with the resources of its strategy, report, and log
to MLflow whatever finished but is not logged yet."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from memlab.config.expand import Study, bundle_keys
from memlab.config.keys import resolved, under
from memlab.config.labels import dup_label, model_label
from memlab.config.load import flatten, to_dict
from memlab.config.paths import absolute_uri
from memlab.config.placement import selectors
from memlab.config.schema import StudyConfig
from memlab.io.paths import artifact_root, default_tracking_uri, stage_dir, sweep_root
from memlab.sweep.plan import model_shape, sized_shares
from memlab.sweep.trial import TrialPlan, stages_done
from memlab.tracking.trials import Tracking, dp_tags

log = logging.getLogger(__name__)


FULL_DRIVER_CPU = 0.1
"""What the process of a `full` trial under DeepSpeed reserves: it only waits for its Ray
Train workers (which reserve resources.full.* each, in a placement group of their own) and
then drives the generation and scoring actors, which are scheduled when they start, after
training."""


def trial_resources(cfg: StudyConfig) -> tuple[list[dict], list[dict]]:
    """The Tune trial's placement-group bundles and their label selectors (the trial's, then
    its actors': memlab/config/placement.py).

    head / lora, and full on one GPU (plain torch): the trial process (it trains), then one
    bundle per generation / scoring actor (Ray Data work launched by the trial is scheduled
    inside the trial's placement group); with warm pools (attack.warm) the trial process only:
    the pool's actors hold their own resources for the whole sweep. full under DeepSpeed:
    the trial process only (FULL_DRIVER_CPU): its workers and actors are reserved when they
    start, so full trials waiting for workers hold almost nothing (no deadlock between trials
    holding actor bundles and workers waiting for them)."""
    from memlab.stages.warm import warm_on

    res = cfg.reserved
    if resolved(cfg)["train_engine"] == "deepspeed":
        bundles = [{"CPU": FULL_DRIVER_CPU}]
    elif warm_on(cfg):  # its stages run on the sweep's warm actors (memlab/stages/warm.py)
        bundles = [{"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu else {})}]
    else:
        a = cfg.attack
        actor = {"CPU": a.actor_cpus, **({"GPU": a.actor_gpus} if a.actor_gpus else {})}
        bundles = [{"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu else {})}]
        bundles += [actor] * a.actors
    sel = selectors(cfg)
    return bundles, [sel["trial"]] + [sel["actors"]] * (len(bundles) - 1)


def spread_shares(plans: list[TrialPlan], max_at_once: int) -> dict[str, float]:
    """resources.gpu_spread=spread on nodes of several GPUs: trial key -> the GPU fraction its
    trial process reserves. Ray gives a fraction to the fullest GPU it fits on, so trials of
    0.15 GPU would all share GPU 0 of a node of 4; each reserves instead at least 1/k of what
    the warm pools leave of a GPU (less what its own actors' bundles take), k the trials per
    GPU when the trials that run at once (`max_at_once`; 0: all) are spread evenly over the
    GPUs of the nodes they may use, less those the largest trial of whole GPUs needs (full
    fine-tuning's workers: so that it can still start). Trials without a GPU fraction, and
    nodes of one GPU, keep their own (Ray then still puts the k trials of a GPU together, the
    first GPU first)."""
    from memlab.stages.warm import gpu_nodes, pools_per_gpu

    gpu = [p for p in plans if p.config.resources.gpu_spread == "spread"
           and 0 < trial_resources(p.config)[0][0].get("GPU", 0) < 1]
    if not gpu:
        return {}
    pool = pools_per_gpu([(p.config, p.base_model) for p in plans])
    at_once = min(len(gpu), max_at_once or len(gpu))
    whole = max((r.workers * r.gpu for r in (p.config.reserved for p in plans) if r.gpu >= 1),
                default=0)
    out, seen = {}, {}
    for p in gpu:
        sel = selectors(p.config)["trial"]
        if (key := repr(sorted(sel.items()))) not in seen:
            seen[key] = gpu_nodes(sel)
        nodes = seen[key]
        if max(nodes.values(), default=0) < 2:
            continue
        k = -(-at_once // max(1, sum(nodes.values()) - int(whole)))
        bundles = trial_resources(p.config)[0]
        own = bundles[0]["GPU"]
        extra = sum(b.get("GPU", 0) for b in bundles) - own
        out[p.key] = max(own, int((1 - pool) / k * 1e4) / 1e4 - extra)  # (Ray's 1e-4 steps)
    return out


def trial_requests(plans: list[TrialPlan], max_at_once: int) -> dict:
    """trial key -> the Tune placement-group factory of its trial: trial_resources, its GPU
    fraction spread over the GPUs of a node (spread_shares)."""
    from ray import tune

    shares = spread_shares(plans, max_at_once)
    requests = {}
    for p in plans:
        bundles, labels = trial_resources(p.config)
        if p.key in shares:
            bundles[0] = {**bundles[0], "GPU": shares[p.key]}
        requests[p.key] = tune.PlacementGroupFactory(
            bundles, strategy="PACK",
            **({"bundle_label_selector": labels} if any(labels) else {}))
    return requests


def open_tracking(study: Study, tracking_uri: str | None) -> Tracking:
    """The sweep's experiment and parent run (TrackingError if MLflow cannot be reached:
    nothing has been computed yet, so the sweep stops before it starts)."""
    from memlab.tracking.mlflow_log import Client, ensure_experiment, provenance, sweep_run

    base = study.base  # (its paths made absolute when the study was loaded)
    uri = base.tracking.uri or default_tracking_uri(base)
    if tracking_uri:  # --tracking-uri: a relative store is read from the working directory
        uri = absolute_uri(tracking_uri, Path.cwd())
    client = Client(uri, base.tracking.retry_s)
    local_store = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    exp_id = ensure_experiment(client, base.tracking.experiment or base.sweep.name,
                               str(artifact_root(base)) if local_store else None)
    parent = sweep_run(client, exp_id, base.sweep.name, params=sweep_params(study),
                       tags={**provenance(Path(__file__).resolve().parent),
                             "trials": str(len(study.trials))})
    return Tracking(uri, exp_id, parent.run_id, base.tracking.retry_s)


def prepare(study: Study, tracking: Tracking) -> list[TrialPlan]:
    """Datasets and base models once per distinct config; the trials' typed plans."""
    from memlab.components.data import read_dataset
    from memlab.components.models import prepare_base_model
    from memlab.stages.data import build_dataset
    from memlab.tracking.mlflow_log import provenance

    datasets: dict[str, dict] = {}
    models: dict[str, dict] = {}
    prov = provenance(Path(__file__).resolve().parent)
    plans: list[TrialPlan] = []
    for trial in study.trials:
        cfg, keys = copy.deepcopy(trial.config), trial.keys  # (paths absolute since load)
        if cfg.resources.gpu_share == "memory":  # GPU fractions sized to the plan's estimates
            cfg = sized_shares(cfg, model_shape(cfg))
        if keys.trial in {p.key for p in plans}:  # the same trial by another config spelling
            continue
        data_dir = stage_dir(cfg, "data", keys.data)
        if keys.data not in datasets:
            datasets[keys.data] = build_dataset(cfg.data, data_dir, keys.data)
            log.info(f"dataset {keys.data}: {datasets[keys.data]['rows']} documents in "
                     f"{data_dir}")
        mkey = repr((to_dict(cfg)["model"], keys.data if cfg.model.source == "tiny" else None))
        if mkey not in models:
            log.info(f"base model {model_label(cfg)}: preparing ...")
            texts = ([r["text"] for r in read_dataset(data_dir)]
                     if cfg.model.source == "tiny" else None)
            models[mkey] = prepare_base_model(cfg.model, texts, seed=cfg.data.seed)
        model, data = models[mkey], datasets[keys.data]
        tags = {**prov, "strategy": cfg.train.strategy, "sweep": cfg.sweep.name,
                "model": model_label(cfg), "dup_factor": cfg.data.dup_factor, "seed": cfg.seed,
                "dup_counts": dup_label(cfg), **dp_tags(cfg),
                "data_sha256": data["sha256"], "data_source": data["source_ref"],
                **{f"model.{k}": v for k, v in model["identity"].items()}}
        plans.append(TrialPlan(config=cfg, keys=keys, name=trial.name, point=trial.point,
                               base_model=model["path"], model_label=model_label(cfg),
                               tracking=tracking, tags=tags))
    return plans


def sweep_params(study: Study) -> dict:
    """What the parent run records once: the grid and the config the trials share."""
    grid = study.grid or {}
    varied = set(grid) | bundle_keys(study)
    shared = {k: v for k, v in flatten(to_dict(study.base)).items() if not under(k, varied)}
    return {**{f"grid.{k}": json.dumps(v, default=vars) for k, v in grid.items()}, **shared}


def _init_ray() -> None:
    """Start (or join) Ray; what its workers print reaches this terminal without the lines
    known to be harmless (memlab/io/noise.py)."""
    import ray

    from memlab.io import noise

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
    noise.quiet_warnings()  # (again: importing ray put its own filters first)
    noise.quiet_ray_driver()


def finish_here(plans: list[TrialPlan]) -> int:
    """Trials whose stages are all done need no Ray trial: their records are written and
    logged in this process (a rerun of a finished sweep, a new sweep over finished work).
    Returns how many failed."""
    from memlab.sweep.trial import run_trial

    failed, to_mlflow = 0, True
    for p in plans:
        try:
            logged = run_trial(p, to_mlflow)["logged"]
            to_mlflow = to_mlflow and logged  # after one failure MLflow is down: stop trying
        except Exception as e:  # noqa: BLE001  (one trial's failure is reported, not fatal)
            failed += 1
            log.warning(f"trial {p.name} failed: {e!r}")
    return failed


def start_order(plans: list[TrialPlan], order: str) -> list[TrialPlan]:
    """The order Tune starts the trials in (sweep.order): `interleave` takes one trial of each
    strategy in turn (each strategy's in the grid's order), so trials that run at once differ
    in what bounds them (a full fine-tuning's optimizer step, a head-only trial's generation);
    `grid` keeps the grid's order. Which trial runs when changes no result: each is keyed by
    its config."""
    if order == "grid":
        return list(plans)
    by_strategy: dict[str, list[TrialPlan]] = {}
    for p in plans:
        by_strategy.setdefault(p.config.train.strategy, []).append(p)
    queues = list(by_strategy.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues
            if i < len(q)]


def pools_leave_whole_gpus(plans: list[TrialPlan]) -> None:
    """A warm pool with actors on every GPU (attack.warm_gpus: each) leaves no GPU whole, and
    Ray starts a bundle that asks for a whole GPU (a full fine-tuning worker of resources.full
    .gpu: 1) only on a GPU nothing else holds: with such a trial in the sweep, the pools are
    placed as Ray places them (warm_gpus: ray, which fills one GPU first), with one line."""
    from memlab.stages.warm import pools_per_gpu

    if not any(b.get("GPU", 0) >= 1 for p in plans for b in trial_resources(p.config)[0]):
        return
    if pools_per_gpu([(p.config, p.base_model) for p in plans]) > 0:
        log.warning("attack.warm_gpus: each would put warm pool actors on every GPU, and a "
                    "trial of this sweep needs a whole GPU: the pools are placed as Ray "
                    "places them (attack.warm_gpus: ray)")
        for p in plans:
            p.config.attack.warm_gpus = "ray"


def run_tune(study: Study, plans: list[TrialPlan]) -> int:
    """Run the trials on Ray Tune; return how many failed. Each run is a fresh Tune run over
    the trials that still have work: what an interrupted run finished is reused through the
    stage store, not through Tune's own state."""
    from ray import tune

    from memlab.stages.warm import start_warm_pools, stop_warm_pools, warm_on, warm_pools_fit
    from memlab.sweep.trial import tune_trainable

    if any(warm_on(p.config) for p in plans):
        pools_leave_whole_gpus(plans)
        why = warm_pools_fit([(p.config, p.base_model) for p in plans],
                        [trial_resources(p.config)[0] for p in plans])
        if why:
            log.warning(f"attack.warm: no warm pools for this sweep ({why}); each trial "
                        "starts its own actors")
            for p in plans:
                p.config.attack.warm = "off"
    by_key = {p.key: p for p in start_order(plans, study.base.sweep.order)}
    requests = trial_requests(plans, study.base.sweep.max_concurrent_trials)
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, plans=by_key),
        resources=lambda spec: requests[spec["trial_key"]])
    name_of = lambda trial: by_key[trial.config["trial_key"]].name  # noqa: E731
    tuner = tune.Tuner(
        trainable,
        param_space={"trial_key": tune.grid_search(list(by_key))},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=study.base.sweep.max_concurrent_trials or None,
            trial_name_creator=name_of, trial_dirname_creator=name_of),
        run_config=tune.RunConfig(name="tune", verbose=1,
                                  storage_path=str(sweep_root(plans[0].config) / "_tune"),
                                  failure_config=tune.FailureConfig(
                                      max_failures=study.base.sweep.max_failures)),
    )
    failed = 0
    pools = start_warm_pools([(p.config, p.base_model) for p in plans])
    try:
        for r in tuner.fit():
            if r.error is not None:
                failed += 1
                log.warning(f"trial failed: {r.error}")
    finally:
        stop_warm_pools(pools)
    return failed


@contextlib.contextmanager
def one_run_at_a_time(study: Study):
    """Hold the sweep folder's run lock (a file lock: NFSv4 / Lustre / a local disk) while the
    sweep runs; a second `memlab run` of the same sweep and runs root is refused (exit 2)."""
    import socket

    from filelock import FileLock, Timeout

    from memlab.config.load import ConfigError

    folder = sweep_root(study.base)
    folder.mkdir(parents=True, exist_ok=True)
    lock, holder = FileLock(str(folder / ".run.lock")), folder / ".run.holder"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        for _ in range(20):  # (the holder writes its name right after it takes the lock)
            if holder.is_file() and holder.read_text().strip():
                break
            time.sleep(0.1)
        who = holder.read_text().strip() if holder.is_file() else "another process"
        raise ConfigError([f"sweep.name: sweep '{study.name}' is already running in "
                           f"{folder} ({who}); wait for it to finish, or give this run "
                           "another sweep.name or sweep.runs_root"]) from None
    try:
        holder.write_text(f"memlab run, pid {os.getpid()} on {socket.gethostname()}, since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def placed_or_refused(study: Study, cluster_file: str | None) -> None:
    """Before anything starts: refuse (ConfigError, exit 2) a study whose unfinished trials or
    their actors ask for node labels, or more GPUs or CPUs, than the Ray cluster's nodes (and
    `cluster_file`'s node types) offer, where Ray would wait for ever. Finished trials (a
    rerun that only logs and reports) need no Ray and are not checked. Connects to Ray only
    where there is something to check: a cluster (RAY_ADDRESS), labels or GPUs."""
    from memlab.config.load import ConfigError
    from memlab.sweep.cluster import check

    address = os.environ.get("RAY_ADDRESS")
    if cluster_file and not address:
        raise ConfigError([f"--cluster {cluster_file}: names the nodes of a cluster, but "
                           "RAY_ADDRESS is not set, so Ray would start on this machine (on "
                           "the cluster's head: RAY_ADDRESS=auto)"])
    todo = dataclasses.replace(study, trials=[
        t for t in study.trials if not (study.root / t.key / "result.json").is_file()])
    asks = any(any(selectors(t.config).values()) or t.config.reserved.gpu > 0
               or t.config.attack.actor_gpus > 0 for t in todo.trials)
    if todo.trials and (address or asks):
        _init_ray()
        check(todo, address, cluster_file, connected=True)


def mlflow_ui_command(uri: str, port: int = 5000) -> str:
    """`mlflow ui` of a local store, runnable as printed from any directory and shell: the
    absolute path of the mlflow next to this Python (a virtualenv's is on no PATH), else
    this Python's `-m mlflow`; never a path relative to where the sweep ran."""
    import shlex

    python = Path(os.path.abspath(sys.executable))
    exe = python.parent / "mlflow"
    cmd = [str(exe)] if os.access(exe, os.X_OK) else [str(python), "-m", "mlflow"]
    return shlex.join([*cmd, "ui", "--backend-store-uri", uri, "--port", str(port)])


def run_sweep(study: Study, tracking_uri: str | None = None) -> int:
    from memlab.report.render import DYNAMICS, FILES, write_report
    from memlab.tracking.mlflow_log import TrackingError, redact
    from memlab.tracking.trials import log_pending, log_sweep_summary

    start = time.time()
    log.info(f"sweep '{study.name}': {len(study.trials)} trials")
    tracking = open_tracking(study, tracking_uri)
    try:
        plans = prepare(study, tracking)
    except Exception:  # (e.g. a data defect, said in one line): the sweep's run ends FAILED
        from memlab.tracking.mlflow_log import Client, TrackedRun

        with contextlib.suppress(TrackingError):
            TrackedRun(Client(tracking.uri, 0), tracking.parent_run_id).finish(ok=False)
        raise
    done = [p for p in plans if stages_done(p)]
    todo = [p for p in plans if p not in done]
    log.info(f"prepared in {time.time() - start:.0f} s; {len(done)} trial(s) with every stage "
             f"done (recorded here), {len(todo)} to run on Ray Tune")
    failed = finish_here(done)
    if todo:
        _init_ray()
        failed += run_tune(study, todo)
    print(write_report(study))
    unlogged = log_pending(plans)
    root = sweep_root(study.base)
    try:
        log_sweep_summary(tracking, [root / f for f in (*FILES, *DYNAMICS)], study.base.tracking,
                          failed, time.time() - start, plans,
                          sum((root / t.key / "result.json").is_file() for t in study.trials),
                          len(study.trials))
    except TrackingError as e:
        log.warning(f"the sweep's summary is not in MLflow: {e}")
    from memlab.io.noise import said_once
    from memlab.tracking.desk import runs_url

    uri = tracking.uri
    if hidden := said_once():
        log.info(hidden)
    log.info(f"sweep finished in {(time.time() - start) / 60:.1f} min")
    print("\nOpen the MLflow UI with:")  # (the command's output, as the report is)
    if uri.startswith("sqlite:"):
        print(f"    {mlflow_ui_command(uri)}")
        print(f"  then browse {runs_url('http://127.0.0.1:5000', tracking.experiment_id)}")
    else:
        print(f"    browse {runs_url(redact(uri), tracking.experiment_id)}")
    missing = [p.name for p in plans if not (p.dir / "result.json").is_file()]
    if unlogged:
        log.warning(f"{len(unlogged)} trial(s) finished but are not logged to MLflow at "
                    f"{redact(uri)}: {', '.join(p.name for p in unlogged)}. Their results are on "
                    "disk; with MLflow reachable again, `memlab run <study> --resume` logs them "
                    "(no stage is rerun).")
    if missing or failed:
        log.warning(f"{max(len(missing), failed)} trial(s) did not finish: "
                    f"{', '.join(missing)}")
    return 1 if missing or failed or unlogged else 0
