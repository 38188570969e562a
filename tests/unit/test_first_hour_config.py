"""Issue 32, part 1: check before running. What a newcomer met in their first hour, one test
per finding: a missing column or too few records found by `validate` / `plan` (and lines
counted from 1 at run time too); relative paths read from the study file's folder, wherever
the command is typed, with messages naming the folder; where the defaults came from; an empty
study refused; "did you mean" and the exact line for every key; a subset of a grid from the
command line (`--only`)."""

import contextlib
import json
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlab import cli
from memlab.components.data import load_documents
from memlab.config.errors import DataError
from memlab.config.expand import load_study
from memlab.config.load import ConfigError
from memlab.config.schema import DataSection
from tests.conftest import ROOT, SWEEPS


def _records(n: int) -> list[dict]:
    return [{"q": f"question {i} " + "why " * 5, "a": f"answer {i} " + "because " * 5,
             "key": f"k{i}"} for i in range(n)]


def _write_jsonl(path, rows, lead: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lead + "".join(json.dumps(r) + "\n" for r in rows))


STUDY = """\
sweep: {name: mine}
data:
  source: local
  path: data/qa.jsonl
  format: instruction
  columns: {instruction: q, output: a, id: key}
  num_members: 10
  num_nonmembers: 10
model: {source: tiny}
grid:
  seed: [0, 1]
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A study of the user's own data in a folder of its own (no _defaults.yaml above it),
    loaded from another working directory."""
    folder = tmp_path / "study"
    _write_jsonl(folder / "data" / "qa.jsonl", _records(30))
    (folder / "s.yaml").write_text(STUDY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return folder / "s.yaml"


def _problems(path, sets=()) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_study(path, list(sets))
    return e.value.problems


def _one(problems: list[str], *needles: str) -> str:
    hits = [p for p in problems if all(n in p for n in needles)]
    assert len(hits) == 1, problems
    return hits[0]


# ------------------------------------------------------------------ 1. the dataset's files
def test_validate_finds_a_column_the_data_lacks_with_file_and_line(study, monkeypatch):
    """A column named by data.columns, text_field / id_field or the format's own fields that
    the first records lack: one line naming the key, the file and the record's line (1-based:
    the file opens with a blank line, so the first record is on line 2)."""
    monkeypatch.chdir(study.parent)  # (the old code read data.path from here)
    _write_jsonl(study.parent / "data" / "qa.jsonl", _records(30), lead="\n")
    data = study.parent / "data" / "qa.jsonl"
    line = _one(_problems(study, ["data.columns.output=answer"]), "data.columns.output")
    assert line.startswith("--set data.columns.output: ")
    assert f"{data}:2 has no field 'answer'" in line and "its fields: a, key, q" in line
    line = _one(_problems(study, ["data.columns={instruction: q, id: key}"]), "'output'")
    assert f"{data}:2 has no field 'output' (canonical field 'output' of data.format " \
        "instruction; map another column with data.columns.output)" in line
    line = _one(_problems(study, ["data.format=text", "data.columns={id: key}"]),
                "data.text_field")
    assert f"{data}:2 has no field 'text'" in line


def test_validate_reads_a_parquet_files_schema_and_row_count(study, monkeypatch):
    monkeypatch.chdir(study.parent)
    pq.write_table(pa.table({"body": ["x y z"] * 12, "id": [str(i) for i in range(12)]}),
                   study.parent / "data" / "p.parquet")
    sets = ["data.path=data/p.parquet", "data.format=text", "data.columns={}"]
    problems = _problems(study, sets)
    assert "its Parquet schema) has no field 'text'; its fields: body, id" in \
        _one(problems, "data.text_field")
    assert "holds 12 records" in _one(problems, "data.num_members")
    load_study(study, sets + ["data.text_field=body", "data.num_members=6",
                              "data.num_nonmembers=6"])  # 12 records: enough


def test_validate_and_plan_find_too_few_records(study, capsys, monkeypatch):
    """Fewer records than num_members + num_nonmembers: found by validate and plan (exit 2,
    one line), not by `run` after it has created a run, a record and a stage folder."""
    monkeypatch.chdir(study.parent)
    line = _one(_problems(study, ["data.num_members=25"]), "data.num_members")
    assert f"{study.parent / 'data' / 'qa.jsonl'} holds 30 records" in line
    assert "num_members + num_nonmembers = 25 + 10 needs 35" in line
    for cmd in ("validate", "plan"):
        assert cli.main([cmd, str(study), "--set", "data.num_members=25"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds 30 records" in err[0], err


def test_run_refuses_too_few_records_before_creating_anything(study, capsys, monkeypatch):
    """No MLflow store or run, no sweep record, no stage folder: the study's checks refuse."""
    monkeypatch.chdir(study.parent)
    assert cli.main(["run", str(study), "--set", "data.num_members=25"]) == 2
    assert not (study.parent / "runs").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert [e for e in err if e.startswith("error:")] == [err[-1]] and "holds 30" in err[-1]


def test_run_time_messages_count_lines_from_one(tmp_path):
    """The data stage names a record by the line an editor shows (a JSONL file) or its row
    counted from 1 (Parquet), not by its index."""
    f = tmp_path / "qa.jsonl"
    rows = _records(3)
    del rows[1]["a"]
    _write_jsonl(f, rows, lead="\n")  # records on lines 2, 3, 4
    sec = DataSection(source="local", path=str(f), format="instruction",
                      columns={"instruction": "q", "output": "a", "id": "key"})
    with pytest.raises(DataError, match=rf"{f}:3 has no field 'a' \(data.columns.output\)"):
        load_documents(sec)
    p = tmp_path / "qa.parquet"
    pq.write_table(pa.Table.from_pylist([{"q": "x", "b": "y", "key": "k"}]), p)
    sec.path = str(p)
    with pytest.raises(DataError, match=rf"{p}: row 1 has no field 'a'"):
        load_documents(sec)


# ------------------------------------------------------------------ 2. relative paths
def test_relative_paths_are_read_from_the_study_files_folder(study, tmp_path):
    """data.path, sweep.runs_root (a default: the study's folder), a local model, plugin
    files and a SQLite tracking store name files next to the study, from any working
    directory; every trial carries them absolute (trials run in other processes)."""
    folder = study.parent
    plugins = folder / "plugins"
    plugins.mkdir()
    (plugins / "scorers.py").write_text("")
    (folder / "model.gguf").write_bytes(b"")
    study.write_text(STUDY.replace("model: {source: tiny}\n", "") + """\
model: {source: gguf, name: model.gguf}
score: {plugins: [plugins/scorers.py]}
tracking: {uri: "sqlite:///runs/mlflow.db"}
""")
    s = load_study(study)
    assert s.base.sweep.runs_root == str(folder / "runs")
    assert s.base.tracking.uri == f"sqlite:///{folder / 'runs' / 'mlflow.db'}"
    for t in s.trials:
        c = t.config
        assert c.data.path == str(folder / "data" / "qa.jsonl")
        assert c.model.name == str(folder / "model.gguf")
        assert c.score.plugins == [str(plugins / "scorers.py")]
        assert c.sweep.runs_root == str(folder / "runs")


def test_a_strategy_module_is_read_from_the_study_files_folder(study):
    (study.parent / "mine.py").write_text("")  # (registers nothing: the registry stays)
    study.write_text(STUDY + "train: {plugins: [mine.py]}\n")
    assert load_study(study).trials[0].config.train.plugins == [str(study.parent / "mine.py")]


def test_a_relative_path_from_the_defaults_file_is_read_from_its_folder(tmp_path,
                                                                        monkeypatch):
    (tmp_path / "_defaults.yaml").write_text("sweep: {runs_root: shared-runs}\n")
    (tmp_path / "studies").mkdir()
    study = tmp_path / "studies" / "s.yaml"
    study.write_text("sweep: {name: x}\nmodel: {source: tiny}\n")
    monkeypatch.chdir(tmp_path / "studies")
    assert load_study(study).base.sweep.runs_root == str(tmp_path / "shared-runs")


def test_a_missing_path_names_the_folder_searched(study):
    study.write_text(STUDY.replace("path: data/qa.jsonl", "path: data/nope.jsonl"))
    line = _one(_problems(study), "data.path")
    assert line == (f"{study}:4: data.path: no such file or folder: {study.parent}/data/"
                    f"nope.jsonl (data/nope.jsonl read from the folder of {study}, "
                    f"{study.parent})")
    study.write_text(STUDY + "train: {plugins: [nope.py]}\n")
    assert f"no such file: {study.parent}/nope.py (relative files are read from the folder " \
        f"of {study}, {study.parent})" in _one(_problems(study), "train.plugins")


def test_a_path_given_by_set_is_read_from_the_working_directory(study, tmp_path, capsys):
    _write_jsonl(tmp_path / "elsewhere" / "mine.jsonl", _records(30))
    s = load_study(study, ["data.path=mine.jsonl"])
    assert s.trials[0].config.data.path == str(tmp_path / "elsewhere" / "mine.jsonl")
    line = _one(_problems(study, ["data.path=nope.jsonl"]), "data.path")
    assert "(nope.jsonl read from the working directory" in line
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "relative path given here is read from the working directory" in \
        " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------ 3. defaults, empty study
def test_validate_and_plan_say_where_the_defaults_came_from(study, capsys):
    assert cli.main(["validate", str(SWEEPS / "quickstart.yaml")]) == 0
    assert f"defaults: {SWEEPS / '_defaults.yaml'}" in capsys.readouterr().out
    for cmd in ("validate", "plan"):
        assert cli.main([cmd, str(study)]) == 0
        out = capsys.readouterr().out
        assert f"defaults: no _defaults.yaml in {study.parent} or a folder above it" in out


@pytest.fixture
def started(monkeypatch) -> list:
    """`memlab run` up to the sweep: the studies it would start."""
    import memlab.sweep.run as run

    got: list = []
    monkeypatch.setattr(run, "run_sweep", lambda s, tracking_uri=None: got.append(s) or 0)
    monkeypatch.setattr(run, "placed_or_refused", lambda *a: None)
    monkeypatch.setattr(run, "one_run_at_a_time", lambda s: contextlib.nullcontext())
    return got


def test_run_says_where_the_defaults_came_from(study):
    """As `python -m memlab.cli run` (the module runs as __main__), up to the sweep."""
    code = ("import contextlib, runpy, sys\n"
            "import memlab.sweep.run as r\n"
            "r.run_sweep = lambda s, tracking_uri=None: 0\n"
            "r.placed_or_refused = lambda *a: None\n"
            "r.one_run_at_a_time = lambda s: contextlib.nullcontext()\n"
            "sys.argv = ['memlab', 'run', 's.yaml']\n"
            "runpy.run_module('memlab.cli', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=study.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"[memlab] defaults: no _defaults.yaml in {study.parent} or a folder above it" in \
        out.stderr


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "description: my study\n"])
def test_an_empty_study_is_refused_in_one_line(tmp_path, capsys, text):
    study = tmp_path / "s.yaml"
    study.write_text(text)
    assert cli.main(["validate", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{study}: the study sets nothing" in err[0], err


# ------------------------------------------------------------------ 4. did you mean, lines
def test_top_level_grid_axis_and_bundle_keys_get_did_you_mean_at_their_line(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("""\
sweep: {name: t}
descripton: x
model: {source: tiny}
grid:
  train.strat: [lora]
  base_model:
    - label: a
      model.tiny.hiden: 32
    - {label: b, model.tiny.hidden: 64}
""")
    problems = _problems(study)
    assert f"{study}:2: descripton: unknown key (did you mean 'description'?)" in problems
    assert f"{study}:5: grid.train.strat: unknown key (did you mean 'train.strategy'?)" \
        in problems
    assert f"{study}:8: grid.base_model[0].model.tiny.hiden: unknown key (did you mean " \
        "'model.tiny.hidden'?)" in problems


def test_a_misspelled_grid_key_gets_did_you_mean(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("sweep: {name: t}\nmodel: {source: tiny}\ngird:\n  seed: [0, 1]\n")
    assert f"{study}:3: gird: unknown key (did you mean 'grid'?)" in _problems(study)


def test_a_grid_value_or_bundle_setting_out_of_range_names_its_own_line(tmp_path):
    """Not the line of the defaults file that set the value the grid replaces."""
    shutil.copy(SWEEPS / "_defaults.yaml", tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("""\
sweep: {name: t}
grid:
  train.lora.lr: [-1]
  lr:
    - {label: a, train.head.lr: 0.1}
    - {label: b,
       train.head.lr: -2}
""")
    problems = _problems(study, ["train.strategy=head"])
    _one(problems, f"{study}:3: train.lora.lr: must be > 0")
    _one(problems, f"{study}:7: train.head.lr: must be > 0", "(grid axis lr: b)")


def test_a_set_on_a_grid_axis_names_the_set(tmp_path):
    shutil.copy(SWEEPS / "_defaults.yaml", tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("sweep: {name: t}\ngrid:\n  train.strategy: [full, lora]\n")
    problems = _problems(study, ["grid.train.strategy=[lorra]"])
    assert len(problems) == 1
    assert problems[0].startswith("--set grid.train.strategy: train.strategy: unknown "
                                  "strategy 'lorra' (did you mean 'lora'?)")
    s = load_study(study, ["grid.train.strategy=[lora]"])  # an axis, replaced whole
    assert [t.config.train.strategy for t in s.trials] == ["lora"]
    assert _problems(study, ["train.strateg=lora"]) == [
        "--set train.strateg: unknown key (did you mean 'strategy'?)"]


# ------------------------------------------------------------------ 5. --only
def test_only_runs_a_subset_of_the_grid_under_the_same_names(tmp_path):
    shutil.copy(SWEEPS / "_defaults.yaml", tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("sweep: {name: t}\nmodel: {source: tiny}\n"
                     "grid:\n  train.strategy: [full, head, lora]\n  seed: [0, 1]\n"
                     "  train.lora.lr: [5.0e-4, 1.0e-3]\n")
    every = {t.key: t.name for t in load_study(study).trials}
    s = load_study(study, only=["train.strategy=lora", "seed=0"])
    assert [(t.config.train.strategy, t.config.seed) for t in s.trials] == [("lora", 0)] * 2
    assert all(every[t.key] == t.name for t in s.trials)  # a trial's name is its own
    assert s.grid["seed"] == [0, 1]  # (the study's grid, as MLflow's sweep run records it)
    s = load_study(study, only=["seed=1", "train.lora.lr=1e-3", "train.strategy=head",
                                "train.strategy=lora"])  # one axis adds up, axes narrow
    assert sorted(t.config.train.strategy for t in s.trials) == ["head", "lora"]
    assert s.subset == ("--only seed=1 --only train.lora.lr=0.001 --only train.strategy=head "
                        "--only train.strategy=lora")


def test_only_keeps_a_trial_that_stands_for_several_cells(tmp_path):
    """A zero_stage axis does not split head-only and LoRA trials: --only on it keeps them."""
    shutil.copy(SWEEPS / "_defaults.yaml", tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("sweep: {name: z}\nmodel: {source: tiny}\ngrid: {train.strategy: "
                     "[full, head, lora], train.full.zero_stage: [2, 3]}\n")
    s = load_study(study, only=["train.full.zero_stage=3"])
    assert sorted(t.config.train.strategy for t in s.trials) == ["full", "head", "lora"]
    assert [t.config.train.full.zero_stage for t in s.trials
            if t.config.train.strategy == "full"] == [3]


def test_only_selects_a_bundle_by_its_label():
    s = load_study(ROOT / "tests" / "fixtures" / "formats.yaml", only=["dataset=chat"])
    assert [t.point["dataset"] for t in s.trials] == ["chat"]


@pytest.mark.parametrize("only, message", [
    ("train.strat=lora", "--only train.strat: not a grid axis (did you mean "
                         "'train.strategy'?); the grid's axes: train.strategy, seed"),
    ("train.strategy=lorra", "--only train.strategy=lorra: not a value of grid axis "
                             "train.strategy (its values: full, head, lora)"),
    ("seed", "--only seed: expected AXIS=VALUE, e.g. --only seed=0"),
])
def test_only_refuses_an_axis_or_value_the_grid_lacks_in_one_line(tmp_path, capsys, only,
                                                                   message):
    shutil.copy(SWEEPS / "_defaults.yaml", tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("sweep: {name: t}\nmodel: {source: tiny}\n"
                     "grid:\n  train.strategy: [full, head, lora]\n  seed: [0, 1]\n")
    for cmd in ("validate", "plan", "run", "report"):
        assert cli.main([cmd, str(study), "--only", only]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {message}"], err


def test_run_plan_and_report_take_only(study, capsys, monkeypatch, started):
    assert cli.main(["run", str(study), "--only", "seed=1"]) == 0
    assert [t.config.seed for t in started[0].trials] == [1]
    assert cli.main(["plan", str(study), "--only", "seed=1"]) == 0
    out = capsys.readouterr().out
    assert "1 trials (--only seed=1)" in out
    import memlab.report.render as render

    got = []
    monkeypatch.setattr(render, "build_report",
                        lambda s: got.append(s) or type("R", (), {"text": "report"}))
    assert cli.main(["report", str(study), "--only", "seed=0"]) == 0
    assert [t.config.seed for t in got[0].trials] == [0]
