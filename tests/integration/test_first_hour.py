"""Issue 32, acceptance 2: a newcomer's first hour, from a directory that is neither the
repository nor the study's folder. The README's first commands (`memlab`, `--version`,
`validate` and `plan` of the demo study), then a study of the newcomer's own data (50
instruction records and 50 chat records written here, one trial each; a study file in a
folder of its own with no _defaults.yaml above it): validate, plan, a mistake caught before
anything runs, run (LoRA on the tiny model), report, examples."""

import json
import subprocess

import pytest

from tests.conftest import ROOT, SWEEPS
from tests.integration.conftest import memlab_exe

STUDY = """\
description: my own records, LoRA on a tiny model
sweep: {name: mine}
data:
  source: local
  num_members: 20
  num_nonmembers: 20
  dup_mix: [1, 4]
  shard_rows: 64
model: {source: tiny}
train: {strategy: lora, seq_len: 64, batch_size: 4, loss_on: response}
attack: {prefix_tokens: 8, suffix_tokens: 16, max_new_tokens: 16, batch_size: 8}
resources: {lora: {cpu: 1}}
tracking: {log_text: off}
grid:
  dataset:                     # paths read from this file's folder
    - {label: qa, data.path: data/qa.jsonl, data.format: instruction,
       data.columns: {instruction: question, output: answer, id: uid}}
    - {label: chat, data.path: data/chat.jsonl, data.format: chat,
       data.columns: {id: conversation_id}}
"""


def _records(n: int) -> list[dict]:
    """Instruction records whose answers are long enough to attack (invented, distinct)."""
    topics = ["basil", "bicycle chains", "sourdough", "tomato seedlings", "a leaking tap"]
    return [{"uid": f"q{i:03d}", "question": f"How should I handle {topics[i % 5]} in case {i}?",
             "answer": f"For case {i}, start by checking the {topics[i % 5]} every morning, "
                       f"note what changed since day {i % 7}, then adjust one thing at a time "
                       f"and wait {2 + i % 5} days before the next change; write down each "
                       f"result so that case {i} can be compared with the others."}
            for i in range(n)]


def _memlab(args: list[str], cwd, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(memlab_exe() + args, capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("newcomer")
    study, elsewhere = root / "study", root / "elsewhere"
    (study / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (study / "data" / "qa.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _records(50)))
    chats = [{"conversation_id": f"c{i:03d}", "messages": [
        {"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]}
        for i, r in enumerate(_records(50))]
    (study / "data" / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    (study / "study.yaml").write_text(STUDY)
    return {"study": study / "study.yaml", "elsewhere": elsewhere}


def test_the_readmes_first_commands_from_elsewhere(places):
    cwd = places["elsewhere"]
    bare = _memlab([], cwd)
    assert bare.returncode == 0 and "validate" in bare.stdout and "run" in bare.stdout
    assert _memlab(["--version"], cwd).stdout.startswith("memlab ")
    quick = str(SWEEPS / "quickstart.yaml")
    ok = _memlab(["validate", quick], cwd)
    assert ok.returncode == 0 and "ok (3 trials)" in ok.stdout, ok.stderr
    assert f"defaults: {SWEEPS / '_defaults.yaml'}" in ok.stdout + ok.stderr
    plan = _memlab(["plan", quick], cwd)
    assert plan.returncode == 0, plan.stderr
    assert str(ROOT / "runs" / "quickstart") in plan.stdout  # the runs_root of _defaults.yaml
    assert not list(cwd.iterdir())  # nothing written where the commands ran


def test_a_mistake_in_my_study_is_caught_before_anything_runs(places):
    cwd = places["elsewhere"]
    bad = _memlab(["run", str(places["study"]), "--only", "dataset=qa", "--set",
                   "data.num_members=40"], cwd)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    lines = bad.stderr.strip().splitlines()  # (one per dataset the --set applies to)
    assert all(x.startswith("error: --set data.num_members: ") for x in lines), lines
    assert any("qa.jsonl holds 50 records" in x for x in lines), lines
    assert not (places["study"].parent / "runs").exists() and not list(cwd.iterdir())


@pytest.mark.slow  # two LoRA trials of a tiny model through Ray Tune: ~3 min on 2 cores
def test_my_own_data_validates_plans_runs_reports_from_elsewhere(places):
    cwd, study = places["elsewhere"], str(places["study"])
    ok = _memlab(["validate", study], cwd)
    assert ok.returncode == 0 and "ok (2 trials)" in ok.stdout, ok.stderr
    assert "no _defaults.yaml" in ok.stdout + ok.stderr  # (none above the study's folder)
    assert _memlab(["plan", study], cwd).returncode == 0
    run = _memlab(["run", study], cwd, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    runs = places["study"].parent / "runs"  # runs_root read from the study's folder
    assert (runs / "mine" / "results.csv").is_file() and not list(cwd.iterdir())
    assert "Results of sweep 'mine'" in run.stdout
    ui = next(line for line in run.stdout.splitlines() if " ui --backend-store-uri " in line)
    exe = ui.split()[0]
    assert subprocess.run([exe, "--version"], capture_output=True, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin"}, timeout=120).returncode == 0
    report = _memlab(["report", study], cwd)
    assert report.returncode == 0 and "Results of sweep 'mine'" in report.stdout
    examples = _memlab(["examples", study, "--top", "2"], cwd)
    assert examples.returncode == 0 and examples.stdout.strip(), examples.stderr
