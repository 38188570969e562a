"""Expand a study file into its trials and check everything that can be checked before a GPU
(or torch) is touched: types, unknown keys, paths, and relations between fields."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from memlab.config.datafiles import problems as dataset_problems
from memlab.config.formats import problems as format_problems
from memlab.config.keys import (
    StageKeys,
    config_identity,
    flatten,
    member_stream,
    stage_keys,
    under,
)
from memlab.config.labels import trial_label
from memlab.config.load import (
    DEFAULTS_NAME,
    TOP_LEVEL_EXTRA,
    ConfigError,
    Located,
    _check_value,
    _fmt,
    _suggest,
    deep_merge,
    dotted_keys,
    find_defaults,
    from_dict,
    leaf_type,
    parse_override,
    read_yaml,
    set_dotted,
    to_dict,
)
from memlab.config.paths import folder_of, resolve
from memlab.config.placement import selector_problem
from memlab.config.privacy import problems as dp_problems
from memlab.config.ranges import out_of_range, plain_name
from memlab.config.schema import (
    CALIBRATED,
    NON_IDENTITY_KEYS,
    RANK_SIGNALS,
    STOP_METRICS,
    PlagiarismSection,
    StudyConfig,
)
from memlab.strategies import STRATEGIES
from memlab.strategies import load_plugins as load_strategies

RESERVED_NAMES = ("stages",)  # folders of the runs root that are not sweeps
PLAGIARISM = "score.plagiarism"  # the section `memlab plagiarism` reads on its own
REPORT_COLUMNS = ("strategy", "model", "dup", "seed", "n", "repeats")  # the tables' own columns


@dataclass
class Trial:
    config: StudyConfig
    point: dict[str, Any]  # the grid coordinates of this trial
    suffix: str = ""  # set by load_study when another trial reads the same (its key)
    # every grid cell it stands for (cells whose configs are one trial)
    cells: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @cached_property
    def keys(self) -> StageKeys:
        """The keys of its stages (hashes a local data source's files once per process)."""
        return stage_keys(self.config)

    @property
    def key(self) -> str:
        return self.keys.trial

    @property
    def name(self) -> str:
        """strategy-model-x<copies>-s<seed> (labels.trial_label), then `-<key>` when other grid
        axes make two trials read the same."""
        return trial_label(self.config) + (f"-{self.suffix}" if self.suffix else "")


@dataclass
class Study:
    path: Path
    base: StudyConfig
    grid: dict[str, list[Any]]
    trials: list[Trial]  # those --only selects (all, without it)
    defaults: str = ""  # where _defaults.yaml came from, or where none was found
    only: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # --only: axis -> values

    @property
    def name(self) -> str:
        return self.base.sweep.name

    @property
    def root(self) -> Path:
        return Path(self.base.sweep.runs_root) / self.base.sweep.name

    @property
    def subset(self) -> str:
        """The --only selection as options ('' for the whole grid)."""
        return " ".join(f"--only {a}={_shown(v)}" for a, vals in self.only.items()
                        for v in vals)


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


def _semantic_checks(cfg: StudyConfig, where: Callable[[str], str], tags: dict[str, str],
                     notes: dict[str, str]) -> list[str]:
    """Every number in its range, then relations between fields, paths and the local
    dataset's files, one located line each: `where(key)` is where the key's value was
    written (a grid axis, a bundle's key, --set, a file's line), `tags` what names the grid
    cell of a value the grid sets, `notes` how a relative path was read. A key out of range is
    not checked again in its relations to others."""
    out: list[str] = []
    out_of: set[str] = set()
    said: set[tuple[str, str]] = set()

    def bad(key: str, msg: str) -> None:
        if key in out_of or (key, msg) in said:
            return
        said.add((key, msg))
        note = f" ({notes[key]})" if key in notes else ""
        out.append(_fmt(where(key), key, msg + note + _nearest(tags, key, "")))

    for key, why in _range_checks(cfg):
        bad(key, why)
        out_of.add(key)
    if cfg.train.strategy not in STRATEGIES:
        bad("train.strategy", f"unknown strategy {cfg.train.strategy!r}"
            f"{_suggest(cfg.train.strategy, list(STRATEGIES))}; registered: "
            f"{', '.join(STRATEGIES)} (a study's own: train.plugins)")
        return out  # (the rest reads the strategy's settings)
    for check in (_path_checks, _data_checks, _train_checks, _stop_checks,
                  _attack_score_checks, format_problems, dp_problems, cfg.strategy.check):
        for key, msg in check(cfg):
            bad(key, msg)
    if not any(k.startswith("data.") for k, _ in said):  # (its files, once its settings hold)
        for key, msg in dataset_problems(cfg.data):
            bad(key, msg)
    return out


def _nearest(found: dict[str, Any], key: str, default: Any = None) -> Any:
    """The value of `key` or of its nearest parent in `found` (dotted keys)."""
    parts = key.split(".")
    while parts:
        if (k := ".".join(parts)) in found:
            return found[k]
        parts.pop()
    return default


def _range_checks(cfg: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key, why) for every number of `cfg` (a study's config, or its section at dotted
    `prefix`) outside the range its field declares (memlab/config/ranges.py)."""
    return [(key, why) for key, value in flatten(to_dict(cfg), prefix).items()
            if (why := out_of_range(key, value))]


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
    need = d.num_members + d.num_nonmembers + d.num_population
    if d.source == "demo" and d.num_docs < need:
        out.append(("data.num_docs", "the demo corpus needs at least num_members + "
                    f"num_nonmembers{' + num_population' if d.num_population else ''} = "
                    f"{need} documents"))
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
    stream = member_stream(cfg) if d.dup_mix else 0
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
    if t.eval_at and t.eval_every:
        out.append(("train.eval_every", f"{t.eval_every} with train.eval_at "
                    f"{t.eval_at}: give the evaluation points one way (the other off)"))
    per_worker = t.batch_size // max(1, res.workers)
    if t.micro_batch > 0 and per_worker > 0 and per_worker % t.micro_batch:
        out.append(("train.micro_batch", f"{t.micro_batch} does not divide the {per_worker} "
                    "sequences each worker trains per step"))
    return out


def _stop_checks(cfg: StudyConfig) -> list[tuple[str, str]]:
    """train.stop_when (early stopping): a metric it can read, a threshold where its
    comparison needs one, evaluation points to stop at."""
    t, rule = cfg.train, cfg.train.stop_when
    if not rule.on:
        return []
    if rule.metric not in STOP_METRICS:
        return [("train.stop_when.metric", f"unknown metric {rule.metric!r}"
                 f"{_suggest(rule.metric, list(STOP_METRICS))}; one of {', '.join(STOP_METRICS)}")]
    if not (t.eval_at or t.eval_every):
        return [("train.stop_when", "needs evaluation points to stop at (train.eval_at or "
                 "train.eval_every); without them the trial has only its final model")]
    trend = rule.op in ("rising", "falling")
    if trend == (rule.value is not None):
        return [("train.stop_when.value", f"{rule.value} with op {rule.op!r}: "
                 + ("rising and falling compare with the previous point, no value" if trend
                    else f"{rule.op} needs a threshold"))]
    return []


def _attack_score_checks(cfg: StudyConfig) -> list[tuple[str, str]]:
    a, sc, out = cfg.attack, cfg.score, []
    if a.max_new_tokens < a.suffix_tokens:
        out.append(("attack.max_new_tokens", "must be >= attack.suffix_tokens"))
    out += plagiarism_relations(sc.plagiarism)
    if sc.headline_threshold not in sc.sim_thresholds:
        out.append(("score.headline_threshold", "must be one of score.sim_thresholds"))
    if sc.corpus_passage_stride > sc.corpus_passage_words:
        out.append(("score.corpus_passage_stride", "must be <= score.corpus_passage_words "
                    "(a larger stride leaves words of the documents in no passage)"))
    return out + calibrated_problems(cfg) + rank_problems(cfg)


def calibrated_problems(cfg: StudyConfig) -> list[tuple[str, str]]:
    """What the calibrated membership signals (score.membership.rmia / recall / dcpdd) need:
    the membership signals on, a population split (data.num_population) and, for RMIA and
    DC-PDD, the base model's pass."""
    m, pop, out = cfg.score.membership, cfg.data.num_population, []
    at = "score.membership"
    for name in (n for n in CALIBRATED if getattr(m, n).enabled):
        if not m.enabled:
            out.append((f"{at}.{name}.enabled", f"needs {at}.enabled"))
            continue
        if name != "recall" and not m.base_pass:
            out.append((f"{at}.{name}.enabled", f"needs {at}.base_pass (the base model is "
                        "its reference)"))
        want = m.recall.shots if name == "recall" else 1
        if pop < want:
            out.append((f"{at}.{name}.enabled", f"needs data.num_population >= {want} (a "
                        "held-out population split, not the scored non-members), got "
                        f"{pop}"))
    return out


def rank_problems(cfg: StudyConfig) -> list[tuple[str, str]]:
    """What sample-and-rank (attack.rank, score.rank) needs where it is on: known signals, the
    headline among them, and population documents to prompt with."""
    r, sr, out = cfg.attack.rank, cfg.score.rank, []
    if not r.samples:
        return out
    if unknown := [s for s in sr.signals if s not in RANK_SIGNALS]:
        out.append(("score.rank.signals", f"unknown {', '.join(unknown)}; choose from "
                    f"{', '.join(RANK_SIGNALS)}"))
    if not sr.signals:
        out.append(("score.rank.signals", "needs at least one signal"))
    if sr.headline not in sr.signals:
        out.append(("score.rank.headline", f"{sr.headline!r} must be one of "
                    "score.rank.signals"))
    if r.prompt_tokens and not cfg.data.num_population:
        out.append(("attack.rank.prompt_tokens", "needs data.num_population > 0 (the prompts "
                    "are population documents; 0: empty prompts)"))
    return out


def plagiarism_relations(p: PlagiarismSection) -> list[tuple[str, str]]:
    """(key, why) for each relation between score.plagiarism's settings that does not hold:
    checked in a study and by `memlab plagiarism` alike (plagiarism_settings). An empty
    paraphrase window is refused, not run: it would type nothing paraphrase, silently."""
    out, at = [], f"{PLAGIARISM}."
    if p.method == "semantic" and p.judge_kind != "embedding":
        out.append((f"{at}method", f"semantic needs {at}judge_kind=embedding (it seeds and "
                    "retrieves by the judge's sentence embeddings)"))
    low, high = p.window()
    if low > high and p.paraphrase_low is None:  # (the judge kind's default: high is to blame)
        out.append((f"{at}paraphrase_high", f"{high:g} is below {at}paraphrase_low = {low:g} "
                    f"(the {p.judge_kind} judge's default): no judge score would fall in the "
                    "paraphrase window"))
    elif low > high:
        out.append((f"{at}paraphrase_low", f"{low:g} is above {at}paraphrase_high = {high:g}: "
                    "no judge score would fall in the paraphrase window"))
    elif p.judge_kind == "embedding" and (low > 1 or high < -1):
        out.append((f"{at}paraphrase_low" if low > 1 else f"{at}paraphrase_high",
                    f"the window [{low:g}, {high:g}] misses [-1, 1], where the embedding "
                    "judge's cosine lies: no judge score would fall in it"))
    return out


def plagiarism_settings(overrides: list[str], method: str | None = None) -> PlagiarismSection:
    """`memlab plagiarism`'s settings: score.plagiarism's defaults, `method`, then `--set`
    overrides (a key with or without its `score.plagiarism.` prefix), read and checked by the
    code that reads and checks a study (types, unknown keys, ranges, relations), so that the
    command refuses what `memlab validate` refuses, before any model or file is read. Raises
    ConfigError: one line per problem, naming the option that set the key."""
    located, problems, tree = Located(), [], {}
    if method is not None:
        tree["method"] = method
    for item in overrides:
        key, value = parse_override(item)
        key = key.removeprefix(f"{PLAGIARISM}.")
        located.where[key] = f"--set {key}"
        set_dotted(tree, key, value)
    p = from_dict(PlagiarismSection, tree, "", located, problems)
    if not problems:
        ranged = _range_checks(p, PLAGIARISM)
        out_of = {key for key, _ in ranged}
        for key, why in ranged + [r for r in plagiarism_relations(p) if r[0] not in out_of]:
            short = key.removeprefix(f"{PLAGIARISM}.")
            said = "--method" if short == "method" and "method" not in located.where \
                and method is not None else ""
            problems.append(f"{said}: {why}" if said else _fmt(located.at(short), short, why))
    if problems:
        raise ConfigError(problems)
    return p


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


def _bundles(axis: str, values: list[dict], located: Located,
             problems: list[str]) -> list[Bundle]:
    """Check a bundle axis: each value maps dotted keys to values, plus an optional `label`
    (default: the values joined). A bundle must change what a trial computes: resources
    alone would make trials that differ only in where they run. A problem names the line of
    its own key."""
    out: list[Bundle] = []
    for i, raw in enumerate(values):
        settings: dict[str, Any] = {}
        label = raw.get("label")
        for key, value in raw.items():
            at = f"grid.{axis}[{i}].{key}"
            if key == "label":
                continue
            try:
                tp = leaf_type(key)
                if is_dataclass(tp):
                    raise KeyError(key)
                settings[key] = _check_value(tp, value, key)
            except KeyError:
                msg = f"unknown key{_suggest(key, dotted_keys() + ['label'])}"
                problems.append(_fmt(located.at(at), at, msg))
            except TypeError as e:
                problems.append(_fmt(located.at(at), at, str(e)))
        if settings and all(_non_identity(k) for k in settings):
            problems.append(_fmt(located.at(f"grid.{axis}[{i}]"), f"grid.{axis}[{i}]",
                                 "changes only where or how a trial runs: a bundle must also "
                                 "change what it computes"))
        if label is None:
            label = ",".join(str(v) for v in settings.values())
        out.append(Bundle(label=str(label), settings=settings))
    labels = [b.label for b in out]
    if len(set(labels)) != len(labels):
        problems.append(_fmt(located.at(f"grid.{axis}"), f"grid.{axis}",
                             f"labels must differ: {labels}"))
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


def load_study(path: str | os.PathLike, overrides: list[str] | None = None,
               only: list[str] | None = None) -> Study:
    """Read a study file (+ defaults + overrides), validate it and expand its grid; `only`
    (--only AXIS=VALUE) keeps the trials of the grid cells it names. Relative paths are made
    absolute here, once (memlab/config/paths.py).

    Raises ConfigError listing every problem found, each on one line.
    """
    path = Path(path)
    located = Located()
    problems: list[str] = []
    raw, overridden, defaults = _read(path, overrides or [], located, problems)
    grid_raw = raw.pop("grid", None) or {}
    for extra in TOP_LEVEL_EXTRA:
        raw.pop(extra, None)
    _load_strategies(raw, grid_raw, located, problems, path)  # (before their sections are read)
    base = from_dict(StudyConfig, raw, "", located, problems)
    grid = _grid(grid_raw, located, problems)
    problems.extend(_clashes(grid, overridden, located))
    if problems:
        raise ConfigError(problems)
    trials = _trials(base, grid, located, problems, path)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    resolve(base, lambda key: folder_of(located.at(key), path))
    _tell_apart(trials)  # (over the whole grid: a trial has one name, with --only or not)
    trials, chosen = _select(trials, grid, only or [])
    return Study(path=path, base=base, grid=grid, trials=trials, defaults=defaults,
                 only=chosen)


def _read(path: Path, overrides: list[str], located: Located,
          problems: list[str]) -> tuple[dict[str, Any], list[str], str]:
    """The study file merged over its defaults file, then the `--set` overrides (a grid axis
    given as `--set grid.AXIS=[...]` replaces or adds that axis); the keys those set; and
    where the defaults came from (or the folders searched for them). A study that sets
    nothing is refused: it would run the defaults (the demo) as they are."""
    raw: dict[str, Any] = {}
    found = find_defaults(path)
    itself = found is not None and found.resolve() == path.resolve()
    if itself:
        defaults = f"defaults: {path} is itself a defaults file"
    elif found is not None:
        defaults = f"defaults: {found}"
        raw = read_yaml(found, located)
        if "grid" in raw:
            problems.append(f"{located.at('grid')}: grid: belongs in a study file, not defaults")
    else:
        defaults = (f"defaults: no {DEFAULTS_NAME} in {os.path.abspath(path.parent)} or a "
                    "folder above it: memlab's own (memlab/config/schema.py)")
    study = read_yaml(path, located)
    if not set(study) - {"description"} and not itself:
        but = " but a description" if study else ""
        raise ConfigError([f"{path}: the study sets nothing{but}: it would run the defaults as "
                           "they are; name what it changes (e.g. sweep: {name: my-study}, "
                           "data, model) and its grid"])
    raw = deep_merge(raw, study)
    overridden: list[str] = []
    for item in overrides:
        key, value = parse_override(item)
        located.where[key] = f"--set {key}"
        if key.startswith("grid."):  # an axis, whole (its problems name this --set)
            if raw.get("grid") is None:
                raw["grid"] = {}
            if isinstance(raw["grid"], dict):
                raw["grid"][key[len("grid."):]] = value
            continue
        set_dotted(raw, key, value)
        overridden.append(key)
    return raw, overridden, defaults


def _load_strategies(raw: dict[str, Any], grid_raw: Any, located: Located,
                     problems: list[str], path: Path) -> None:
    """Import the study's own strategy modules (train.plugins; a relative file read from the
    folder of the file that names it), so that train.strategy can name them and
    train.<name> / resources.<name> be read. One list for the whole study: not a grid
    axis."""
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
    folder, named = folder_of(located.at("train.plugins"), path)
    plugins = raw["train"]["plugins"] = [
        os.path.abspath(folder / os.path.expanduser(p)) if p.endswith(".py") else p
        for p in plugins]
    for plugin in plugins:
        if plugin.endswith(".py") and not Path(plugin).is_file():
            problems.append(_fmt(located.at("train.plugins"), "train.plugins",
                                 f"no such file: {plugin} (relative files are read from "
                                 f"{named}, {folder})"))
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
            grid[key] = _bundles(key, values, located, problems)
            continue
        try:
            tp = leaf_type(key)
        except KeyError:
            hint = _suggest(key, dotted_keys()) or (" (an axis of several settings at once "
                                                    "takes a list of mappings of dotted keys)")
            problems.append(_fmt(where, f"grid.{key}", f"unknown key{hint}"))
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
            problems: list[str], path: Path) -> list[Trial]:
    """One trial per grid cell, each checked and its paths made absolute; cells whose configs
    are one trial are one (it lists every cell it stands for)."""
    trials: dict[str, Trial] = {}
    base_tree = to_dict(base)
    for combo in itertools.product(*(enumerate(v) for v in grid.values())) if grid else [()]:
        tree, point, origin, tags = _cell(base_tree, grid, combo)
        where = lambda key, origin=origin: located.at(_nearest(origin, key, key))  # noqa: E731
        cfg = from_dict(StudyConfig, tree, "", located, problems)
        notes = resolve(cfg, lambda key, where=where: folder_of(where(key), path))
        problems.extend(_semantic_checks(cfg, where, tags, notes))
        if cfg.train.strategy not in STRATEGIES:
            continue
        ident = config_identity(cfg)
        if ident in trials:  # e.g. a zero_stage axis does not split head-only / LoRA trials
            trials[ident].cells.append(point)
            continue
        trials[ident] = Trial(config=cfg, point=point, cells=[point])
    return list(trials.values())


def _cell(base_tree: dict, grid: dict[str, list[Any]], combo: tuple) -> tuple[dict, ...]:
    """A grid cell (one (index, value) per axis): its settings tree; its point (axis ->
    value, a bundle's label); where each field it sets is written (field -> the located key of
    the axis, or of the bundle's own key); and what a problem with such a field adds."""
    tree = copy.deepcopy(base_tree)
    point: dict[str, Any] = {}
    origin: dict[str, str] = {}
    tags: dict[str, str] = {}
    for axis, (i, value) in zip(grid, combo):
        if isinstance(value, Bundle):
            for key, v in value.settings.items():
                set_dotted(tree, key, v)
                origin[key] = f"grid.{axis}[{i}].{key}"
                tags[key] = f" (grid axis {axis}: {value.label})"
            point[axis] = value.label
        else:
            set_dotted(tree, axis, value)
            origin[axis] = f"grid.{axis}"
            tags[axis] = f" (grid value {value!r})"
            point[axis] = value
    return tree, point, origin, tags


def _shown(value: Any) -> str:
    """A grid value as the grid writes it (a bundle: its label)."""
    if isinstance(value, Bundle):
        return value.label
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix(
        "\n...").strip()


def _matches(value: Any, raw: str) -> bool:
    """Whether --only's text names this grid value: as the grid writes it, or as YAML reads
    it (`5e-4` and `0.0005` are one learning rate)."""
    if isinstance(value, Bundle):
        return raw == value.label
    if raw in (_shown(value), str(value)):
        return True
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError:
        return False
    if isinstance(value, float) and isinstance(parsed, str):
        with contextlib.suppress(ValueError):
            parsed = float(parsed)
    return isinstance(parsed, bool) == isinstance(value, bool) and parsed == value


def _select(trials: list[Trial], grid: dict[str, list[Any]],
            only: list[str]) -> tuple[list[Trial], dict[str, list[Any]]]:
    """The trials of the grid cells `--only AXIS=VALUE` names (values of one axis add up,
    axes narrow), and the selection; one line naming the option for an axis or a value the
    grid does not have, with what it has."""
    chosen: dict[str, list[Any]] = {}
    problems: list[str] = []
    for item in only:
        axis, sep, raw = (x.strip() for x in item.partition("="))
        if not sep or not axis:
            problems.append(f"--only {item}: expected AXIS=VALUE, e.g. --only seed=0")
        elif axis not in grid:
            axes = ", ".join(grid) or "none (the study has no grid)"
            problems.append(f"--only {axis}: not a grid axis{_suggest(axis, list(grid))}; the "
                            f"grid's axes: {axes}")
        elif not (hit := [v for v in grid[axis] if _matches(v, raw)]):
            problems.append(f"--only {axis}={raw}: not a value of grid axis {axis} (its "
                            f"values: {', '.join(_shown(v) for v in grid[axis])})")
        else:
            chosen.setdefault(axis, []).append(hit[0])
    if problems:
        raise ConfigError(problems)
    label = lambda v: v.label if isinstance(v, Bundle) else v  # noqa: E731  (as points hold)
    keep = [t for t in trials if any(all(any(c[a] == label(v) for v in vals)
                                         for a, vals in chosen.items()) for c in t.cells)]
    return keep, chosen
