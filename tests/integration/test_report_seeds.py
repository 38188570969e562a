"""A two-seed smoke sweep (sweeps/smoke.yaml, three strategies x seeds 0 and 1): the report
aggregates the two trials of each strategy, every cell of every table with n = 2 and a 95%
interval (but the TPRs at 1% FPR, which 12 non-members do not resolve: n/r), the documents of
each row, and writes its figures, its self-contained HTML page and the parent run's
summary."""

import csv
import io
import json
import re
import statistics

import pytest
import yaml

from memlab.io.paths import stage_dir
from memlab.io.shards import read_manifest, read_summary
from memlab.report.render import FIGURES, FILES, build_report
from memlab.report.samples import TITLE, open_samples
from memlab.report.tables import Listing, layout
from tests.conftest import SWEEPS
from tests.integration.conftest import SMOKE, run_sweep

pytestmark = pytest.mark.slow

STRATEGIES = ["full", "head", "lora"]
ORDER = ["lora", "head", "full"]  # the report's: by trainable parameters (tiny Llama: LoRA's
# adapters 16.4k, the head 32.8k, every weight 164.2k; `memlab plan sweeps/smoke.yaml`)
INTERVAL = re.compile(r"-?[\d.]+ \[-?[\d.]+, -?[\d.]+\]")


@pytest.fixture(scope="module")  # six trials: ~4 min on 2 cores
def sweep(tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("seeds-study")
    (study_dir / "_defaults.yaml").write_text((SWEEPS / "_defaults.yaml").read_text())
    study = yaml.safe_load(SMOKE.read_text())
    study["sweep"]["name"] = "seeds"
    study["grid"] = {"train.strategy": STRATEGIES, "seed": [0, 1]}
    path = study_dir / "seeds.yaml"
    path.write_text(yaml.safe_dump(study))
    out = run_sweep(path, tmp_path_factory.mktemp("runs"))
    root = out["root"] = out["runs"] / "seeds"
    out["written"] = {n: (root / n).read_bytes() for n in FILES if (root / n).exists()}
    out["report"] = build_report(out["study"])  # what the sweep printed, with its figures
    return out


def _summaries(study, strategy):
    """{(split, dup, metric): [value per seed]} of one strategy's trials, read directly."""
    out: dict = {}
    for t in study.trials:
        if t.config.train.strategy == strategy:
            for r in read_summary(stage_dir(t.config, "score", t.key)).to_pylist():
                out.setdefault((r["split"], r["dup_count"], r["metric"]), []).append(r["value"])
    return out


def test_every_cell_of_every_table_averages_two_seeds_with_an_interval(sweep):
    assert "Results of sweep 'seeds'" in sweep["stdout"] and "seeds 0, 1" in sweep["stdout"]
    tables = sweep["report"].tables
    titles = [t.title for t in tables]
    assert any(t.startswith("Extraction") for t in titles)
    assert any(t.startswith("Plagiarism") for t in titles)
    assert "Membership inference: AUC" in titles  # the pipeline's membership metrics
    assert "Membership inference: TPR at 1% FPR (%)" in titles
    assert any(t.startswith("Utility") for t in titles)
    canaries = sweep["study"].base.data.canaries
    repeats = [0, *canaries.repeats] if canaries.count else []  # 0: the never-inserted control
    assert ("Canary exposure (bits)" in titles) == bool(repeats)
    n_docs = sweep["study"].base.data.num_nonmembers
    assert titles[-1] == TITLE  # the sample dataset's section (its own test below)
    for t in tables[:-1]:
        head, body, _ = layout(t, hide=["model"])
        first = head.index("n") + 1 + len({"members", "nonmembers"} & set(head))
        metrics = head[first:len(head) - len(t.extra)]
        if "nonmembers" in head:
            assert {row[head.index("nonmembers")] for row in body} == {str(n_docs)}, t.title
        assert metrics, t.title
        levels = (1 if t.title.startswith("Utility") else
                  len(repeats) if t.title.startswith("Canary") else 2)
        assert len(body) == 3 * levels, t.title  # 3 strategies x dup (or repeat) levels
        for row in body:
            assert row[head.index("n")] == "2", (t.title, row)
            for h, cell in zip(metrics, row[first:]):
                if t.title.startswith("Membership inference: TPR"):  # 12 non-members
                    assert cell == "n/r", (h, row)
                    continue
                assert INTERVAL.fullmatch(cell), (t.title, h, row)
        assert sweep["report"].text.count(t.title) == 1


def test_results_csv_is_one_row_per_cell_with_mean_interval_and_n(sweep):
    text = sweep["written"]["results.csv"]  # as the sweep wrote it
    assert (sweep["root"] / "results.csv").read_bytes() == text  # the same report again
    rows = list(csv.DictReader(io.StringIO(text.decode(), newline="")))
    assert [(r["strategy"], r["dup"]) for r in rows] == [(s, d) for s in ORDER
                                                         for d in ("1", "4")]
    stems = [c.removesuffix("_mean") for c in rows[0] if c.endswith("_mean")]
    assert {"exact_%", "floor_exact_%", "any_%", "auc_loss", "tpr1_loss", "heldout_ppl",
            "rougeL", "bleu", "flesch"} <= set(stems)
    for r in rows:
        assert r["seeds"] == "0 1"
        assert float(r["smallest_fpr_%"]) == pytest.approx(100 / 12)  # 12 non-members
        for stem in stems:
            if stem.startswith("tpr"):  # not resolved: left empty
                assert r[f"{stem}_mean"] == "" and r[f"{stem}_n"] == "0", stem
                continue
            assert r[f"{stem}_mean"] != "", (r["strategy"], stem)
            assert r[f"{stem}_n"] == "2" and r[f"{stem}_lo"] and r[f"{stem}_hi"], stem
            assert float(r[f"{stem}_lo"]) <= float(r[f"{stem}_mean"]) <= float(r[f"{stem}_hi"])
        values = _summaries(sweep["study"], r["strategy"])
        dup = int(r["dup"])
        assert float(r["exact_%_mean"]) == pytest.approx(
            statistics.fmean(values[("member", dup, "exact_pct")]))
        assert float(r["floor_exact_%_mean"]) == pytest.approx(
            statistics.fmean(values[("nonmember", -1, "exact_pct")]))
        assert float(r["auc_loss_mean"]) == pytest.approx(
            statistics.fmean(values[("member", dup, "auc_loss")]))


def test_figures_draw_a_line_per_strategy_and_model_and_each_strategys_floor(sweep):
    study, figures = sweep["study"], sweep["report"].figures
    (model,) = {json.loads((sweep["root"] / t.key / "result.json").read_text())["model"]
                for t in study.trials}
    dup = figures["results.png"]["panels"]
    assert f"exact_%, {model}" in dup  # a panel per model (one here) and heading
    for title, panel in dup.items():
        assert panel["lines"] == ORDER and panel["bands"] == ORDER, title
        assert list(panel["floors"]) == ORDER, title
    metric = "exact_pct"  # each strategy's own floor, its mean over the seeds
    for s in STRATEGIES:
        floors = _summaries(study, s)[("nonmember", -1, metric)]
        assert dup[f"exact_%, {model}"]["floors"][s] == pytest.approx(statistics.fmean(floors))
    assert figures["scale.png"]["panels"] == {}  # one model: no scale to draw
    roc = figures["roc.png"]["panels"]
    assert {s: p["curves"] for s, p in roc.items()} == {s: [model] for s in STRATEGIES}
    assert all(p["xlim"][0] == pytest.approx(1 / 12) for p in roc.values())  # 12 non-members
    frontier = figures["frontier.png"]["panels"]  # similarity rate and AUC against perplexity
    assert len(frontier) == 2
    for title, panel in frontier.items():  # a point per strategy, its perplexity's interval
        assert list(panel["points"]) == ORDER and set(panel["xerr"]) == set(ORDER), title
        assert panel["frontier"] and set(panel["frontier"]) <= set(ORDER), title


def test_files_html_page_and_parent_run_summary(sweep):
    written = sweep["written"]
    assert set(written) == set(FILES)
    assert all(len(data) > 500 for data in written.values())
    page = written["results.html"].decode()
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "<table>" in page and "Membership inference: AUC" in page
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep['runs']}/mlflow.db")
    exp = client.get_experiment_by_name("seeds")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`memlab.role` = 'sweep'")
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "summary")} == \
        {f"summary/{name}" for name in FILES}


def test_a_row_per_sample_and_canary_and_the_most_leaked_documents(sweep):
    """samples/: every trial's scored samples and canaries, joined by sample_id; the report's
    last section lists the 10 most leaked (trial, member) pairs from it, in its order."""
    study = sweep["study"]
    df = open_samples(sweep["root"] / "samples").to_table().to_pandas()
    for t in study.trials:
        rows = df[df.trial_key == t.key]
        canaries = read_manifest(stage_dir(t.config, "data", t.keys.data)).get("canaries", 0)
        assert len(rows) == read_manifest(stage_dir(t.config, "score", t.key))["rows"] + canaries
        assert (rows.trial == t.name).all() and (rows.strategy == t.config.train.strategy).all()
        assert (rows.seed == t.config.seed).all() and (rows.split == "canary").sum() == canaries
        assert rows[rows.split == "canary"].exposure.notna().all()
        assert rows[rows.split != "canary"].sample_seed.notna().all()
    assert {"mia_loss", "mia_ref", "plag_label", "sim_to_source"} <= set(df.columns)
    (section,) = [t for t in sweep["report"].tables if isinstance(t, Listing)]
    assert len(section.body) == 10 and section.head[:3] == ["#", "trial", "strategy"]
    members = df[df.split == "member"]
    key = [(bool(r.exact_extracted), r.sim_to_source) for r in members.itertuples()]
    best = sorted(key, reverse=True)[0]
    first = section.body[0]
    assert first[section.head.index("exact")] == ("yes" if best[0] else "no")
    assert first[section.head.index("sim")] == f"{best[1]:.3f}"
    assert TITLE in sweep["stdout"]
