"""What the MLflow UI shows of a study: its comparison desk.

- The experiment is marked as model training (`mlflow.experimentKind`), so the UI opens on its
  runs, not on the GenAI overview.
- Trial runs are top-level rows (MLflow folds child runs under a collapsed parent, which hid
  every trial); each is tied to its sweep's run by the tags `sweep` and `memlab.sweep_run_id`.
- Each trial carries `strategy`, `model`, `dup_factor` and `seed` as tags (the UI's "Group by"
  and column chooser offer tags) and a few headline metrics with short names, members next to
  the non-member floor (HEADLINE); the full set stays.
- Memorization against duplication: `vs_dup/<measure>_member` logged with step = the copies of
  a member in the training stream, so the chart view's line chart (x = step) draws one line per
  trial over duplication, comparable across trials and studies (the UI draws metric histories
  well; a param on the x axis needs a scatter chart set up by hand).
- Memorization through training (train.eval_at / eval_every): the headline metrics and
  heldout_ppl of each evaluation point and of the final model logged with step = the
  optimizer step (`curves`), so the line charts draw them against training.
- A saved view of the runs list (columns: those tags and headline metrics) stored as the
  experiment tag `mlflow.sharedViewState.memlab`: the URL memlab prints,
  `#/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=memlab`, opens on
  it (MLflow 3.17's UI keeps a browser-wide GenAI / model-training switch, GenAI at first,
  that sends a bare experiment URL to the GenAI overview whatever the experiment's kind:
  workflowType in the URL sets it).
"""

from __future__ import annotations

import json
import math
import re

EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
VIEW_KEY = "memlab"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TRIAL_TAGS = ("strategy", "model", "dup_factor", "seed")

def _measures(threshold: float) -> dict[str, str]:
    """short name -> the full metric it stands for (similarity at the study's
    score.headline_threshold, the one the results table shows; membership: the reference-model
    signal, the loss where there is no base pass)."""
    t = f"{threshold:g}"
    return {"exact_member": "exact_pct/member", "exact_floor": "exact_pct/nonmember",
            "plag_member": "plagiarism_any_pct/member",
            "plag_floor": "plagiarism_any_pct/nonmember",
            "sim_member": f"sim_src_ge_{t}_pct/member",
            "sim_floor": f"sim_src_ge_{t}_pct/nonmember",
            "mia_auc": "auc_ref/member|auc_loss/member", "heldout_ppl": "heldout_ppl"}


HEADLINE = tuple(_measures(0.8))


def headline_metrics(metrics: dict, threshold: float) -> dict[str, float]:
    """The headline metrics present in a trial's metrics, under their short names, rounded for
    reading (percentages to 2 decimals, AUC to 3; the full metrics keep every digit;
    heldout_ppl, already short, is the full metric itself and is not logged twice)."""
    out = {}
    for short, full in _measures(threshold).items():
        hit = next((k for k in full.split("|") if k in metrics), None)
        if hit is not None and hit != short:  # (heldout_ppl is its own short name: kept whole)
            out[short] = round(float(metrics[hit]), 3 if short == "mia_auc" else 2)
    return out


def measure(metrics: dict, short: str, threshold: float) -> float:
    """One headline metric of a trial's metrics by its short name, unrounded (nan: absent)."""
    hit = next((k for k in _measures(threshold)[short].split("|") if k in metrics), None)
    return float(metrics[hit]) if hit is not None else math.nan


def curves(points: list[tuple[int, dict]], threshold: float) -> dict[str, list[tuple[int, float]]]:
    """Memorization through training: each headline metric and heldout_ppl -> [(optimizer
    step, value), ...] over the evaluation points' metrics and the final model's (`points`:
    (step, a trial's metrics)), so the chart view's line charts draw them against the step."""
    out: dict[str, list[tuple[int, float]]] = {}
    for step, metrics in sorted(points, key=lambda p: p[0]):
        found = {**headline_metrics(metrics, threshold),
                 **({"heldout_ppl": metrics["heldout_ppl"]} if "heldout_ppl" in metrics else {})}
        for name, value in found.items():
            if math.isfinite(value):
                out.setdefault(name, []).append((step, value))
    return out


def vs_dup(metrics: dict, threshold: float) -> dict[str, list[tuple[int, float]]]:
    """`vs_dup/<short>` -> [(copies, value), ...] from `<metric>/member_dup<copies>`."""
    out: dict[str, list[tuple[int, float]]] = {}
    for short in ("exact_member", "plag_member", "sim_member"):
        base = re.escape(_measures(threshold)[short].removesuffix("/member"))
        points = sorted((int(m[1]), v) for k, v in metrics.items()
                        if (m := re.fullmatch(rf"{base}/member_dup(\d+)", k)))
        if points:
            out[f"vs_dup/{short}"] = points
    return out


def view_state() -> str:
    """The runs list memlab opens on: every run, newest first, with the dataset, the trial
    tags and the headline metrics as columns (the UI's Source and Models columns, empty for
    memlab's runs, left out)."""
    cols = ["attributes.`Dataset`"] + [f"tags.`{t}`" for t in TRIAL_TAGS]
    cols += [f"metrics.`{m}`" for m in HEADLINE]
    return json.dumps({"searchFilter": "", "orderByKey": "attributes.start_time",
                       "orderByAsc": False, "startTime": "ALL", "lifecycleFilter": "Active",
                       "datasetsFilter": [], "modelVersionFilter": "All Runs",
                       "selectedColumns": cols, "runsHiddenMode": "SHOW_ALL",
                       "viewMaximized": False, "runListHidden": False, "groupBy": None,
                       "groupsExpanded": {}, "useGroupedValuesInCharts": True,
                       "hideEmptyCharts": True, "isAccordionReordered": False})


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs list in the saved view, under the UI at `base`."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?"
            f"workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")

