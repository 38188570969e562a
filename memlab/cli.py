"""memlab command line: validate | plan | run | report | submit | plagiarism.

This module and everything it imports at the top stays free of torch, ray, transformers and
mlflow, so `validate` and `plan` answer in well under a second. `run` imports the heavy
machinery inside the function.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from memlab.config.errors import DataError
from memlab.config.expand import Study, load_study
from memlab.config.labels import dup_label, model_label
from memlab.config.load import ConfigError
from memlab.config.placement import selectors
from memlab.strategies import STRATEGIES
from memlab.tracking.mlflow_log import TrackingError

EXIT_CONFIG = 2


def _load(args: argparse.Namespace) -> Study:
    return load_study(args.file, args.set)


def cmd_validate(args: argparse.Namespace) -> int:
    study = _load(args)
    print(f"{args.file}: ok ({len(study.trials)} trials)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from memlab.sweep.plan import gpu_hours, misfits

    study = _load(args)
    ests, problems = misfits(study, args.tflops)
    address = args.address or os.environ.get("RAY_ADDRESS")
    if address or args.cluster:  # the cluster the study is meant for: can it place it?
        from memlab.sweep.cluster import check

        try:
            check(study, address, args.cluster)
        except ConfigError as e:
            problems = e.problems + problems
    rows, pools = [], {}
    for t, est in zip(study.trials, ests):
        rows.append(_plan_row(t, est, pools))
    total = sum(gpu_hours(t.config, est) for t, est in zip(study.trials, ests) if est)
    print(f"sweep '{study.name}': {len(study.trials)} trials -> {study.root}/<trial_key>/")
    print(tabulate(rows, headers=["trial_key", "strategy", "model", "dup_counts", "seed", "cpu",
                                  "gpu", "params", "train GiB/GPU", "gen GiB", "GPU-h"],
                   disable_numparse=True, colalign=["left"] * 5 + ["right"] * 6))
    print(f"estimated GPU-hours: {total:.1f} (at {args.tflops:g} effective TFLOP/s per GPU; "
          "'?' = model shape (or the strategy's memory) unknown offline, '-' = no GPU reserved)")
    for model, n, cpus, gpus, *_ in pools:  # (one pool per distinct actor spec)
        print(f"warm pool for {model}: {n} actor(s) of {cpus:g} CPU"
              f"{f', {gpus:g} GPU' if gpus else ''} each, held for the whole sweep "
              "(attack.warm: they serve every trial's generate, base and score stages)")
    _print_models(study, ests)
    if any(t.config.data.format in ("instruction", "chat") for t in study.trials):
        print("note: for instruction and chat data the prompt before the response is not "
              "counted (its length is known only once tokenized): generation memory and "
              "GPU-hours of those trials are lower bounds")
    if problems:
        raise ConfigError(problems)
    return 0


def _plan_row(t, est: dict | None, pools: dict) -> list:
    """A trial's row of `memlab plan`; its warm pool (if any) added to `pools`."""
    from memlab.stages.warm import warm_on
    from memlab.sweep.plan import caps, model_shape, sized_shares

    c, res = t.config, t.config.reserved
    mem = lambda v: "?" if v is None else f"{v:.1f}"  # noqa: E731
    shown = ["?"] * 3 if est is None else [f"{est['params_m']:.1f}M",
                                           mem(est["train_mem_gib"]), mem(est["gen_mem_gib"])]
    gpu_h = f"{est['gpu_hours']:.2f}" if est is not None and any(
        x is not None for x in caps(c)) else "-"
    per = f"{res.workers}x" if res.workers > 1 else ""  # (per Ray Train worker)
    gpu = f"{per}{res.gpu:g}"
    sized = sized_shares(c, model_shape(c)) if est is not None else c
    if c.resources.gpu_share == "memory" and est is not None:  # what the trial reserves
        gpu = f"{per}{sized.reserved.gpu:g}+{c.attack.actors}x{sized.attack.actor_gpus:g}"
    if warm_on(c):  # its actors are the sweep's pool's
        gpu = f"{per}{sized.reserved.gpu:g}"
        a = sized.attack
        pools[(model_label(c), a.actors, a.actor_cpus, a.actor_gpus, c.train.precision,
               a.engine, a.batch_size, a.warm_models,
               tuple(sorted(selectors(c)["actors"].items())))] = None
    return [t.key, c.train.strategy, model_label(c), dup_label(c), c.seed, f"{per}{res.cpu:g}",
            gpu, *shown, gpu_h]


def _print_models(study: Study, ests: list) -> None:
    """Per base model: training memory per GPU of each strategy against its reservation."""
    from tabulate import tabulate

    from memlab.sweep.plan import by_model

    models = by_model(study, ests)
    strategies = [s for s in STRATEGIES if any(s in m["fits"] for m in models)]  # (in order)

    def fit(f: dict | None) -> str:
        if f is None or f["mem"] is None:
            return "?"
        how = f" ({f['engine']})" if f["engine"] is not None else ""
        if f["cap"] is None:
            return f"{f['mem']:.1f}{how} no GPU"
        return f"{f['mem']:.1f}/{f['cap']:g}{how} {'fits' if f['mem'] <= f['cap'] else 'NO'}"

    rows = [[m["model"], "?" if m["params_m"] is None else f"{m['params_m']:.1f}M",
             *(fit(m["fits"].get(s)) for s in strategies), fit(m.get("gen")), m["trials"],
             f"{m['gpu_hours']:.1f}"] for m in models]
    print("\nper model: GiB per GPU (largest trial) / GiB reserved")
    print(tabulate(rows, headers=["model", "params", *strategies, "generation actor", "trials",
                                  "GPU-h"],
                   disable_numparse=True))
    print("\nwhat each model is (the report's title line says the same; parameters: the "
          "model's as loaded, counted from its shape)")
    for m in models:
        count = f"; {m['params']:,} parameters" if m["params"] else ""
        print(f"  {m['model']}: {m['origin']}{count}")


def _refuse_misfits(study: Study) -> None:
    """Exit 2 before launching trials whose memory estimate does not fit their GPUs."""
    from memlab.sweep.plan import misfits

    problems = misfits(study)[1]
    if problems:
        raise ConfigError(problems)


def cmd_run(args: argparse.Namespace) -> int:
    from memlab.sweep.run import one_run_at_a_time, placed_or_refused, run_sweep

    study = _load(args)
    _refuse_misfits(study)
    placed_or_refused(study, args.cluster)  # before the sweep's folder, runs or trials
    with one_run_at_a_time(study):
        return run_sweep(study, tracking_uri=args.tracking_uri)


def cmd_report(args: argparse.Namespace) -> int:
    from memlab.report.render import write_report

    study = _load(args)
    print(write_report(study))
    return 0


def cmd_plagiarism(args: argparse.Namespace) -> int:
    from memlab.config.load import _check_value, leaf_type, parse_override
    from memlab.config.schema import PlagiarismSection

    section = PlagiarismSection(method=args.method)
    for item in args.set:
        key, value = parse_override(item)
        try:
            tp = leaf_type(f"score.plagiarism.{key}")
            *parents, leaf = key.split(".")
            owner = section
            for name in parents:  # e.g. semantic.seed
                owner = getattr(owner, name)
            setattr(owner, leaf, _check_value(tp, value, key))
        except KeyError:
            raise ConfigError([f"--set {key}: unknown key (see score.plagiarism in "
                               "memlab/config/schema.py)"]) from None
        except TypeError as e:
            raise ConfigError([f"--set {key}: {e}"]) from None
    for path, what in ((args.corpus, "--corpus"), (args.generated, "--generated"),
                       (args.out, "--out")):
        if not path.endswith((".jsonl", ".json", ".parquet")):
            raise ConfigError([f"{what} {path}: expected a .jsonl or .parquet file"])
    for path, what in ((args.corpus, "--corpus"), (args.generated, "--generated")):
        if not os.path.isfile(path):
            raise ConfigError([f"{what} {path}: no such file"])
    if section.method == "semantic" and section.judge_kind != "embedding":
        raise ConfigError(["--method semantic: needs judge_kind=embedding (it seeds and "
                           "retrieves by the judge's sentence embeddings)"])
    from memlab.scoring.plagiarism.files import type_file

    try:
        counts = type_file(args.corpus, args.generated, args.out, section, args.batch_size)
    except ValueError as e:
        raise ConfigError([str(e)]) from None
    print(f"{args.out}: {counts['texts']} texts typed: " +
          ", ".join(f"{lab} {counts[lab]}" for lab in ("verbatim", "paraphrase", "idea", "none")))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit `memlab <command> FILE ...` to a Ray cluster as a Ray Job."""
    import shlex
    import time

    import yaml

    study = _load(args)  # refuse a bad study here, not minutes later on the cluster
    if args.command == "run":
        _refuse_misfits(study)
    from memlab.sweep.cluster import check

    check(study, args.address, args.cluster)  # placements no node of the cluster offers
    env_file = args.runtime_env
    if env_file is None and Path("cluster/runtime_env.yaml").is_file():
        env_file = "cluster/runtime_env.yaml"
    runtime_env = yaml.safe_load(Path(env_file).read_text()) if env_file else {}
    entry = ["memlab", args.command, args.file] + [a for s in args.set for a in ("--set", s)]
    if args.command == "run":
        entry += (["--resume"] if args.resume else []) + \
            (["--tracking-uri", args.tracking_uri] if args.tracking_uri else [])
    if args.cluster and args.command in ("run", "plan"):
        entry += ["--cluster", args.cluster]
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(args.address)
    deadline = time.time() + 300
    while True:  # a cluster that has just started (or a loaded head) may have no job agent yet
        try:
            job = client.submit_job(entrypoint=shlex.join(entry), runtime_env=runtime_env,
                                    submission_id=args.job_id,
                                    metadata={"memlab.sweep": study.name,
                                              "memlab.file": args.file})
            break
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.time() > deadline:
                raise
            time.sleep(2)
    print(f"[memlab] submitted {job}: {shlex.join(entry)}")
    if not args.wait:
        print(f"[memlab] follow it with: ray job logs -f {job} --address {args.address}")
        return 0
    import asyncio

    async def follow() -> None:
        async for chunk in client.tail_job_logs(job):
            print(chunk, end="", flush=True)

    asyncio.run(follow())
    status = client.get_job_status(job)
    print(f"[memlab] job {job}: {status}")
    return 0 if status == JobStatus.SUCCEEDED else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memlab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def study_cmd(name: str, fn, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("file", help="study YAML (merged over _defaults.yaml)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. --set train.epochs=2 (repeatable)")
        sp.set_defaults(fn=fn)
        return sp

    def cluster_option(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cluster", default=None, metavar="FILE",
                        help="the cluster's launcher or KubeRay file (cluster/): its node "
                        "types count as nodes (an autoscaler starts them on demand); refuse "
                        "placements (resources.<strategy>.labels, GPUs per trial) no node "
                        "offers")

    study_cmd("validate", cmd_validate, "check a study file; exit 2 on any problem")
    plan = study_cmd("plan", cmd_plan, "print the trials of a study with their resources, "
                     "memory per GPU and GPU-hours; refuse a grid that cannot fit")
    plan.add_argument("--tflops", type=float, default=300.0,
                      help="effective TFLOP/s per GPU for the GPU-hours estimate")
    plan.add_argument("--address", default=None,
                      help="a running Ray cluster (default: $RAY_ADDRESS): refuse placements "
                      "its nodes do not offer")
    cluster_option(plan)
    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: SQLite file under the runs root)")
        sp.add_argument("--resume", action="store_true",
                        help="continue an interrupted sweep: finished stages are reused, "
                        "finished trials only logged (what every run does; the flag states "
                        "the intent in scripts)")
        cluster_option(sp)

    run_options(study_cmd("run", cmd_run, "run every trial: train -> generate -> score -> "
                          "report"))
    study_cmd("report", cmd_report, "print and write the results table of finished trials")
    sb = study_cmd("submit", cmd_submit, "submit a sweep to a Ray cluster as a Ray Job")
    sb.add_argument("--address", required=True,
                    help="the cluster's job server, e.g. http://head:8265")
    sb.add_argument("--command", choices=["run", "plan", "validate"], default="run",
                    help="what the job runs (plan: check the grid against the cluster)")
    run_options(sb)
    sb.add_argument("--runtime-env", default=None,
                    help="Ray runtime_env YAML (default: cluster/runtime_env.yaml if present)")
    sb.add_argument("--job-id", default=None, help="submission id (default: Ray's)")
    sb.add_argument("--wait", action="store_true", help="stream the job's logs until it ends")
    pl = sub.add_parser("plagiarism", help="type generated texts against a corpus: verbatim, "
                        "paraphrase, idea or none (same code as the sweep's scoring)")
    pl.add_argument("--corpus", required=True, help="JSONL or Parquet with doc_id, text")
    pl.add_argument("--generated", required=True, help="JSONL or Parquet with id, text")
    pl.add_argument("--out", required=True, help="JSONL or Parquet: id, label, doc_id, "
                    "gen_span, doc_span, score")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a score.plagiarism field, e.g. --set n_candidates=20")
    pl.add_argument("--batch-size", type=int, default=64, help="texts per batch")
    pl.add_argument("--method", choices=("pan2014", "semantic"), default="pan2014",
                    help="pan2014: the published pipeline (default); semantic: also by sentence "
                    "embeddings (score.plagiarism.method)")
    pl.set_defaults(fn=cmd_plagiarism)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ConfigError as e:
        for line in e.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except DataError as e:
        print(f"error: data: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except TrackingError as e:
        print(f"error: tracking: {e}; the sweep did not start (start the server, or pass "
              "--tracking-uri)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
