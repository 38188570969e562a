"""The one module that talks to MLflow.

One experiment per sweep; in it a parent run for the sweep (the grid as params, the sweep's
summary table and plots as artifacts) and one child run per trial (`mlflow.parentRunId`),
each found again by its tags (`memlab.role`, `sweep`, `trial_key`) so a resumed sweep continues
its runs instead of opening new ones. Params once per run, metrics from rank 0 only,
per-document tables as Parquet artifacts (never as metrics), provenance as tags. Everything
goes through MlflowClient to the tracking URI (an HTTP server for cluster runs: artifacts are
proxied by the server, nothing is written to a local ./mlruns on workers).

Tracking never decides whether work is done: every call is retried with exponential backoff
(tenacity) for up to `retry_s` seconds and then raises TrackingError, which the caller turns
into "not logged yet" while the computed results stay on disk. MLflow's own HTTP retries are
turned down (unless set in the environment) so that this is the one retry policy.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
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
    """Create the sweep's experiment once (in the driver, before trials start)."""
    exp = client.call("get_experiment_by_name", name)
    if exp is not None:
        return exp.experiment_id
    from memlab.config.keys import content_key
    from memlab.config.ranges import plain_name

    # (an experiment name is not always a folder name: "/Users/me/x", "../x" get a key's)
    folder = name if plain_name(name) else f"experiment-{content_key(name)}"
    location = Path(artifact_root, folder).as_uri() if artifact_root is not None else None
    return client.call("create_experiment", name, artifact_location=location)


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
        from mlflow.entities import Metric

        have = {m.step for m in self.client.call("get_metric_history", self.run_id, name)}
        now = int(time.time() * 1000)
        items = [Metric(name, float(v), now, s) for s, v in enumerate(values)
                 if s % every == 0 and s not in have]
        for i in range(0, len(items), 500):
            self.client.call("log_batch", self.run_id, metrics=items[i:i + 500])
        return len(items)

    def log_artifact(self, path: str | os.PathLike, subdir: str | None = None) -> None:
        self.client.call("log_artifact", self.run_id, str(path), artifact_path=subdir)

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
    """A trial's run in its sweep, a child of the sweep's run when `parent_run_id` is given
    (several sweeps may share an experiment and a trial key)."""
    parent = {"mlflow.parentRunId": parent_run_id} if parent_run_id else {}
    return TrackedRun.find_or_create(
        client, experiment_id, {"memlab.role": "trial", "sweep": sweep, "trial_key": trial_key},
        run_name, params, {**tags, **parent})


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
