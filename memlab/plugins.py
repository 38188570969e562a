"""Loading a study's own modules (scorer plugins: `score.plugins`; strategy modules:
`train.plugins`): a `.py` file by path, else an importable module by name, each once per
process. What a module registers is its registry's business (memlab/scoring/registry.py,
memlab/strategies/base.py)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

_LOADED: dict[tuple[str, str], list[str]] = {}  # (kind, module) -> the names it registered
_IMPORTED: set[str] = set()  # modules run in this process (a file may be in both lists)


def load(kind: str, modules: Iterable[str], registered: Callable[[], Iterable[str]]
         ) -> list[str]:
    """Import each of `modules` once per process; return the names each added to
    `registered()` (its registry's names), in module order. `kind` names the setting
    (e.g. "score.plugins") in errors and keeps registries apart."""
    names: list[str] = []
    for name in modules:
        ident = str(Path(name).expanduser().resolve()) if name.endswith(".py") else name
        if (kind, ident) not in _LOADED:
            before = set(registered())
            if ident in _IMPORTED:
                pass  # (registered into both registries when it first ran)
            elif name.endswith(".py"):
                stem = f"memlab_{kind.split('.')[0]}_plugin_{Path(name).stem}"
                spec = importlib.util.spec_from_file_location(stem, ident)
                if spec is None or spec.loader is None:
                    raise ImportError(f"{kind}: cannot load {name}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[stem] = module  # (dataclasses of string annotations look it up)
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[stem]
                    raise
            else:
                importlib.import_module(name)
            _IMPORTED.add(ident)
            _LOADED[(kind, ident)] = [n for n in registered() if n not in before]
        names += _LOADED[(kind, ident)]
    return names
