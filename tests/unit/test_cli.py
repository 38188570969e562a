"""Issue 32, part 4: a command line that explains itself. Each test is one finding of a
newcomer's first hour: `memlab` alone, --version, each command's help (what it does, its
defaults, what it writes where), the printed MLflow command, `report` with nothing to report,
`plan` on a CPU, and the most-leaked generations read back from the local files."""

import os
import shlex
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlab import __version__
from memlab.cli import build_parser, main
from memlab.config.expand import load_study
from memlab.io.paths import stage_dir, trial_dir
from tests.conftest import ROOT, SWEEPS

QUICK, SMOKE = SWEEPS / "quickstart.yaml", SWEEPS / "smoke.yaml"


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "memlab.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_version():
    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"memlab {__version__}"


def test_memlab_alone_prints_the_usage_and_every_command():
    r = cli()
    assert r.returncode == 0, r.stderr
    assert "required" not in r.stdout + r.stderr
    assert r.stdout.startswith("usage: memlab")
    for command in ("validate", "plan", "run", "report", "examples", "submit", "plagiarism"):
        assert f"\n    {command}" in r.stdout, command
    assert "memlab COMMAND --help" in r.stdout


def _subcommands() -> dict:
    import argparse

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_every_command_has_a_description_and_says_what_it_writes():
    commands = _subcommands()
    assert set(commands) >= {"validate", "plan", "run", "report", "submit", "plagiarism"}
    for name, sp in commands.items():
        assert sp.description and len(sp.description) > 80, name
        assert sp.epilog and sp.epilog.startswith("writes:"), name
    run, report, plag = (" ".join(commands[n].format_help().split())
                         for n in ("run", "report", "plagiarism"))
    for where in ("<runs_root>/stages/<stage>/<key>/ each stage's output",
                  "<runs_root>/<sweep>/<trial_key>/ each trial's record",
                  "<runs_root>/<sweep>/results.* the report", "<runs_root>/mlflow.db",
                  "sweep.runs_root (default: runs)"):
        assert where in run, where
    assert "results.csv, results.md, results.html, results.png, scale.png" in report
    assert "--out" in plag.split("writes:")[1] and "index" in plag.split("writes:")[1]


def test_help_shows_the_defaults():
    r = cli("plan", "--help")
    assert r.returncode == 0
    assert "(default: 300.0)" in r.stdout  # --tflops
    assert "(default: $RAY_ADDRESS)" in r.stdout
    plag = cli("plagiarism", "--help").stdout
    assert "(default: 64)" in plag and "pan2014: the published pipeline (the default)" in plag
    run = cli("run", "--help").stdout
    assert "writes:" in run and "<runs_root>/mlflow.db" in run


def test_the_printed_mlflow_command_runs_from_any_directory(tmp_path, monkeypatch, capsys):
    """`memlab run` ends with the `mlflow ui` command: as printed, it must run from another
    folder and with a PATH that lacks the virtualenv (it printed `.venv/bin/mlflow` relative
    to where the sweep ran, or a bare `mlflow`)."""
    import memlab.report.render
    import memlab.tracking.trials
    from memlab.sweep import run
    from memlab.tracking.trials import Tracking

    runs = tmp_path / "runs"
    study = load_study(SMOKE, [f"sweep.runs_root={runs}"])
    uri = f"sqlite:///{runs}/mlflow.db"
    monkeypatch.setattr(run, "open_tracking", lambda *a: Tracking(uri, "1", "p", 0))
    monkeypatch.setattr(run, "prepare", lambda *a: [])
    monkeypatch.setattr(run, "finish_here", lambda plans: 0)
    monkeypatch.setattr(memlab.report.render, "write_report", lambda s: "(the report)")
    monkeypatch.setattr(memlab.tracking.trials, "log_pending", lambda plans: [])
    monkeypatch.setattr(memlab.tracking.trials, "log_sweep_summary", lambda *a: None)
    monkeypatch.chdir(ROOT)  # (where `make demo` runs it)
    assert run.run_sweep(study) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if " ui --backend-store-uri" in x]
    argv = shlex.split(line)
    assert argv[argv.index("--backend-store-uri") + 1] == uri
    exe = argv[:argv.index("ui")]
    assert os.path.isabs(exe[0]) and os.access(exe[0], os.X_OK), line
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    r = subprocess.run([*exe, "--version"], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120)
    assert r.returncode == 0 and "version" in r.stdout, r.stderr[-2000:]


def _finished(path, trial_key):
    path.joinpath(trial_key).mkdir(parents=True)
    path.joinpath(trial_key, "result.json").write_text("{}")


def test_report_with_no_matching_trial_exits_2_and_says_what_finished(tmp_path, capsys):
    runs = tmp_path / "runs"
    sets = ["--set", f"sweep.runs_root={runs}"]
    assert main(["report", str(SMOKE), *sets]) == 2  # nothing at all under the runs root
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: sweep.runs_root: no finished trial")
    assert str(runs) in err[0] and "memlab run" in err[0]
    _finished(runs / "smoke", "0123456789ab")  # this sweep under other settings
    _finished(runs / "quickstart", "5a0362c71a3c")
    _finished(runs / "quickstart", "455cc7b313a1")
    assert main(["report", str(SMOKE), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: sweep.name: no finished trial"), err
    assert "1 finished trial(s) of sweep 'smoke' there have other keys" in err[0]
    assert "sweep 'quickstart': 2 trial(s)" in err[0]
    assert not (runs / "smoke" / "results.csv").exists()


def test_plan_on_cpu_gives_steps_and_an_estimated_time():
    """The demo reserves no GPU: its plan said '-' for time. Steps: 24 members in thirds x 2,
    8 and 32 copies = 336 sequences / batch 8 = 42; the time an estimate, labelled so."""
    r = cli("plan", str(QUICK))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header, *rows = lines[next(i for i, x in enumerate(lines) if x.startswith("trial_key")):]
    cols = header.split()
    assert "steps" in cols and "CPU" in cols
    study = load_study(QUICK, [])
    for t in study.trials:
        (row,) = [x for x in rows if x.startswith(t.key)]
        assert " 42 " in row
        minutes = row.split()[-1]
        assert minutes.startswith("~") and 1 <= int(minutes[1:]) <= 10, row
    line = [x for x in r.stdout.splitlines() if x.startswith("estimated time on CPU:")]
    assert line and "an estimate" in line[0] and "GFLOP/s per torch thread" in line[0]


def _fake_trial(t, samples: list[dict]) -> None:
    """A finished trial's files as a sweep leaves them: result.json, its generation and score
    shards (the columns `memlab examples` reads)."""
    _finished(trial_dir(t.config, t.key).parent, t.key)
    gen, score = stage_dir(t.config, "gen", t.keys.gen), stage_dir(t.config, "score", t.key)
    gen.mkdir(parents=True)
    score.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{k: s[k] for k in (
        "sample_id", "doc_id", "split", "dup_count", "gen_text", "suffix_text")}
        for s in samples]), gen / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist([{k: s[k] for k in (
        "sample_id", "exact_extracted", "token_match_frac", "sim_to_source", "plag_label",
        "plag_doc_id")} for s in samples]), score / "part-00000.parquet")


def _sample(i, split, exact, match, sim, label="none"):
    return {"sample_id": f"d{i}#0", "doc_id": f"d{i}", "split": split,
            "dup_count": 4 if split == "member" else 0, "gen_text": f"generated words {i}",
            "suffix_text": f"true suffix {i}", "exact_extracted": exact,
            "token_match_frac": match, "sim_to_source": sim, "plag_label": label,
            "plag_doc_id": f"d{i}" if label != "none" else None}


def test_examples_shows_the_most_leaked_generations_from_the_local_files(tmp_path, capsys):
    """tracking.log_text off (what local and hub data get): no generation reaches MLflow;
    `memlab examples` reads them back from the runs folder, most leaked first."""
    sets = [f"sweep.runs_root={tmp_path / 'runs'}", "tracking.log_text=off"]
    study = load_study(SMOKE, sets)
    full, head = study.trials[0], study.trials[1]
    _fake_trial(full, [_sample(1, "member", False, 0.5, 0.9), _sample(2, "member", True, 1.0,
                       0.99, "verbatim"), _sample(3, "nonmember", False, 0.1, 0.95)])
    _fake_trial(head, [_sample(4, "member", False, 0.75, 0.3)])
    args = ["examples", str(SMOKE), *(a for s in sets for a in ("--set", s))]
    assert main([*args, "--top", "3"]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n#")[1:]
    assert [b.split(" ", 1)[0] for b in blocks] == ["1", "2", "3"]
    first, second, third = blocks
    assert f"trial {full.name} ({full.key}), strategy full" in first
    assert "member d2, dup 4: similarity 0.990, exact yes, match 100%, plagiarism verbatim " \
        "of d2" in first
    assert "generated  generated words 2" in first and "true       true suffix 2" in first
    assert f"trial {head.name}" in second and "match 75%" in second
    assert "d1" in third and "d3" not in out  # members only, by default
    assert "read from" in out and "stage shards" in out
    assert main([*args, "--split", "nonmember"]) == 0
    assert "nonmember d3" in capsys.readouterr().out


def test_examples_with_nothing_finished_exits_2(tmp_path, capsys):
    assert main(["examples", str(SMOKE), "--set", f"sweep.runs_root={tmp_path}"]) == 2
    assert capsys.readouterr().err.startswith("error: sweep.runs_root: no finished trial")


@pytest.mark.parametrize("top", ["0", "-3"])
def test_examples_refuses_a_top_below_one(tmp_path, top):
    r = cli("examples", str(SMOKE), "--set", f"sweep.runs_root={tmp_path}", "--top", top)
    assert r.returncode == 2 and r.stderr.strip() == f"error: --top {top}: must be at least 1"


def test_examples_help_says_it_reads_the_local_runs_folder_only():
    text = _subcommands()["examples"].description
    assert "local runs folder only" in text and "tracking.log_text" in text
