"""Expand a study file into its trials and check everything that can be checked before a GPU
(or torch) is touched: types, unknown keys, paths, and relations between fields."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import os
import re
from dataclasses import dataclass, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from memlab.config.formats import problems as format_problems
from memlab.config.keys import StageKeys, config_identity, flatten, stage_keys, under
from memlab.config.labels import trial_label
from memlab.config.load import (
    TOP_LEVEL_EXTRA,
    ConfigError,
    Located,
    _check_value,
    _fmt,
    _suggest,
    deep_merge,
    find_defaults,
    from_dict,
    leaf_type,
    parse_override,
    read_yaml,
    set_dotted,
    to_dict,
)
from memlab.config.placement import selector_problem
from memlab.config.ranges import out_of_range, plain_name
from memlab.config.schema import NON_IDENTITY_KEYS, StudyConfig
from memlab.strategies import STRATEGIES
from memlab.strategies import load_plugins as load_strategies

RESERVED_NAMES = ("stages",)  # folders of the runs root that are not sweeps
REPORT_COLUMNS = ("strategy", "model", "dup", "seed", "n", "repeats")  # the tables' own columns


@dataclass
class Trial:
    config: StudyConfig
    point: dict[str, Any]  # the grid coordinates of this trial
    suffix: str = ""  # set by load_study when another trial reads the same (its key)

    @cached_property
    def keys(self) -> StageKeys:
        """The keys of its stages (hashes a local data source's files once per process)."""
        return stage_keys(self.config)

    @property
    def key(self) -> str:
        return self.keys.trial

    @property
    def name(self) -> str:
        """strategy-model-x<dup>-s<seed> (labels.trial_label), then `-<key>` when other grid
        axes make two trials read the same."""
        return trial_label(self.config) + (f"-{self.suffix}" if self.suffix else "")


@dataclass
class Study:
    path: Path
    base: StudyConfig
    grid: dict[str, list[Any]]
    trials: list[Trial]

    @property
    def name(self) -> str:
        return self.base.sweep.name

    @property
    def root(self) -> Path:
        return Path(self.base.sweep.runs_root) / self.base.sweep.name


def _tell_apart(trials: list[Trial]) -> None:
    """Trials that read the same (other grid axes: a dataset, a learning rate) get the values
    of the axes that differ among them as a suffix (`-arxiver`); the key if that is not
    enough."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault(t.name, []).append(t)
    for same in (g for g in groups.values() if len(g) > 1):
        axes = [k for k in same[0].point if len({repr(t.point.get(k)) for t in same}) > 1]
        for t in same:
            t.suffix = "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", str(t.point.get(k)))
                                for k in axes)
        if len({t.name for t in same}) < len(same) or not axes:
            for t in same:
                t.suffix = t.key


def _semantic_checks(cfg: StudyConfig, located: Located, point: dict[str, Any]) -> list[str]:
    """Every number in its range, then relations between fields and paths on disk, one
    located line each; `point` is the trial's grid coordinates. A key out of range is not
    checked again in its relations to others."""
    out: list[str] = []
    out_of: set[str] = set()
    said: set[tuple[str, str]] = set()

    def bad(key: str, msg: str) -> None:
        if key in out_of or (key, msg) in said:
            return
        said.add((key, msg))
        tag = f" (grid value {point[key]!r})" if key in point else ""
        out.append(_fmt(located.at(key), key, msg + tag))

    for key, value in flatten(to_dict(cfg)).items():
        if why := out_of_range(key, value):
            bad(key, why)
            out_of.add(key)
    if cfg.train.strategy not in STRATEGIES:
        bad("train.strategy", f"unknown strategy {cfg.train.strategy!r}"
            f"{_suggest(cfg.train.strategy, list(STRATEGIES))}; registered: "
            f"{', '.join(STRATEGIES)} (a study's own: train.plugins)")
        return out  # (the rest reads the strategy's settings)
    for check in (_path_checks, _data_checks, _train_checks, _attack_score_checks,
                  format_problems, cfg.strategy.check):
        for key, msg in check(cfg):
            bad(key, msg)
    return out


def _path_checks(cfg: StudyConfig) -> list[tuple[str, str]]:
    """Files and folders the study names, and names that become folders."""
    d, m, out = cfg.data, cfg.model, []
    if d.source == "local":
        if not d.path:
            out.append(("data.path", "required when data.source is 'local'"))
        elif not Path(os.path.expanduser(d.path)).exists():
            out.append(("data.path", f"no such file or folder: {d.path}"))
    if cfg.sweep.name in RESERVED_NAMES or not plain_name(cfg.sweep.name):
        out.append(("sweep.name", "must be a plain folder name other than "
                    f"{', '.join(RESERVED_NAMES)}"))
    for plugin in cfg.score.plugins:
        if plugin.endswith(".py"):
            if not Path(os.path.expanduser(plugin)).is_file():
                out.append(("score.plugins", f"no such file: {plugin}"))
        elif importlib.util.find_spec(plugin.split(".")[0]) is None:
            out.append(("score.plugins", f"no module named {plugin!r}"))
    if m.source in ("hf", "gguf") and not m.name:
        out.append(("model.name", f"required when model.source is '{m.source}'"))
    if m.source == "gguf" and m.name and not Path(os.path.expanduser(m.name)).is_file():
        out.append(("model.name", f"no such GGUF file: {m.name}"))
    if m.source == "hf" and m.name and m.name.startswith((".", "/", "~")):
        if not Path(os.path.expanduser(m.name)).is_dir():
            out.append(("model.name", f"no such model folder: {m.name}"))
    return out


def _data_checks(cfg: StudyConfig) -> list[tuple[str, str]]:
    d, out = cfg.data, []
    if d.source == "hf" and not d.hf_name:
        out.append(("data.hf_name", "required when data.source is 'hf'"))
    if not d.dup_mix:
        out.append(("data.dup_mix", "must be a non-empty list of counts >= 1"))
    elif len(set(d.dup_mix)) != len(d.dup_mix):
        out.append(("data.dup_mix", "counts must be distinct"))
    elif d.num_members < len(d.dup_mix):
        out.append(("data.num_members", f"must be >= len(data.dup_mix) = {len(d.dup_mix)}"))
    if d.source == "demo" and d.num_docs < d.num_members + d.num_nonmembers:
        out.append(("data.num_docs", "the demo corpus needs at least num_members + "
                    f"num_nonmembers = {d.num_members + d.num_nonmembers} documents"))
    c = d.canaries
    if c.count > 0:
        if c.template.count("{secret}") != 1:
            out.append(("data.canaries.template", "must hold {secret} exactly once"))
        if len(set(c.alphabet)) < 2 or len(set(c.alphabet)) != len(c.alphabet):
            out.append(("data.canaries.alphabet", "must be at least 2 distinct characters"))
        if not c.repeats or len(set(c.repeats)) != len(c.repeats):
            out.append(("data.canaries.repeats", "must be distinct counts >= 1"))
    return out


def _train_checks(cfg: StudyConfig) -> list[tuple[str, str]]:
    """What the trial's training asks of its resources; its strategy checks the rest."""
    d, t, res, out = cfg.data, cfg.train, cfg.reserved, []
    s = t.strategy
    stream = d.num_members and sum(d.dup_factor * d.dup_mix[i % len(d.dup_mix)]
                                   for i in range(d.num_members)) if d.dup_mix else 0
    epoch_steps = -(-stream // t.batch_size) if t.batch_size > 0 else 0
    if 0 < t.max_steps < epoch_steps:
        out.append(("train.max_steps", f"{t.max_steps} stops before one pass over the training "
                    f"stream ({epoch_steps} steps): documents would be seen fewer times than "
                    "their dup_count"))
    if t.seq_len < cfg.attack.prefix_tokens + cfg.attack.suffix_tokens:
        out.append(("train.seq_len", "must be >= attack.prefix_tokens + attack.suffix_tokens"))
    if res.cpu <= 0 and res.gpu <= 0:
        out.append((f"resources.{s}", "a trial must reserve some CPU or GPU"))
    for field in ("labels", "actor_labels"):
        if why := selector_problem(getattr(res, field) or {}):
            out.append((f"resources.{s}.{field}", why))
    if res.workers > 1 and not cfg.strategy.workers:
        out.append((f"resources.{s}.workers", f"{s} trains in the trial process: only a "
                    "strategy that trains across workers (full) takes several"))
    per_worker = t.batch_size // max(1, res.workers)
    if t.micro_batch > 0 and per_worker > 0 and per_worker % t.micro_batch:
        out.append(("train.micro_batch", f"{t.micro_batch} does not divide the {per_worker} "
                    "sequences each worker trains per step"))
    return out


def _attack_score_checks(cfg: StudyConfig) -> list[tuple[str, str]]:
    a, sc, out = cfg.attack, cfg.score, []
    if a.max_new_tokens < a.suffix_tokens:
        out.append(("attack.max_new_tokens", "must be >= attack.suffix_tokens"))
    if sc.plagiarism.method == "semantic" and sc.plagiarism.judge_kind != "embedding":
        out.append(("score.plagiarism.method", "semantic needs score.plagiarism.judge_kind="
                    "embedding (it seeds and retrieves by the judge's sentence embeddings)"))
    if sc.headline_threshold not in sc.sim_thresholds:
        out.append(("score.headline_threshold", "must be one of score.sim_thresholds"))
    if sc.corpus_passage_stride > sc.corpus_passage_words:
        out.append(("score.corpus_passage_stride", "must be <= score.corpus_passage_words "
                    "(a larger stride leaves words of the documents in no passage)"))
    return out


@dataclass(frozen=True)
class Bundle:
    """One value of a bundle axis: several settings that vary together (a model with the
    resources it needs, a dataset with its format and columns), shown as `label`."""

    label: str
    settings: dict[str, Any]


def _is_field(key: str) -> bool:
    try:
        leaf_type(key)
    except KeyError:
        return False
    return True


def _non_identity(key: str) -> bool:
    return under(key, NON_IDENTITY_KEYS)


def _bundles(axis: str, values: list[dict], where: str, problems: list[str]) -> list[Bundle]:
    """Check a bundle axis: each value maps dotted keys to values, plus an optional `label`
    (default: the values joined). A bundle must change what a trial computes: resources
    alone would make trials that differ only in where they run."""
    out: list[Bundle] = []
    for i, raw in enumerate(values):
        settings: dict[str, Any] = {}
        label = raw.get("label")
        for key, value in raw.items():
            if key == "label":
                continue
            try:
                tp = leaf_type(key)
                if is_dataclass(tp):
                    raise KeyError(key)
                settings[key] = _check_value(tp, value, key)
            except KeyError:
                problems.append(_fmt(where, f"grid.{axis}[{i}].{key}", "unknown key"))
            except TypeError as e:
                problems.append(_fmt(where, f"grid.{axis}[{i}].{key}", str(e)))
        if settings and all(_non_identity(k) for k in settings):
            problems.append(_fmt(where, f"grid.{axis}[{i}]", "changes only where or how a "
                                 "trial runs: a bundle must also change what it computes"))
        if label is None:
            label = ",".join(str(v) for v in settings.values())
        out.append(Bundle(label=str(label), settings=settings))
    labels = [b.label for b in out]
    if len(set(labels)) != len(labels):
        problems.append(_fmt(where, f"grid.{axis}", f"labels must differ: {labels}"))
    return out


def _overlap(a: str, b: str) -> bool:
    return under(a, (b,)) or under(b, (a,))


def _clashes(grid: dict[str, list[Any]], overridden: list[str], located: Located) -> list[str]:
    """A field set by two grid axes, or by an axis and --set, would take one of the two values
    silently (and trials that then coincide would be merged): refuse both."""
    sets: dict[str, set[str]] = {}  # axis -> the fields it sets
    for axis, values in grid.items():
        sets[axis] = ({k for v in values for k in v.settings} if isinstance(values[0], Bundle)
                      else {axis})
    out: list[str] = []
    axes = list(sets)
    for i, a in enumerate(axes):
        for b in axes[i + 1:]:
            both = sorted(x for x in sets[a] for y in sets[b] if _overlap(x, y))
            if both:
                out.append(_fmt(located.at(f"grid.{b}"), f"grid.{b}", f"sets {', '.join(both)}, "
                                f"which grid axis {a} sets too"))
        for key in overridden:
            if any(_overlap(key, x) for x in sets[a]):
                out.append(f"--set {key}: grid axis {a} sets it for every trial (change the "
                           "axis's values instead)")
    if any(a in REPORT_COLUMNS and isinstance(grid[a][0], Bundle) for a in axes):
        out.append(_fmt(located.at("grid"), "grid", f"a bundle axis cannot be named one of "
                        f"{', '.join(REPORT_COLUMNS)} (columns of the results table)"))
    return out


def bundle_keys(study: Study) -> set[str]:
    """Every field a bundle axis of the study sets."""
    return {k for values in study.grid.values() for v in values if isinstance(v, Bundle)
            for k in v.settings}


def load_study(path: str | os.PathLike, overrides: list[str] | None = None) -> Study:
    """Read a study file (+ defaults + overrides), validate it and expand its grid.

    Raises ConfigError listing every problem found, each on one line.
    """
    path = Path(path)
    located = Located()
    problems: list[str] = []
    raw, overridden = _read(path, overrides or [], located, problems)
    grid_raw = raw.pop("grid", None) or {}
    for extra in TOP_LEVEL_EXTRA:
        raw.pop(extra, None)
    _load_strategies(raw, grid_raw, located, problems)  # (before their sections are read)
    base = from_dict(StudyConfig, raw, "", located, problems)
    grid = _grid(grid_raw, located, problems)
    problems.extend(_clashes(grid, overridden, located))
    if problems:
        raise ConfigError(problems)
    trials = _trials(base, grid, located, problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    _tell_apart(trials)
    return Study(path=path, base=base, grid=grid, trials=trials)


def _read(path: Path, overrides: list[str], located: Located,
          problems: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The study file merged over its defaults file, then the `--set` overrides; and the keys
    those set."""
    raw: dict[str, Any] = {}
    defaults = find_defaults(path)
    if defaults is not None and defaults.resolve() != path.resolve():
        raw = read_yaml(defaults, located)
        if "grid" in raw:
            problems.append(f"{located.at('grid')}: grid: belongs in a study file, not defaults")
    raw = deep_merge(raw, read_yaml(path, located))
    overridden: list[str] = []
    for item in overrides:
        key, value = parse_override(item)
        located.where[key] = f"--set {key}"
        set_dotted(raw, key, value)
        overridden.append(key)
    return raw, overridden


def _load_strategies(raw: dict[str, Any], grid_raw: Any, located: Located,
                     problems: list[str]) -> None:
    """Import the study's own strategy modules (train.plugins), so that train.strategy can
    name them and train.<name> / resources.<name> be read. One list for the whole study: not a
    grid axis."""
    plugins = (raw.get("train") or {}).get("plugins") if isinstance(raw.get("train"), dict) \
        else None
    in_grid = isinstance(grid_raw, dict) and any(
        _overlap(k, "train.plugins") or (isinstance(v, list) and any(
            isinstance(b, dict) and any(_overlap(x, "train.plugins") for x in b) for b in v))
        for k, v in grid_raw.items())
    if in_grid:
        problems.append(_fmt(located.at("grid"), "train.plugins", "cannot vary in the grid: "
                             "list every strategy module of the study in train.plugins"))
    if not isinstance(plugins, list) or not all(isinstance(x, str) for x in plugins):
        return  # (a wrong type is reported where the section is read)
    for plugin in plugins:
        if plugin.endswith(".py") and not Path(os.path.expanduser(plugin)).is_file():
            problems.append(_fmt(located.at("train.plugins"), "train.plugins",
                                 f"no such file: {plugin}"))
            continue
        try:
            load_strategies([plugin])
        except Exception as e:  # noqa: BLE001  (a broken module is the study's problem)
            problems.append(_fmt(located.at("train.plugins"), "train.plugins",
                                 f"{plugin}: {type(e).__name__}: {e}".replace("\n", " ")))


def _grid(grid_raw: Any, located: Located, problems: list[str]) -> dict[str, list[Any]]:
    """The grid's axes, each value checked against its field's type (a bundle axis: each
    bundle's settings)."""
    grid: dict[str, list[Any]] = {}
    if not isinstance(grid_raw, dict):
        problems.append(_fmt(located.at("grid"), "grid", "must map dotted keys to lists"))
        return grid
    for key, values in grid_raw.items():
        where = located.at(f"grid.{key}")
        if not isinstance(values, list) or not values:
            problems.append(_fmt(where, f"grid.{key}", "must be a non-empty list"))
            continue
        if all(isinstance(v, dict) for v in values) and not _is_field(key):
            grid[key] = _bundles(key, values, where, problems)
            continue
        try:
            tp = leaf_type(key)
        except KeyError:
            problems.append(_fmt(where, f"grid.{key}", "unknown key (an axis of several "
                                 "settings at once takes a list of mappings of dotted keys)"))
            continue
        if is_dataclass(tp):
            problems.append(_fmt(where, f"grid.{key}", "names a section, not a field: give a "
                                 "field, or a bundle axis (a new name whose values are "
                                 "mappings of dotted keys)"))
            continue
        if _non_identity(key):
            problems.append(_fmt(where, f"grid.{key}", "says where or how a trial runs, not "
                                 "what it computes: it cannot be a grid axis"))
            continue
        try:
            grid[key] = [_check_value(tp, v, key) for v in values]
        except TypeError as e:
            problems.append(_fmt(where, f"grid.{key}", str(e)))
    return grid


def _trials(base: StudyConfig, grid: dict[str, list[Any]], located: Located,
            problems: list[str]) -> list[Trial]:
    """One trial per grid cell (each checked); cells whose configs are one trial are one."""
    trials: list[Trial] = []
    base_tree = to_dict(base)
    seen: set[str] = set()
    for combo in itertools.product(*grid.values()) if grid else [()]:
        point = dict(zip(grid.keys(), combo))
        tree = copy.deepcopy(base_tree)
        for key, value in point.items():
            if isinstance(value, Bundle):
                for field_key, v in value.settings.items():
                    set_dotted(tree, field_key, v)
                point[key] = value.label
            else:
                set_dotted(tree, key, value)
        cfg = from_dict(StudyConfig, tree, "", located, problems)
        problems.extend(_semantic_checks(cfg, located, point))
        if cfg.train.strategy not in STRATEGIES:
            continue
        ident = config_identity(cfg)
        if ident in seen:  # e.g. a zero_stage axis does not split head-only / LoRA trials
            continue
        seen.add(ident)
        trials.append(Trial(config=cfg, point=point))
    return trials
