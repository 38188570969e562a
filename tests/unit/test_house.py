"""Issue 31: the house's rooms stay apart.

- stages/: a stage module (data, train, generate, base, score) imports no other stage module,
  only the runner's own modules (work, runner, actors, warm), and no module a stage module
  imports reaches another stage module: stages/ is at most two floors inside;
- no function in memlab/ is longer than 80 lines;
- outside the strategy units (memlab/strategies/), at most 3 places branch on a strategy's
  name or look up a strategy's resources by name.
"""

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_layers import _imports, _modules

STAGES = ROOT / "memlab" / "stages"
RUNNER = {"memlab.stages.work", "memlab.stages.runner", "memlab.stages.actors",
          "memlab.stages.warm"}
STAGE_MODULES = {f"memlab.stages.{p.stem}" for p in STAGES.glob("*.py")
                 if p.stem != "__init__"} - RUNNER
MODULES = dict(_modules())
MAX_LINES = 80


def _memlab_imports(module: str) -> set[str]:
    return {target for _, target in _imports(MODULES[module]) if target in MODULES}


def test_the_chain_names_every_stage_module():
    from memlab.config.chain import CHAIN

    assert {link.work for link in CHAIN} == STAGE_MODULES


@pytest.mark.parametrize("module", sorted(STAGE_MODULES))
def test_a_stage_module_imports_only_the_runner_of_stages(module):
    inside = {t for t in _memlab_imports(module) if t.startswith("memlab.stages.")}
    assert inside <= RUNNER, f"{module} imports {sorted(inside - RUNNER)}"


@pytest.mark.parametrize("module", sorted(STAGE_MODULES))
def test_what_a_stage_module_imports_reaches_no_stage_module(module):
    bad = {f"{m} -> {t}" for m in _memlab_imports(module) for t in _memlab_imports(m)
           if t in STAGE_MODULES}
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(RUNNER))
def test_the_runner_imports_no_stage_module(module):
    assert not _memlab_imports(module) & STAGE_MODULES


def test_the_walk_sees_a_stage_importing_another(tmp_path, monkeypatch):
    f = tmp_path / "generate.py"
    f.write_text("def f():\n    from memlab.stages.base import base_rows\n")
    monkeypatch.setitem(MODULES, "memlab.stages.fake", f)
    assert _memlab_imports("memlab.stages.fake") == {"memlab.stages.base"}


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1, node.lineno


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.relative_to(ROOT)}:{line}: {name} ({n} lines)"
            for path in sorted((ROOT / "memlab").rglob("*.py"))
            for name, n, line in _functions(path) if n > MAX_LINES]
    assert not long, "\n".join(long)


# a branch on a strategy's name (`strategy == "full"`, `s in ("head", "lora")`), a strategy
# named in code (`.train.lora`, `resources.full`), or a per-strategy resource lookup
# (`getattr(cfg.resources, cfg.train.strategy)`)
BRANCH = re.compile(r"strategy\s*(==|!=)|\bstrategy\s+(not\s+)?in\s*[(\[{\"']|"
                    r"[\"'](full|head|lora)[\"']\s*(==|!=|in\s)|(==|!=)\s*[\"'](full|head|lora)[\"']"
                    r"|\.(train|resources)\.(full|head|lora)\b"
                    r"|getattr\([\w.]*resources,|\bin\s*[(\[{][^)\]}]*[\"'](full|head|lora)[\"']")


def _branches() -> list[str]:
    out = []
    for path in sorted((ROOT / "memlab").rglob("*.py")):
        if path.is_relative_to(ROOT / "memlab" / "strategies"):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if BRANCH.search(code) and not code.strip().startswith(('"', "'")):
                out.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    return out


def test_at_most_three_strategy_branches_outside_the_strategy_units():
    found = _branches()
    assert len(found) <= 3, "\n".join(found)


def test_the_branch_search_finds_what_it_should():
    for code in ('if cfg.train.strategy == "full":', 'x = getattr(c.resources, s)',
                 'if s in ("head", "lora"):', 'lr = cfg.train.lora.lr'):
        assert BRANCH.search(code), code
    assert not BRANCH.search("res = cfg.reserved")
    assert not BRANCH.search("for ax, strategy in zip(axs[0], strategies):")
