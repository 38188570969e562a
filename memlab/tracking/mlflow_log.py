"""The one module that talks to MLflow.

One experiment per sweep; in it a run for the sweep (the grid as params, the sweep's summary
table and plots as artifacts) and one top-level run per trial (tied to the sweep's run by the
tag `memlab.sweep_run_id`; what the UI shows of them: memlab.tracking.desk), each found again
by its tags (`memlab.role`, `sweep`, `trial_key`) so a resumed sweep continues its runs
instead of opening new ones. Params once per run, metrics from rank 0 only,
per-document tables as Parquet artifacts (never as metrics), provenance as tags. Everything
goes through MlflowClient to the tracking URI (an HTTP server for cluster runs: artifacts are
proxied by the server, nothing is written to a local ./mlruns on workers).

Tracking never decides whether work is done: every call is retried with exponential backoff
(tenacity) for up to `retry_s` seconds and then raises TrackingError, which the caller turns
into "not logged yet" while the computed results stay on disk. MLflow's own HTTP retries are
turned down (unless set in the environment) so that this is the one retry policy.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGES = ("memlab", "torch", "transformers", "peft", "deepspeed", "ray", "mlflow",
            "sentence-transformers", "pyarrow")
# MLflow error codes that another attempt cannot fix
PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
             "BAD_REQUEST", "MALFORMED_REQUEST", "INVALID_STATE", "PERMISSION_DENIED"}



_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
_TOKEN_USER = re.compile(r"(?P<scheme>https?://)[^:/@\s]+@")  # (https://TOKEN@host)
_SECRET_QUERY = re.compile(r"(?P<key>[?&;](?:[A-Za-z_-]*(?:token|secret|password|passwd|pwd|"
                           r"key|sig|signature|credential)[A-Za-z_-]*))=[^&;#\s]+", re.I)


def redact(text: str) -> str:
    """A URI's password and secret-looking query values (token=, api_key=, sig=, ...) replaced
    by ***: params, tags and printed URIs never carry credentials."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _TOKEN_USER.sub(lambda m: f"{m['scheme']}***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}=***", text)

class TrackingError(RuntimeError):
    """MLflow could not be reached (or refused a call) within the retry budget."""


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


def _tracking_failure(e: BaseException) -> bool:
    """An MLflow error, a connection error or a locked/unavailable database: the tracking
    side failed. Anything else (a TypeError, a missing file) is a bug and is raised as is."""
    from mlflow.exceptions import MlflowException

    return isinstance(e, (MlflowException, OSError)) or type(e).__name__ == "OperationalError"


def _transient(e: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(e, MlflowException):
        return e.error_code not in PERMANENT
    return _tracking_failure(e)


class Client:
    """MlflowClient whose calls are retried with backoff for up to `retry_s` seconds."""

    def __init__(self, uri: str, retry_s: float = 60.0):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        if uri.startswith("file:") or "://" not in uri:
            # a file store, named by the user: MLflow 3 keeps it in maintenance mode and
            # refuses it unless asked (https://mlflow.org/docs/latest/self-hosting)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.uri, self.retry_s = uri, retry_s
        try:
            self.mlflow = MlflowClient(tracking_uri=uri)
        except Exception as e:
            if not _tracking_failure(e):
                raise
            raise TrackingError(f"MLflow at {redact(uri)}: {redact(str(e).strip()[:300])}") from e

    def call(self, method: str, *args, **kwargs):
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_delay,
            wait_exponential_jitter,
        )

        try:
            for attempt in Retrying(stop=stop_after_delay(self.retry_s), reraise=True,
                                    wait=wait_exponential_jitter(initial=0.5, max=15),
                                    retry=retry_if_exception(_transient)):
                with attempt:
                    return getattr(self.mlflow, method)(*args, **kwargs)
        except Exception as e:
            if not _tracking_failure(e):
                raise
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise TrackingError(f"MLflow at {redact(self.uri)}: {method} failed: "
                                f"{redact(first)}") from e


def ensure_experiment(client: Client, name: str, artifact_root: str | None = None) -> str:
    """Create the sweep's experiment once (in the driver, before trials start), marked as
    model training, with memlab's saved view of its runs (memlab.tracking.desk); an existing
    experiment gets the view, and the mark unless it has a kind already."""
    from memlab.tracking import desk

    exp = client.call("get_experiment_by_name", name)
    if exp is not None:
        if desk.EXPERIMENT_KIND[0] not in exp.tags:
            client.call("set_experiment_tag", exp.experiment_id, *desk.EXPERIMENT_KIND)
        if exp.tags.get(desk.VIEW_TAG) != desk.view_state():
            client.call("set_experiment_tag", exp.experiment_id, desk.VIEW_TAG,
                        desk.view_state())
        return exp.experiment_id
    from memlab.config.digests import content_key
    from memlab.config.ranges import plain_name

    # (an experiment name is not always a folder name: "/Users/me/x", "../x" get a key's)
    folder = name if plain_name(name) else f"experiment-{content_key(name)}"
    location = Path(artifact_root, folder).as_uri() if artifact_root is not None else None
    return client.call("create_experiment", name, artifact_location=location,
                       tags=dict([desk.EXPERIMENT_KIND, (desk.VIEW_TAG, desk.view_state())]))


class TrackedRun:
    """A handle on one MLflow run. Create trial runs on rank 0 only."""

    def __init__(self, client: Client, run_id: str):
        self.client, self.run_id = client, run_id

    @classmethod
    def find_or_create(cls, client: Client, experiment_id: str, match: dict, run_name: str,
                       params: dict, tags: dict) -> TrackedRun:
        """The run with the `match` tags (resumed: status back to RUNNING), or a new one.
        Params the run lacks are logged (a run whose creation was cut short gets them on the
        next attempt); those it has keep their first value (MLflow refuses a change, and a
        resumed trial may run with other resources)."""
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in match.items())
        found = client.call("search_runs", [experiment_id], filter_string=query, max_results=1)
        have: dict = {}
        if found:
            run, have = cls(client, found[0].info.run_id), found[0].data.params
            client.call("update_run", run.run_id, status="RUNNING")
        else:
            created = client.call("create_run", experiment_id, run_name=run_name,
                                  tags={k: redact(str(v)) for k, v in {**match, **tags}.items()})
            run = cls(client, created.info.run_id)
        run.log_params({k: v for k, v in params.items() if k not in have})
        run.set_tags(tags)  # provenance of this attempt (e.g. the code that resumed it)
        return run

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, redact(str(v))[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.call("log_batch", self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, redact(str(v))) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            self.client.call("log_batch", self.run_id, tags=items[i:i + 100])

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self.client.call("log_batch", self.run_id, metrics=items[i:i + 500])

    def log_history(self, name: str, values: list[float], every: int = 1) -> int:
        """Log `values[step]` at each step (every `every`) not in the run's history yet
        (points logged live during training are not logged twice); returns how many."""
        return self.log_history_at(name, [(s, v) for s, v in enumerate(values) if s % every == 0])

    def log_history_at(self, name: str, points: list[tuple[int, float]]) -> int:
        """Log `value` at `step` for each (step, value) not in the run's history yet; returns
        how many."""
        from mlflow.entities import Metric

        have = {m.step for m in self.client.call("get_metric_history", self.run_id, name)}
        now = int(time.time() * 1000)
        items = [Metric(name, float(v), now, int(s)) for s, v in points if int(s) not in have]
        for i in range(0, len(items), 500):
            self.client.call("log_batch", self.run_id, metrics=items[i:i + 500])
        return len(items)

    def log_artifact(self, path: str | os.PathLike, subdir: str | None = None) -> None:
        self.client.call("log_artifact", self.run_id, str(path), artifact_path=subdir)

    def log_artifacts(self, folder: str | os.PathLike, subdir: str | None = None) -> None:
        self.client.call("log_artifacts", self.run_id, str(folder), artifact_path=subdir)

    def log_image(self, path: str | os.PathLike, key: str) -> None:
        """A figure as an MLflow image (the chart view's image grid shows it), step 0."""
        from PIL import Image

        with Image.open(path) as img:
            self.client.call("log_image", self.run_id, img.convert("RGB"), key=key, step=0)

    def log_dataset(self, name: str, digest: str, source: str, source_type: str,
                    profile: dict, context: str = "train") -> None:
        """An MLflow dataset input (the runs list's Dataset column)."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        ds = Dataset(name=name, digest=digest, source_type=source_type,
                     source=json.dumps({"uri": redact(source)}), profile=json.dumps(profile))
        self.client.call("log_inputs", self.run_id, datasets=[
            DatasetInput(ds, tags=[InputTag("mlflow.data.context", context)])])

    def finish(self, ok: bool = True) -> None:
        self.client.call("set_terminated", self.run_id, status="FINISHED" if ok else "FAILED")


def sweep_run(client: Client, experiment_id: str, sweep: str, params: dict,
              tags: dict) -> TrackedRun:
    """The sweep's parent run (one per sweep name in its experiment)."""
    return TrackedRun.find_or_create(client, experiment_id,
                                     {"memlab.role": "sweep", "sweep": sweep}, sweep, params,
                                     tags)


def trial_run(client: Client, experiment_id: str, sweep: str, trial_key: str, run_name: str,
              params: dict, tags: dict, parent_run_id: str | None = None) -> TrackedRun:
    """A trial's run in its sweep (several sweeps may share an experiment and a trial key): a
    top-level run, tied to the sweep's run `parent_run_id` by the tag memlab.sweep_run_id (not
    mlflow.parentRunId: the UI folds child runs under a collapsed parent)."""
    parent = {"memlab.sweep_run_id": parent_run_id} if parent_run_id else {}
    return TrackedRun.find_or_create(
        client, experiment_id, {"memlab.role": "trial", "sweep": sweep, "trial_key": trial_key},
        run_name, params, {**tags, **parent})


def system_metrics_on(mode: str) -> bool:
    """tracking.system_metrics resolved on this node: auto is on where there is an NVIDIA GPU."""
    return mode == "on" or (mode == "auto" and shutil.which("nvidia-smi") is not None)


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str | None, every_s: float):
    """MLflow's system-metrics monitor on `run_id` (None: none) while the block runs; best
    effort, like LiveRun: a monitor that cannot start is a warning, and its thread never stops
    the trial."""
    monitor = None
    if run_id is not None:
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(run_id, sampling_interval=every_s,
                                           resume_logging=True, tracking_uri=uri)
            monitor.start()
        except Exception as e:  # (an optional view: never a reason to stop computing)
            log.warning("system metrics not logged: %s", e)
            monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            monitor.finish()


class LiveRun:
    """A trial's run while it computes, best effort (one attempt per call, no retries): as
    `on_loss(step, loss)` it logs the loss as the model trains (after a failure it stops
    trying; the trial logs the whole curve from the train stage's metrics.json once training
    is over); `fail()` marks the run FAILED when the trial fails. Picklable: it travels to Ray
    Train workers and builds its client where it is called."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id, self.client, self.off = uri, run_id, None, False

    def __getstate__(self) -> dict:
        return {"uri": self.uri, "run_id": self.run_id}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["uri"], state["run_id"])

    def __call__(self, step: int, loss: float) -> None:
        if self.off:
            return
        try:
            if self.client is None:
                self.client = Client(self.uri, retry_s=0)
            self.client.call("log_metric", self.run_id, "train_loss", float(loss), step=step)
        except TrackingError as e:
            self.off = True
            log.warning("live loss logging stopped (%s); the trial logs the curve later", e)

    def fail(self) -> None:
        try:
            Client(self.uri, retry_s=0).call("set_terminated", self.run_id, status="FAILED")
        except TrackingError as e:
            log.warning("could not mark run %s FAILED: %s", self.run_id, e)
