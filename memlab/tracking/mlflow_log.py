"""The one module that talks to MLflow.

One experiment per sweep, one run per trial, found again by its `trial_key` tag so a resumed
trial continues its run instead of opening a second one. Params once per run, metrics from rank
0 only, per-document tables as Parquet artifacts (never as metrics), provenance as tags.
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


class TrialRun:
    """An MLflow run for one trial. Create it on rank 0 only."""

    def __init__(self, uri: str, experiment_id: str, trial_key: str, run_name: str,
                 params: dict, tags: dict):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.search_runs([experiment_id],
                                        filter_string=f"tags.trial_key = '{trial_key}'",
                                        max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            log.info("mlflow: resuming run %s of trial %s", self.run_id, trial_key)
        else:
            run = self.client.create_run(experiment_id, run_name=run_name,
                                         tags={"trial_key": trial_key, **tags})
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i:i + 100])
        # provenance of this attempt (a resumed run gets the code and versions that resumed it)
        self.set_tags({"mlflow.runName": run_name, **tags})

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
