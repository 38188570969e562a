"""memlab command line: validate | plan | run | report | examples | submit | plagiarism.

This module and everything it imports at the top stays free of torch, ray, transformers and
mlflow, so `validate` and `plan` answer in well under a second. `run` imports the heavy
machinery inside the function. Every command's --help says what it does, its options'
defaults and the files it writes (ABOUT), so that a newcomer needs no source to find out.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path

import memlab
from memlab.config.errors import DataError
from memlab.config.expand import Study, load_study
from memlab.config.labels import dup_label, model_label
from memlab.config.load import ConfigError
from memlab.config.paths import shown
from memlab.config.placement import selectors
from memlab.strategies import STRATEGIES
from memlab.tracking.mlflow_log import TrackingError

EXIT_CONFIG = 2
log = logging.getLogger("memlab.cli")  # (not __name__: `python -m memlab.cli` runs it as __main__)


def _load(args: argparse.Namespace) -> Study:
    return load_study(args.file, args.set, getattr(args, "only", []))


def _subset(study: Study) -> str:
    return f" ({study.subset})" if study.only else ""


def cmd_validate(args: argparse.Namespace) -> int:
    study = _load(args)
    subset = f"; {study.subset}" if study.only else ""
    print(f"{args.file}: ok ({len(study.trials)} trials{subset})")
    print(study.defaults)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from memlab.sweep.plan import dp_label, gpu_hours, misfits

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
    dp = any(t.config.train.dp.on for t in study.trials)  # (a column only where DP is)
    for t, est in zip(study.trials, ests):
        rows.append(_plan_row(t, est, pools) + ([dp_label(t.config)] if dp else []))
    total = sum(gpu_hours(t.config, est) for t, est in zip(study.trials, ests) if est)
    print(f"sweep '{study.name}': {len(study.trials)} trials{_subset(study)} -> "
          f"{shown(study.root)}/<trial_key>/")
    print(study.defaults)
    print(tabulate(rows, headers=["trial_key", "strategy", "model", "dup_counts", "seed", "cpu",
                                  "gpu", "steps", "params", "trainable", "train GiB/GPU",
                                  "gen GiB", "GPU-h", "CPU min"] + (["dp"] if dp else []),
                   disable_numparse=True, colalign=["left"] * 5 + ["right"] * 9 + ["left"] * dp))
    print(f"estimated GPU-hours: {total:.1f} (at {args.tflops:g} effective TFLOP/s per GPU; "
          "'?' = model shape (or the strategy's memory) unknown offline, '-' = no GPU reserved)")
    if dp:
        print("dp: DP fine-tuning's target epsilon, delta, per-sample clipping norm C and each "
              "sequence's chance q of being in a step's Poisson-sampled batch; the train stage "
              "asks Opacus's accountant for the noise multiplier that reaches epsilon over the "
              "trial's steps; train GiB/GPU holds the per-sample gradients "
              "(memlab/sweep/plan.py)")
    _print_cpu_time(study, ests)
    for model, n, cpus, gpus, *rest in pools:  # (one pool per distinct actor spec)
        each = "; on nodes of several GPUs that many on each GPU (attack.warm_gpus)" \
            if gpus and rest[-2] == "each" else ""
        print(f"warm pool for {model}: {n} actor(s) of {cpus:g} CPU"
              f"{f', {gpus:g} GPU' if gpus else ''} each, held for the whole sweep "
              f"(attack.warm: they serve every trial's generate, base and score stages){each}")
    _print_models(study, ests)
    if any(t.config.data.format in ("instruction", "chat") for t in study.trials):
        print("note: for instruction and chat data the prompt before the response is not "
              "counted (its length is known only once tokenized): generation memory and "
              "GPU-hours of those trials are lower bounds")
    if problems:
        raise ConfigError(problems)
    return 0


def _print_cpu_time(study: Study, ests: list) -> None:
    """The rough time of the trials that reserve no GPU, labelled as the estimate it is."""
    from memlab.sweep.plan import CPU_GFLOPS_PER_CORE, caps

    cpu = [est for t, est in zip(study.trials, ests) if caps(t.config) == (None, None)]
    if not cpu:
        return
    known = [est["cpu_hours"] for est in cpu if est]
    total = f"{_minutes(sum(known))} min" if len(known) == len(cpu) else "? min"
    print(f"estimated time on CPU: {total} for {len(cpu)} trial(s) without a GPU, one after "
          f"another (an estimate: their training and generation FLOPs at "
          f"{CPU_GFLOPS_PER_CORE:g} GFLOP/s per torch thread, the rate the demo's trials "
          "trained at on a 2-core x86 CPU; start-up, scoring and Ray's own work come on top)")


def _minutes(hours: float) -> str:
    """A rough time in minutes, as rough as it is: '~12', '<1'."""
    return "<1" if hours * 60 < 1 else f"~{hours * 60:.0f}"


def _plan_row(t, est: dict | None, pools: dict) -> list:
    """A trial's row of `memlab plan`; its warm pool (if any) added to `pools`."""
    from memlab.report.tables import human
    from memlab.stages.warm import warm_on
    from memlab.sweep.plan import caps, model_shape, sized_shares, train_steps

    c, res = t.config, t.config.reserved
    mem = lambda v: "?" if v is None else f"{v:.1f}"  # noqa: E731
    shown = ["?"] * 4 if est is None else [
        f"{est['params_m']:.1f}M", "?" if est["trainable"] is None else human(est["trainable"]),
        mem(est["train_mem_gib"]), mem(est["gen_mem_gib"])]
    on_gpu = any(x is not None for x in caps(c))
    gpu_h = f"{est['gpu_hours']:.2f}" if est is not None and on_gpu else "-"
    cpu_min = "-" if on_gpu else "?" if est is None else _minutes(est["cpu_hours"])
    per = f"{res.workers}x" if res.workers > 1 else ""  # (per Ray Train worker)
    gpu = f"{per}{res.gpu:g}"
    sized = sized_shares(c, model_shape(c)) if est is not None else c
    if c.resources.gpu_share == "memory" and est is not None:  # what the trial reserves
        gpu = f"{per}{sized.reserved.gpu:g}+{c.attack.actors}x{sized.attack.actor_gpus:g}"
    if warm_on(c):  # its actors are the sweep's pool's
        gpu = f"{per}{sized.reserved.gpu:g}"
        a = sized.attack
        pools[(model_label(c), a.actors, a.actor_cpus, a.actor_gpus, c.train.precision,
               a.engine, a.batch_size, a.warm_models, a.warm_gpus,
               tuple(sorted(selectors(c)["actors"].items())))] = None
    return [t.key, c.train.strategy, model_label(c), dup_label(c), c.seed, f"{per}{res.cpu:g}",
            gpu, train_steps(c), *shown, gpu_h, cpu_min]


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
    print("what each strategy trains: " + "; ".join(
        f"{s}: {STRATEGIES[s].doc}" for s in strategies))


def _refuse_misfits(study: Study) -> None:
    """Exit 2 before launching trials whose memory estimate does not fit their GPUs."""
    from memlab.sweep.plan import misfits

    problems = misfits(study)[1]
    if problems:
        raise ConfigError(problems)


def cmd_run(args: argparse.Namespace) -> int:
    from memlab.sweep.run import one_run_at_a_time, placed_or_refused, run_sweep

    study = _load(args)
    log.info(study.defaults)
    if study.only:
        log.info(f"{study.subset}: {len(study.trials)} trial(s) of the grid")
    _refuse_misfits(study)
    placed_or_refused(study, args.cluster)  # before the sweep's folder, runs or trials
    with one_run_at_a_time(study):
        return run_sweep(study, tracking_uri=args.tracking_uri)


def cmd_report(args: argparse.Namespace) -> int:
    from memlab.report.render import build_report

    study = _load(args)
    report = build_report(study)
    if report is None:
        raise ConfigError([_none_finished(study)])
    print(report.text)
    return 0


def _none_finished(study: Study) -> str:
    """Why a report or examples has nothing to show: no finished trial has this study's keys;
    what did finish under the runs root (other sweeps, or this sweep under other settings)."""
    from memlab.io.paths import finished_trials, runs_root

    root = runs_root(study.base)
    found = finished_trials(study.base)
    if not found:
        return (f"sweep.runs_root: no finished trial under {root} (of any sweep): run the "
                f"study first (memlab run {study.path}), or name the runs root it ran in "
                "(--set sweep.runs_root=...)")
    mine = found.pop(study.name, [])
    said = (f"{len(mine)} finished trial(s) of sweep '{study.name}' there have other keys (other "
            "settings or --set than this study's); " if mine else "")
    others = "; ".join(f"sweep '{name}': {len(keys)} trial(s)" for name, keys in found.items())
    return (f"sweep.name: no finished trial of this study (sweep '{study.name}', "
            f"{len(study.trials)} trial(s)) under {root}; {said}"
            f"{'finished there: ' + others if others else 'no other sweep finished there'}")


def cmd_examples(args: argparse.Namespace) -> int:
    from memlab.report.examples import format_examples, most_leaked

    study = _load(args)
    if args.top < 1:
        raise ConfigError([f"--top {args.top}: must be at least 1"])
    rows, read = most_leaked(study, args.top, args.split)
    if not read:
        raise ConfigError([_none_finished(study)])
    print(f"The {len(rows)} most-leaked {args.split} generation(s) of sweep '{study.name}' "
          f"({read} finished trial(s), read from {study.root} and the stage shards under "
          "the runs root; exact extraction, then token match, then similarity):\n")
    print(format_examples(rows) if rows else "(no generations)")
    return 0


def cmd_plagiarism(args: argparse.Namespace) -> int:
    """Type a file of texts against a corpus file. Every setting is checked as a study's is
    (memlab/config/expand.py: types, ranges, relations) and the judge is loaded before an
    index is built or a file written, so a mistake costs seconds and one line."""
    from memlab.config.expand import plagiarism_settings
    from memlab.config.ranges import INF, outside

    section = plagiarism_settings(args.set, args.method)
    problems = []
    if why := outside(args.batch_size, (1, True, INF, False)):  # (texts per batch: >= 1)
        problems.append(f"--batch-size: {why}")
    for path, what in ((args.corpus, "--corpus"), (args.generated, "--generated"),
                       (args.out, "--out")):
        if not path.endswith((".jsonl", ".json", ".parquet")):
            problems.append(f"{what} {path}: expected a .jsonl or .parquet file")
    for path, what in ((args.corpus, "--corpus"), (args.generated, "--generated")):
        if not os.path.isfile(path):
            problems.append(f"{what} {path}: no such file")
    if args.index_dir is not None and Path(args.index_dir).exists() \
            and not Path(args.index_dir).is_dir():
        problems.append(f"--index-dir {args.index_dir}: not a folder")
    if problems:
        raise ConfigError(problems)
    from memlab.scoring.plagiarism.files import JudgeError, type_file

    try:
        counts = type_file(args.corpus, args.generated, args.out, section, args.batch_size,
                           args.index_dir, (args.id_column, args.text_column),
                           (args.generated_id_column, args.generated_text_column))
    except JudgeError as e:
        said = next((f"--set {s}" for s in reversed(args.set)
                     if s.split("=", 1)[0].removeprefix("score.plagiarism.") == "judge"),
                    f"score.plagiarism.judge {section.judge}")
        raise ConfigError([f"{said}: {e}"]) from None
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
    entry += [a for o in args.only for a in ("--only", o)]
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


WRITES_RUN = """\
  <runs_root>/stages/<stage>/<key>/  each stage's output (data, train, gen, base,
                                     score), shared by every trial and sweep there
  <runs_root>/<sweep>/<trial_key>/   each trial's record: config.json, result.json
  <runs_root>/<sweep>/results.*      the report (as `memlab report` writes it)
  <runs_root>/<sweep>/samples/       one row per sample of every trial (Parquet; README)
  <runs_root>/<sweep>/_tune/         Ray Tune's own state
  <runs_root>/mlflow.db, mlartifacts/
                                     the MLflow store (unless --tracking-uri or
                                     tracking.uri names another)
runs_root is sweep.runs_root (default: runs), read from the folder of the file that sets it
(the repository's sweeps/_defaults.yaml: ../runs); sweep is sweep.name."""

# Per command: (one line for `memlab --help`, what it does, what it writes where).
ABOUT = {
    "validate": (
        "check a study file; exit 2 on any problem",
        "Load the study (its file merged over _defaults.yaml, then each --set), expand its grid "
        "and check every trial: unknown keys, values out of range, relations between fields, "
        "paths on disk. Each problem is one line naming the key and the file:line it came "
        "from; exit 2 if there is any. No torch, no Ray: it answers in about a second.",
        "nothing."),
    "plan": (
        "print the trials with their resources, steps, memory and time; refuse a grid that "
        "cannot fit",
        "Print every trial of the study with what it reserves (CPUs, GPUs), its optimizer "
        "steps, its memory per GPU, GPU-hours (trials with a GPU) or a rough time on CPU "
        "(trials without: an estimate at a measured rate, memlab/sweep/plan.py), then per base "
        "model each strategy's training memory against what it reserves. Exit 2 if a trial "
        "cannot fit the GPUs the config describes or, with --address / --cluster, no node of "
        "the cluster can place it. Nothing runs.",
        "nothing."),
    "run": (
        "run every trial: train -> generate -> score -> report, logged to MLflow",
        "Run the study: datasets and base models are prepared once, then each trial trains, "
        "generates (the extraction attack) and scores on Ray Tune; the report is printed and "
        "written, and every trial logged to MLflow. Each stage's output is kept under the key "
        "of what it computes: a rerun, or another study under the same runs root, reuses what "
        "is done (a trial with every stage done is only recorded). Ends with the command that "
        "opens the MLflow UI. Exit 1 if a trial failed or is not logged.",
        WRITES_RUN),
    "report": (
        "print and write the results tables of the study's finished trials",
        "Aggregate the study's finished trials over seeds and print the results tables "
        "(extraction, plagiarism typing, membership inference, utility, the most leaked "
        "documents): what `memlab run` prints at its end, without computing anything. "
        "Exit 2 if no finished trial has this study's keys (another runs root, other "
        "settings or --set), saying which sweeps did finish under the runs root.",
        "<runs_root>/<sweep>/results.csv, results.md, results.html, results.png, scale.png, "
        "roc.png, frontier.png (replaced); samples/, one row per sample of every finished "
        "trial (the files of trials added or rescored since); runs_root is sweep.runs_root "
        "(default: runs)."),
    "examples": (
        "show the sweep's most-leaked generations next to their true suffix",
        "Print the most-leaked generations of the study's finished trials: each with its "
        "trial, strategy, document and copies in the training stream (dup), similarity to the "
        "true suffix, exact extraction, token match and plagiarism label, then the generation "
        "above the true suffix; ranked by exact extraction, then token match, then similarity. "
        "It reads the local runs folder only (the stage shards under sweep.runs_root), never "
        "MLflow: it works whatever tracking.log_text says (off keeps text out of MLflow, not "
        "out of the runs folder). It prints training text to this terminal.",
        "nothing."),
    "submit": (
        "submit a sweep to a Ray cluster as a Ray Job",
        "Check the study here (a bad study is refused now, not minutes later on the cluster), "
        "then submit `memlab run` (or plan / validate) of it to a Ray cluster as a Ray Job.",
        "nothing here; the job writes what `memlab run` writes, where sweep.runs_root points "
        "on the cluster."),
    "plagiarism": (
        "type generated texts against a corpus: verbatim, paraphrase, idea or none",
        "Type each generated text against a corpus: verbatim, paraphrase, idea or none, with "
        "the same code as the sweep's scoring (memlab/scoring/PLAGIARISM.md) and its settings "
        "(score.plagiarism in memlab/config/schema.py, checked as in a study).",
        """
  --out        one row per generated text, columns (null where not applicable):
                 id, label, doc_id     the text, its type, the corpus document found
                 gen_span, doc_span    [start, end) in characters, in the text and in the
                                       document
                 gen_chars, doc_chars  the spans' lengths in characters (idea: gen_chars
                                       >= idea_ratio x doc_chars, or, semantic, the
                                       text adds idea_added x doc_chars)
                 run_chars             verbatim: the longest common word run, in characters
                                       (verbatim when > verbatim_chars)
                 judge_score           paraphrase: the judge's highest score in its window
                                       (embedding judge: a cosine)
  --index-dir  the corpus index, <corpus file>.index-<key>/ and its .lock file (default: the
               corpus's folder): a copy of the corpus's texts, their sentences' stems and a
               BM25 index (method semantic: each sentence's embedding), reused while the
               corpus and the index settings stay the same. It is derived from the corpus:
               keep it where the corpus may be kept."""),
}


class _Help(argparse.HelpFormatter):
    """Help that wraps each paragraph on its own, keeps indented lines (lists of files) as
    written, and shows every option's default that is not spelled out in its help."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            if para.startswith(" ") or "\n " in para:
                out.append(textwrap.indent(para, indent))
            else:
                out.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and "%(default)" not in text and "default:" not in text
                and action.default is not None and action.default is not False
                and action.default != [] and action.default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _command(sub, name: str, fn) -> argparse.ArgumentParser:
    """A subcommand with its line, its description and the files it writes (ABOUT)."""
    line, what, writes = ABOUT[name]
    sep = "\n" if writes.startswith(" ") else " "
    sp = sub.add_parser(name, help=line, description=what, epilog=f"writes:{sep}{writes}",
                        formatter_class=_Help)
    sp.set_defaults(fn=fn)
    return sp


def _study_cmd(sub, name: str, fn) -> argparse.ArgumentParser:
    sp = _command(sub, name, fn)
    sp.add_argument("file", help="study YAML (merged over _defaults.yaml)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted override, e.g. --set train.epochs=2 (repeatable); a grid axis "
                    "whole: --set 'grid.seed=[0, 1]'. A relative path given here is read from "
                    "the working directory (those in a study file from the file's folder)")
    return sp


def _only_option(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sp.add_argument("--only", action="append", default=[], metavar="AXIS=VALUE",
                    help="only the grid cells with this value of a grid axis, written as the "
                    "grid writes it (a bundle: its label), e.g. --only train.strategy=lora "
                    "--only seed=0; repeatable: values of one axis add up, different axes "
                    "narrow")
    return sp


def _cluster_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--cluster", default=None, metavar="FILE",
                    help="the cluster's launcher or KubeRay file (cluster/): its node types "
                    "count as nodes (an autoscaler starts them on demand); refuse placements "
                    "(resources.<strategy>.labels, GPUs per trial) no node offers")


def _run_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--tracking-uri", default=None,
                    help="MLflow tracking URI (default: tracking.uri, else the SQLite file "
                    "<runs_root>/mlflow.db; a relative store given here is read from the "
                    "working directory)")
    sp.add_argument("--resume", action="store_true",
                    help="continue an interrupted sweep: finished stages are reused, finished "
                    "trials only logged (what every run does; the flag states the intent in "
                    "scripts)")
    _cluster_option(sp)


def _plagiarism_cmd(sub) -> None:
    pl = _command(sub, "plagiarism", cmd_plagiarism)
    pl.add_argument("--corpus", required=True, help="JSONL or Parquet: one document a row")
    pl.add_argument("--id-column", default="doc_id", metavar="COL",
                    help="the corpus's document id column")
    pl.add_argument("--text-column", default="text", metavar="COL",
                    help="the corpus's text column")
    pl.add_argument("--generated", required=True, help="JSONL or Parquet: one text a row")
    pl.add_argument("--generated-id-column", default="id", metavar="COL",
                    help="the generated file's id column")
    pl.add_argument("--generated-text-column", default="text", metavar="COL",
                    help="the generated file's text column")
    pl.add_argument("--out", required=True, help="JSONL or Parquet to write (columns below)")
    pl.add_argument("--index-dir", default=None, metavar="DIR",
                    help="where the corpus index is written and reused (default: the "
                    "corpus's folder; below)")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a score.plagiarism field, e.g. --set n_candidates=20 (repeatable; "
                    "defaults: memlab/config/schema.py, PlagiarismSection)")
    pl.add_argument("--batch-size", type=int, default=64, help="texts typed per batch, >= 1")
    pl.add_argument("--method", choices=("pan2014", "semantic"), default=None,
                    help="pan2014: the published pipeline (the default); semantic: also by "
                    "sentence embeddings (score.plagiarism.method)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memlab", formatter_class=_Help,
        description="memlab measures how much a language model memorizes its fine-tuning "
        "data: a study file (sweeps/*.yaml) names a grid of fine-tuning strategies, models, "
        "duplication and seeds; `memlab run` trains, attacks and scores each trial and "
        "reports. Start with `memlab validate` and `memlab plan` on a study (they run nothing).",
        epilog="`memlab COMMAND --help` says what a command does, its options and their "
        "defaults, and the files it writes. Example: memlab run sweeps/quickstart.yaml (the "
        "offline CPU demo).")
    p.add_argument("--version", action="version", version=f"memlab {memlab.__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", title="commands")
    _only_option(_study_cmd(sub, "validate", cmd_validate))
    plan = _only_option(_study_cmd(sub, "plan", cmd_plan))
    plan.add_argument("--tflops", type=float, default=300.0,
                      help="effective TFLOP/s per GPU for the GPU-hours estimate")
    plan.add_argument("--address", default=None,
                      help="a running Ray cluster (default: $RAY_ADDRESS): refuse placements "
                      "its nodes do not offer")
    _cluster_option(plan)
    _run_options(_only_option(_study_cmd(sub, "run", cmd_run)))
    _only_option(_study_cmd(sub, "report", cmd_report))
    ex = _only_option(_study_cmd(sub, "examples", cmd_examples))
    ex.add_argument("--top", type=int, default=10, help="how many generations to show")
    ex.add_argument("--split", choices=("member", "nonmember", "all"), default="member",
                    help="whose generations: members (trained on), non-members (the floor)")
    sb = _only_option(_study_cmd(sub, "submit", cmd_submit))
    sb.add_argument("--address", required=True,
                    help="the cluster's job server, e.g. http://head:8265")
    sb.add_argument("--command", choices=["run", "plan", "validate"], default="run",
                    help="what the job runs (plan: check the grid against the cluster)")
    _run_options(sb)
    sb.add_argument("--runtime-env", default=None,
                    help="Ray runtime_env YAML (default: cluster/runtime_env.yaml if present)")
    sb.add_argument("--job-id", default=None, help="submission id (default: Ray's)")
    sb.add_argument("--wait", action="store_true", help="stream the job's logs until it ends")
    _plagiarism_cmd(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:  # `memlab` alone: what it can do, not "argument cmd is required"
        parser.print_help()
        return 0
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
