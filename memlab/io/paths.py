"""Where everything lives. Every path derives from the runs root, the sweep name and a content
key (dataset key, trial key): no timestamps, no random suffixes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from memlab.config.schema import StudyConfig


def content_key(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def sweep_root(cfg: StudyConfig) -> Path:
    return Path(cfg.sweep.runs_root).expanduser() / cfg.sweep.name


def source_fingerprint(path: str | None) -> list:
    """Size and mtime of every file of a local source, so an edited dataset is a new one."""
    if not path:
        return []
    p = Path(path).expanduser()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return [(str(f.relative_to(p) if p.is_dir() else f.name), f.stat().st_size,
             f.stat().st_mtime_ns) for f in files if f.exists()]


def data_key(cfg: StudyConfig) -> str:
    ident = asdict(cfg.data)
    if cfg.data.source == "local":
        ident["fingerprint"] = source_fingerprint(cfg.data.path)
    return content_key(ident)


def dataset_dir(cfg: StudyConfig) -> Path:
    """Dataset shards are shared by every trial of the sweep with the same data section."""
    return sweep_root(cfg) / "data" / data_key(cfg)


def trial_dir(cfg: StudyConfig, key: str) -> Path:
    return sweep_root(cfg) / key


def stage_dir(cfg: StudyConfig, key: str, stage: str) -> Path:
    """stage in {'train', 'gen', 'scores'}; each holds shards/outputs and a manifest."""
    return trial_dir(cfg, key) / stage


def default_tracking_uri(cfg: StudyConfig) -> str:
    db = (Path(cfg.sweep.runs_root).expanduser() / "mlflow.db").resolve()
    return f"sqlite:///{db}"


def artifact_root(cfg: StudyConfig) -> Path:
    return (Path(cfg.sweep.runs_root).expanduser() / "mlartifacts").resolve()
