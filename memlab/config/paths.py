"""Relative paths of a study, made absolute once, when the study is loaded.

A relative path is read from the folder of the file that writes it (the study file, or the
`_defaults.yaml` it extends), so a study runs the same from any working directory; a path given
by `--set` is read from the working directory (where the command was typed); a path no file
writes (a schema default such as `sweep.runs_root: runs`) from the study file's folder. Trials
run in other processes and on other nodes, so what they receive must already be absolute: no
later step resolves a path again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from memlab.config.schema import StudyConfig

# where a setting's value is read from: (the folder, how a message names it)
Folder = tuple[Path, str]


def folder_of(loc: str, study: Path) -> Folder:
    """The folder a relative path is read from, for a location as load.Located records it
    ('file:line', '--set key', or '' for a value no file writes)."""
    if loc.startswith("--"):
        return Path.cwd(), "the working directory"
    if loc:
        file = loc.rsplit(":", 1)[0]
        return Path(os.path.abspath(Path(file).parent)), f"the folder of {file}"
    return Path(os.path.abspath(study.parent)), "the study file's folder"


def _join(folder: Path, value: str) -> str:
    return os.path.abspath(os.path.join(folder, os.path.expanduser(value)))


def _local(value: str, folder: Path) -> bool:
    """A name that may be a hub id or a path (model.name, score.embedder) is a path when it
    is written as one or names something that exists in its folder (as transformers prefers an
    existing local folder to a hub id)."""
    return value.startswith((".", "/", "~")) or os.path.exists(_join(folder, value))


def absolute_uri(uri: str, folder: Path) -> str:
    """A relative SQLite or file store (or a bare folder) read from `folder`: otherwise each
    trial would open a store of its own in its own working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + _join(folder, uri[len("sqlite:///"):])
    if uri.startswith("file:"):  # an MLflow file store
        return Path(_join(folder, uri[len("file:"):].removeprefix("//"))).as_uri()
    if "://" not in uri:
        return _join(folder, uri)
    return uri


def resolve(cfg: StudyConfig, folder: Callable[[str], Folder]) -> dict[str, str]:
    """Make every path setting of `cfg` absolute, in place; `folder(key)` says where the
    setting's value was written. Returns, for each setting that was relative, a note for
    messages: the value as written and the folder it was read from. Idempotent: an absolute
    path stays as it is."""
    notes: dict[str, str] = {}

    def fix(key: str, value: str, as_uri: bool = False) -> str:
        where, named = folder(key)
        out = absolute_uri(value, where) if as_uri else _join(where, value)
        if out != value and not os.path.isabs(os.path.expanduser(value)):
            notes[key] = f"{value} read from {named}, {where}"
        return out

    s, d, m, sc = cfg.sweep, cfg.data, cfg.model, cfg.score
    s.runs_root = fix("sweep.runs_root", s.runs_root)
    m.cache_dir = fix("model.cache_dir", m.cache_dir)
    if d.path:
        d.path = fix("data.path", d.path)
    if m.name and (m.source == "gguf" or m.source == "hf" and
                   _local(m.name, folder("model.name")[0])):
        m.name = fix("model.name", m.name)
    if _local(sc.embedder, folder("score.embedder")[0]):
        sc.embedder = fix("score.embedder", sc.embedder)
    # (train.plugins are read before the study's sections: load_study resolves them then)
    sc.plugins = [fix("score.plugins", p) if p.endswith(".py") else p for p in sc.plugins]
    if cfg.tracking.uri:
        cfg.tracking.uri = fix("tracking.uri", cfg.tracking.uri, as_uri=True)
    return notes


def shown(path: str | os.PathLike) -> str:
    """A path as printed: relative to the working directory when it lies under it."""
    p = Path(path)
    return os.path.relpath(p) if p.is_absolute() and p.is_relative_to(Path.cwd()) else str(p)
