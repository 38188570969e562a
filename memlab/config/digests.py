"""Content identities: what a key hashes when it names data rather than settings. A short
hash of a JSON-serialisable object (`content_key`), a file's SHA-256 (cached while the file is
unchanged), the content of a local dataset and of plugin files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from memlab.config.schema import DEMO_CORPUS_VERSION, LOCAL_SUFFIXES, DataSection


def content_key(obj: Any) -> str:
    """Short content hash of a JSON-serialisable object (12 hex digits of SHA-1)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


_DIGESTS: dict[tuple, str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (cached in this process while its inode, size and mtime hold:
    files here are replaced, not edited in place)."""
    p = Path(path).resolve()
    st = p.stat()
    memo = (str(p), st.st_ino, st.st_size, st.st_mtime_ns)
    if memo not in _DIGESTS:
        with open(p, "rb") as f:
            _DIGESTS[memo] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[memo]


def local_files(path: str | os.PathLike) -> list[Path]:
    """The files a local source is read from: the file itself, or every data file under the
    folder (by suffix), in a stable order."""
    p = Path(path).expanduser()
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.suffix in LOCAL_SUFFIXES and f.is_file())
    return [p]


def source_digest(data: DataSection) -> str:
    """What the data section's source holds, beyond its settings: the content of a local
    source's files; the generator version of the demo corpus; for a hub dataset its name and
    split (already in the section: a hub revision is not pinned)."""
    if data.source == "local" and data.path:
        root = Path(data.path).expanduser()
        files = local_files(root)
        rel = lambda f: str(f.relative_to(root)) if root.is_dir() else f.name  # noqa: E731
        return content_key([(rel(f), file_sha256(f)) for f in files if f.is_file()])
    if data.source == "demo":
        return f"demo-corpus-v{DEMO_CORPUS_VERSION}"
    return "hub"


def plugin_digests(plugins: list[str]) -> list[str]:
    """Plugins (scorers, strategies) named by file are identified by their content, by module
    by name."""
    return [file_sha256(p) if p.endswith(".py") and Path(p).expanduser().is_file() else p
            for p in plugins]


def local_model_digest(path: str | os.PathLike) -> str:
    """What a local model is, wherever it lies: a file (GGUF) by its bytes; a folder (a
    checkpoint, a sentence-transformers model) by its config.json files' bytes and every other
    file's name and size (weights are not read: gigabytes per validate)."""
    p = Path(path).expanduser()
    if p.is_file():
        return file_sha256(p)
    files = sorted(f for f in p.rglob("*") if f.is_file())
    return content_key([(str(f.relative_to(p)),
                         file_sha256(f) if f.name == "config.json" else f.stat().st_size)
                        for f in files])
