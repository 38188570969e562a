"""YAML -> typed config: defaults + study deltas + `--set` overrides, with located errors.

A study file names only what it changes and a `grid` (dotted key -> list of values). It is
merged over `_defaults.yaml` (found next to it or in a parent folder). Every error names the
key path and, where the value came from a file, the file and line.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import types
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from memlab.config.schema import PerStrategy, StudyConfig
from memlab.strategies import STRATEGIES

DEFAULTS_NAME = "_defaults.yaml"
TOP_LEVEL_EXTRA = ("grid", "defaults", "description")


class ConfigError(Exception):
    """One or more config problems, each a single line naming the key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Located:
    """Where each dotted key path was written: 'file:line'."""

    where: dict[str, str] = dataclasses.field(default_factory=dict)

    def at(self, key: str) -> str:
        # Most specific recorded location of the key or its nearest parent.
        parts = key.split(".")
        while parts:
            loc = self.where.get(".".join(parts))
            if loc:
                return loc
            parts.pop()
        return ""


def _fmt(loc: str, key: str, msg: str) -> str:
    """One located problem: 'file:line: key: msg', '--set key: msg', or, for a key inside
    what an option sets (a grid axis given by --set), '--set grid.axis: key: msg'."""
    if loc == f"--set {key}":
        return f"{loc}: {msg}"
    return f"{loc}: {key}: {msg}" if loc else f"{key}: {msg}"


# --------------------------------------------------------------------------- YAML with lines
def _node_to_py(node: yaml.Node, file: str, prefix: str, located: Located) -> Any:
    loader = yaml.SafeLoader("")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k_node, v_node in node.value:
            key = str(loader.construct_object(k_node, deep=True))
            path = f"{prefix}.{key}" if prefix else key
            located.where[path] = f"{file}:{k_node.start_mark.line + 1}"
            out[key] = _node_to_py(v_node, file, path, located)
        return out
    if isinstance(node, yaml.SequenceNode):  # item i of `key` is `key[i]` (a bundle's line)
        out_list = []
        for i, v_node in enumerate(node.value):
            located.where[f"{prefix}[{i}]"] = f"{file}:{v_node.start_mark.line + 1}"
            out_list.append(_node_to_py(v_node, file, f"{prefix}[{i}]", located))
        return out_list
    return loader.construct_object(node, deep=True)


def read_yaml(path: Path, located: Located) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError([f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}"]) from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError([f"{path}:1: top level must be a mapping"])
    return _node_to_py(node, str(path), "", located)


def deep_merge(base: dict, delta: dict) -> dict:
    out = dict(base)
    for k, v in delta.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def set_dotted(tree: dict, key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError([f"{key}: '{p}' is not a section"])
    node[parts[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=v` -> ('a.b', yaml-parsed v)."""
    if "=" not in item:
        raise ConfigError([f"--set {item}: expected KEY=VALUE"])
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


# --------------------------------------------------------------------------- typed conversion
def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if get_origin(tp) is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if get_origin(tp) is dict:
        k, v = get_args(tp)
        return f"mapping of {_type_name(k)} to {_type_name(v)}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check_value(tp: Any, value: Any, key: str) -> Any:
    """Return the value coerced to `tp`, or raise TypeError with a message."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _check_value(arg, value, key)
            except TypeError:
                continue
        raise TypeError(f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(get_args(tp)):
            return "on" if value else "off"  # YAML 1.1 reads a bare on / off as a boolean
        if value in get_args(tp):
            return value
        raise TypeError(f"expected one of {_type_name(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected {_type_name(tp)}, got {value!r}")
        (item,) = get_args(tp)
        return [_check_value(item, v, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected {_type_name(tp)}, got {value!r}")
        kt, vt = get_args(tp)
        return {_check_value(kt, k, key): _check_value(vt, v, key) for k, v in value.items()}
    if tp is Any:  # (a mapping handed to a library that checks it: a peft method's `peft`)
        return value
    if tp is type(None):
        if value is None:
            return None
        raise TypeError(f"expected null, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported type {tp}")
    got = type(value).__name__
    raise TypeError(f"expected {_type_name(tp)}, got {got} {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types (typing evaluates the annotations anew on every call: a
    study of a dozen trials asked it thousands of times, seconds of `validate`)."""
    return get_type_hints(cls)


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def from_dict(cls: type, data: Any, prefix: str, located: Located, problems: list[str]):
    """Build dataclass `cls` from `data`, appending located problems instead of raising (so
    that one run reports every problem of a study file: load_study raises them together).
    A PerStrategy section also takes a sub-section per registered strategy."""
    if not isinstance(data, dict):
        problems.append(_fmt(located.at(prefix), prefix, f"expected a section, got {data!r}"))
        return cls()
    hints = _hints(cls)
    names = [f.name for f in fields(cls)]
    per_strategy = list(STRATEGIES) if issubclass(cls, PerStrategy) else []
    kwargs, sections = {}, {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key in per_strategy:
            sections[key] = from_dict(cls.section_type(cls, key), value, path, located,
                                      problems)
            continue
        if key not in names:
            extra = list(TOP_LEVEL_EXTRA) if not prefix else []  # (grid, description, ...)
            msg = f"unknown key{_suggest(key, names + per_strategy + extra)}"
            if prefix.startswith("train.") and prefix.count(".") == 1:  # a strategy's settings
                msg += f"; {prefix} takes: {', '.join(names)}"
            problems.append(_fmt(located.at(path), path, msg))
            continue
        tp = hints[key]
        if is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, path, located, problems)
            continue
        try:
            kwargs[key] = _check_value(tp, value, path)
        except TypeError as e:
            problems.append(_fmt(located.at(path), path, str(e)))
    out = cls(**kwargs)
    out.__dict__.update(sections)
    return out


def field_at(key: str) -> tuple[Any, dataclasses.Field | None]:
    """(type, dataclass field) of the setting at dotted `key` in StudyConfig (a strategy's
    sub-section: its type, no field); KeyError if there is none."""
    tp: Any = StudyConfig
    found = None
    for part in key.split("."):
        if not is_dataclass(tp):
            raise KeyError(part)
        if issubclass(tp, PerStrategy) and part in STRATEGIES:
            tp, found = tp.section_type(tp, part), None
            continue
        hints = _hints(tp)
        if part not in hints:
            raise KeyError(part)
        found = next(f for f in fields(tp) if f.name == part)
        tp = hints[part]
    return tp, found


def dotted_keys(tp: Any = StudyConfig, prefix: str = "") -> list[str]:
    """Every setting's dotted key (a registered strategy's sub-sections included): what a grid
    axis, a bundle or --only may name, and what a misspelled one is matched against."""
    out: list[str] = []
    hints = _hints(tp)
    subs = [(f.name, hints[f.name]) for f in fields(tp)]
    if issubclass(tp, PerStrategy):
        subs += [(name, tp.section_type(tp, name)) for name in STRATEGIES]
    for name, sub in subs:
        key = f"{prefix}{name}"
        out += dotted_keys(sub, key + ".") if is_dataclass(sub) else [key]
    return out


def leaf_type(key: str) -> Any:
    """Type of the field at dotted `key` in StudyConfig; KeyError if there is none."""
    return field_at(key)[0]


def to_dict(cfg: Any) -> Any:
    """A config (or any part of it) as plain data: dataclasses.asdict, with each PerStrategy
    section's strategy sub-sections after its own fields (as `train.lora.r` is written)."""
    if is_dataclass(cfg) and not isinstance(cfg, type):
        out = {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
        if isinstance(cfg, PerStrategy):
            out.update({n: to_dict(v) for n, v in cfg.sections().items()})
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(to_dict(v) for v in cfg)
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return copy.deepcopy(cfg)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def find_defaults(study: Path) -> Path | None:
    """The first _defaults.yaml in the study's folder or a folder above it (the study's path
    resolved: `s.yaml` typed in its own folder still looks above it)."""
    study = Path(study).resolve()
    for folder in [study.parent, *study.parent.parents]:
        cand = folder / DEFAULTS_NAME
        if cand.is_file():
            return cand
    return None

