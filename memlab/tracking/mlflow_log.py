"""The one module that talks to MLflow.

One experiment per sweep; in it a parent run for the sweep (the grid as params, the sweep's
summary table and plots as artifacts) and one child run per trial (`mlflow.parentRunId`),
each found again by its tags (`memlab.role`, `sweep`, `trial_key`) so a resumed sweep continues
its runs instead of opening new ones. Params once per run, metrics from rank 0 only,
per-document tables as Parquet artifacts (never as metrics), provenance as tags. Everything
goes through MlflowClient to the tracking URI (an HTTP server for cluster runs: artifacts are
proxied by the server, nothing is written to a local ./mlruns on workers).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGES = ("memlab", "torch", "transformers", "peft", "deepspeed", "ray", "mlflow",
            "sentence-transformers", "pyarrow")


def provenance(cwd: str | os.PathLike | None = None) -> dict[str, str]:
    """Git sha and dirty flag of the code, and the versions of the packages that matter."""
    tags: dict[str, str] = {}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode == 0:
            tags["git_sha"] = sha.stdout.strip()
            tags["git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    tags.setdefault("git_sha", "unknown")
    for pkg in PACKAGES:
        try:
            tags[f"version.{pkg}"] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            tags[f"version.{pkg}"] = "not installed"
    return tags


def ensure_experiment(uri: str, name: str, artifact_root: str | None = None) -> str:
    """Create the sweep's experiment once (in the driver, before trials start)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if artifact_root is not None:
        location = Path(artifact_root, name).as_uri()
    return client.create_experiment(name, artifact_location=location)


class TrackedRun:
    """A handle on one MLflow run. Create trial runs on rank 0 only."""

    def __init__(self, uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.client, self.run_id = MlflowClient(tracking_uri=uri), run_id

    @classmethod
    def find_or_create(cls, uri: str, experiment_id: str, match: dict, run_name: str,
                       params: dict, tags: dict) -> TrackedRun:
        """The run with the `match` tags (resumed: status back to RUNNING), or a new one with
        `params` logged once."""
        run = cls(uri, "")
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in match.items())
        found = run.client.search_runs([experiment_id], filter_string=query, max_results=1)
        if found:
            run.run_id = found[0].info.run_id
            run.client.update_run(run.run_id, status="RUNNING")
            log.info("mlflow: resuming run %s (%s)", run.run_id, query)
        else:
            run.run_id = run.client.create_run(
                experiment_id, run_name=run_name,
                tags={k: str(v) for k, v in {**match, **tags}.items()}).info.run_id
            from mlflow.entities import Param

            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                run.client.log_batch(run.run_id, params=items[i:i + 100])
        # provenance of this attempt (a resumed run gets the code and versions that resumed it)
        run.set_tags({"mlflow.runName": run_name, **tags})
        return run

    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_metric(self, name: str, value: float, step: int = 0) -> None:
        self.client.log_metric(self.run_id, name, float(value), step=step)

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def log_artifact(self, path: str | os.PathLike, subdir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=subdir)

    def finish(self, ok: bool = True) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if ok else "FAILED")


def sweep_run(uri: str, experiment_id: str, sweep: str, params: dict, tags: dict) -> TrackedRun:
    """The sweep's parent run (one per sweep name in its experiment)."""
    return TrackedRun.find_or_create(uri, experiment_id, {"memlab.role": "sweep", "sweep": sweep},
                                     sweep, params, tags)


def trial_run(uri: str, experiment_id: str, trial_key: str, run_name: str, params: dict,
              tags: dict, parent_run_id: str | None = None) -> TrackedRun:
    """A trial's run, a child of the sweep's run when `parent_run_id` is given."""
    parent = {"mlflow.parentRunId": parent_run_id} if parent_run_id else {}
    return TrackedRun.find_or_create(uri, experiment_id,
                                     {"memlab.role": "trial", "trial_key": trial_key},
                                     run_name, params, {**tags, **parent})
