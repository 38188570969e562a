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
- A saved view of the runs list (columns: those tags and headline metrics) stored as the
  experiment tag `mlflow.sharedViewState.memlab`: the URL memlab prints,
  `#/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=memlab`, opens on
  it (MLflow 3.17's UI keeps a browser-wide GenAI / model-training switch, GenAI at first,
  that sends a bare experiment URL to the GenAI overview whatever the experiment's kind:
  workflowType in the URL sets it).
"""

from __future__ import annotations

import json
import re

EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
VIEW_KEY = "memlab"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TRIAL_TAGS = ("strategy", "model", "dup_factor", "seed")

# short name -> the full metric (a regex on flat_metrics' names: the similarity threshold and
# the membership signal vary); the first full name that matches is used
HEADLINE = {
    "exact_member": r"exact_pct/member",
    "exact_floor": r"exact_pct/nonmember",
    "plag_member": r"plagiarism_any_pct/member",
    "plag_floor": r"plagiarism_any_pct/nonmember",
    "sim_member": r"sim_src_ge_[0-9.]+_pct/member",
    "sim_floor": r"sim_src_ge_[0-9.]+_pct/nonmember",
    "mia_auc": r"auc_ref/member|auc_loss/member",
    "heldout_ppl": r"heldout_ppl",
}
VS_DUP = {"exact_member": r"exact_pct", "plag_member": r"plagiarism_any_pct",
          "sim_member": r"sim_src_ge_[0-9.]+_pct"}


def headline_metrics(metrics: dict) -> dict[str, float]:
    """The headline metrics present in a trial's metrics, under their short names, rounded for
    reading (percentages and perplexity to 2 decimals, AUC to 3; the full metrics keep every
    digit)."""
    out = {}
    for short, pattern in HEADLINE.items():
        for alt in pattern.split("|"):
            hit = next((k for k in metrics if re.fullmatch(alt, k)), None)
            if hit is not None:
                out[short] = round(float(metrics[hit]), 3 if short == "mia_auc" else 2)
                break
    return out


def vs_dup(metrics: dict) -> dict[str, list[tuple[int, float]]]:
    """`vs_dup/<short>` -> [(copies, value), ...] from `<metric>/member_dup<copies>`."""
    out: dict[str, list[tuple[int, float]]] = {}
    for short, base in VS_DUP.items():
        points = sorted((int(m[1]), v) for k, v in metrics.items()
                        if (m := re.fullmatch(rf"(?:{base})/member_dup(\d+)", k)))
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

