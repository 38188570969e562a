"""The house: memlab's imports run one way, cli -> sweep -> stages / report -> scoring /
components -> engine / tracking -> io -> config -> strategies -> plugins. Every import of every
module is read (those inside functions too), so a lower floor reaching up fails here before it
becomes a circle."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLOOR = {"cli": 8, "__main__": 9, "sweep": 7, "stages": 6, "report": 6, "scoring": 5,
         "components": 5, "engine": 4, "tracking": 4, "io": 3, "config": 2, "strategies": 1,
         "plugins": 0}


def _package(module: str) -> str:
    """memlab.stages.train -> stages; memlab.cli -> cli."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "memlab" else \
                [f"memlab.{a.name}" for a in node.names]
            out += [(node.lineno, n) for n in names if n.startswith("memlab.")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("memlab.")]
    return out


def _modules():
    for path in sorted((ROOT / "memlab").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            yield ".".join(parts), path


def test_every_package_has_a_floor():
    assert {_package(m) for m, _ in _modules()} == set(FLOOR)


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda x: str(x))
def test_imports_only_go_down(module, path):
    here = _package(module)
    up = [f"{path.relative_to(ROOT)}:{line}: {target}" for line, target in _imports(path)
          if _package(target) != here and FLOOR[_package(target)] >= FLOOR[here]]
    assert not up, "imports that run up or sideways:\n" + "\n".join(up)


def test_no_lower_floor_imports_the_cli_or_the_sweep():
    """The acceptance check of the layering, spelled out: config, io, components, engine,
    scoring, stages and report never import memlab.cli or memlab.sweep."""
    bad = [f"{module} imports {target}" for module, path in _modules()
           if _package(module) in ("config", "io", "components", "engine", "scoring", "stages",
                                   "report")
           for _, target in _imports(path)
           if target == "memlab.cli" or target.startswith(("memlab.cli.", "memlab.sweep"))]
    assert not bad, bad


def test_the_walk_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from memlab.sweep.run import run_sweep\n")
    assert _imports(f) == [(2, "memlab.sweep.run")]
