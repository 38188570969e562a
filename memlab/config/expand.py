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
    """Relations between fields and paths on disk; `point` is the trial's grid coordinates."""
    out: list[str] = []

    out_of: set[str] = set()  # keys out of range: their relations to others are not checked
    said: set[tuple[str, str]] = set()

    def bad(key: str, msg: str) -> None:
        if key in out_of or (key, msg) in said:
            return
        said.add((key, msg))
        tag = f" (grid value {point[key]!r})" if key in point else ""
        out.append(_fmt(located.at(key), key, msg + tag))

    for key, value in flatten(to_dict(cfg)).items():  # every number in its range
        why = out_of_range(key, value)
        if why:
            bad(key, why)
            out_of.add(key)
    d, m, t, a = cfg.data, cfg.model, cfg.train, cfg.attack
    if d.source == "local":
        if not d.path:
            bad("data.path", "required when data.source is 'local'")
        elif not Path(os.path.expanduser(d.path)).exists():
            bad("data.path", f"no such file or folder: {d.path}")
    if cfg.sweep.name in RESERVED_NAMES or not plain_name(cfg.sweep.name):
        bad("sweep.name", f"must be a plain folder name other than {', '.join(RESERVED_NAMES)}")
    for plugin in cfg.score.plugins:
        if plugin.endswith(".py"):
            if not Path(os.path.expanduser(plugin)).is_file():
                bad("score.plugins", f"no such file: {plugin}")
        elif importlib.util.find_spec(plugin.split(".")[0]) is None:
            bad("score.plugins", f"no module named {plugin!r}")
    if d.source == "hf" and not d.hf_name:
        bad("data.hf_name", "required when data.source is 'hf'")
    if not d.dup_mix or any(k < 1 for k in d.dup_mix):
        bad("data.dup_mix", "must be a non-empty list of counts >= 1")
    elif len(set(d.dup_mix)) != len(d.dup_mix):
        bad("data.dup_mix", "counts must be distinct")
    elif d.num_members < len(d.dup_mix):
        bad("data.num_members", f"must be >= len(data.dup_mix) = {len(d.dup_mix)}")
    if m.source in ("hf", "gguf") and not m.name:
        bad("model.name", f"required when model.source is '{m.source}'")
    if m.source == "gguf" and m.name and not Path(os.path.expanduser(m.name)).is_file():
        bad("model.name", f"no such GGUF file: {m.name}")
    if m.source == "hf" and m.name and m.name.startswith((".", "/", "~")):
        if not Path(os.path.expanduser(m.name)).is_dir():
            bad("model.name", f"no such model folder: {m.name}")
    stream = d.num_members and sum(d.dup_factor * d.dup_mix[i % len(d.dup_mix)]
                                   for i in range(d.num_members)) if d.dup_mix else 0
    epoch_steps = -(-stream // t.batch_size) if t.batch_size > 0 else 0
    if 0 < t.max_steps < epoch_steps:
        bad("train.max_steps", f"{t.max_steps} stops before one pass over the training stream "
            f"({epoch_steps} steps): documents would be seen fewer times than their dup_count")
    pl = cfg.score.plagiarism
    if pl.method == "semantic" and pl.judge_kind != "embedding":
        bad("score.plagiarism.method", "semantic needs score.plagiarism.judge_kind=embedding "
            "(it seeds and retrieves by the judge's sentence embeddings)")
    if d.source == "demo" and d.num_docs < d.num_members + d.num_nonmembers:
        bad("data.num_docs", f"the demo corpus needs at least num_members + num_nonmembers = "
            f"{d.num_members + d.num_nonmembers} documents")
    if a.max_new_tokens < a.suffix_tokens:
        bad("attack.max_new_tokens", "must be >= attack.suffix_tokens")
    if t.seq_len < a.prefix_tokens + a.suffix_tokens:
        bad("train.seq_len", "must be >= attack.prefix_tokens + attack.suffix_tokens")
    if cfg.score.headline_threshold not in cfg.score.sim_thresholds:
        bad("score.headline_threshold", "must be one of score.sim_thresholds")
    res = getattr(cfg.resources, t.strategy)
    if res.cpu <= 0 and res.gpu <= 0:
        bad(f"resources.{t.strategy}", "a trial must reserve some CPU or GPU")
    for field in ("labels", "actor_labels"):
        if why := selector_problem(getattr(res, field) or {}):
            bad(f"resources.{t.strategy}.{field}", why)
    if res.workers > 1 and t.strategy != "full":
        bad(f"resources.{t.strategy}.workers", "only full fine-tuning runs several workers "
            "(head-only and LoRA trials train in the trial process)")
    elif t.strategy == "full" and res.workers > 0 and t.batch_size % res.workers:
        bad("train.batch_size", f"{t.batch_size} sequences per step do not split evenly over "
            f"resources.full.workers={res.workers}")
    if t.strategy == "full" and t.full.engine == "torch" and res.workers > 1:
        bad("train.full.engine", "torch trains in the trial process, on one GPU: "
            f"resources.full.workers={res.workers} needs deepspeed (or auto)")
    per_worker = t.batch_size // max(1, res.workers) if t.strategy == "full" else t.batch_size
    if t.micro_batch > 0 and per_worker > 0 and per_worker % t.micro_batch:
        bad("train.micro_batch", f"{t.micro_batch} does not divide the {per_worker} sequences "
            "each worker trains per step")
    for key, msg in format_problems(cfg):  # data.format, data.columns, template, hf split
        bad(key, msg)
    c = cfg.data.canaries
    if c.count > 0:
        if c.template.count("{secret}") != 1:
            bad("data.canaries.template", "must hold {secret} exactly once")
        if len(set(c.alphabet)) < 2 or len(set(c.alphabet)) != len(c.alphabet):
            bad("data.canaries.alphabet", "must be at least 2 distinct characters")
        if c.length < 1:
            bad("data.canaries.length", "must be >= 1")
        if not c.repeats or any(r < 1 for r in c.repeats) or len(set(c.repeats)) != len(c.repeats):
            bad("data.canaries.repeats", "must be distinct counts >= 1")
    if a.canary_alternatives < 1:
        bad("attack.canary_alternatives", "must be >= 1")
    m = cfg.score.membership
    if not 0.0 < m.mink_frac <= 1.0:
        bad("score.membership.mink_frac", "must be in (0, 1]")
    if m.bootstrap < 0:
        bad("score.membership.bootstrap", "must be >= 0 (0: no intervals)")
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
    raw: dict[str, Any] = {}
    defaults = find_defaults(path)
    if defaults is not None and defaults.resolve() != path.resolve():
        raw = read_yaml(defaults, located)
        if "grid" in raw:
            problems.append(f"{located.at('grid')}: grid: belongs in a study file, not defaults")
    study_raw = read_yaml(path, located)
    raw = deep_merge(raw, study_raw)
    overridden: list[str] = []
    for item in overrides or []:
        key, value = parse_override(item)
        located.where[key] = f"--set {key}"
        set_dotted(raw, key, value)
        overridden.append(key)

    grid_raw = raw.pop("grid", None) or {}
    for extra in TOP_LEVEL_EXTRA:
        raw.pop(extra, None)
    base = from_dict(StudyConfig, raw, "", located, problems)

    grid: dict[str, list[Any]] = {}
    if not isinstance(grid_raw, dict):
        problems.append(_fmt(located.at("grid"), "grid", "must map dotted keys to lists"))
        grid_raw = {}
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
    problems.extend(_clashes(grid, overridden, located))
    if problems:
        raise ConfigError(problems)

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
        ident = config_identity(cfg)
        if ident in seen:  # e.g. a zero_stage axis does not split head-only / LoRA trials
            continue
        seen.add(ident)
        trials.append(Trial(config=cfg, point=point))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    _tell_apart(trials)
    return Study(path=path, base=base, grid=grid, trials=trials)
