"""What a fine-tuning strategy is to memlab: one `Strategy`, registered by the module that
declares it, found by name (`train.strategy`) through the registry as scorers are.

A strategy says everything memlab knows about it, and nothing outside its module branches on
its name:
- its settings (`train.<name>`: a dataclass of documented fields, `lr` among them; each
  numeric field carries its range);
- what trains (`prepare`: marks the trainable parameters of the loaded model, or wraps it,
  e.g. in peft adapters) and how the result is saved (`saved`: the whole model, or an adapter
  over the base model);
- what trains it (`engine`: plain torch in the trial process, or DeepSpeed ZeRO over Ray Train
  workers) and what of that resolution goes into its train key (`first_engine`: the engine
  not named in it; `auto`: settings hashed as what they resolve to);
- its config checks (`check`), its memory and compute for `memlab plan` (`memory`, `flops`,
  `trainable`);
- its resources are `resources.<name>` (every strategy has that section).

This module sits on memlab's lowest floors: it imports nothing of memlab but the plugin loader
(memlab/plugins.py), so that the config (memlab/config/) can build the typed tree of every
registered strategy. Heavy imports (torch,
peft, deepspeed) happen inside a strategy's functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

GIB = 1024 ** 3


def setting(default, help: str, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, **kw):
    """A documented config field; `ge` / `gt` / `le` / `lt`: its range (for a list, each
    item's), checked by `memlab validate` before anything starts (memlab/config/ranges.py).
    A numeric field without a range fails tests/unit/test_config_ranges.py."""
    meta = {"help": help}
    if (ge, gt, le, lt) != (None, None, None, None):
        low, low_in = (ge, True) if ge is not None else (gt, False) if gt is not None \
            else (-math.inf, False)
        high, high_in = (le, True) if le is not None else (lt, False) if lt is not None \
            else (math.inf, False)
        meta["range"] = (low, low_in, high, high_in)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class Prepared:
    """A model made ready to train by a strategy: `model` (the one given, or a wrapper of it),
    `notes` (what the setup did that the config does not say: in the trial's MLflow tags) and
    `record` (facts about the setup for the stage's manifest and MLflow params)."""

    model: Any
    notes: list[str] = field(default_factory=list)
    record: dict = field(default_factory=dict)


def activations(cfg, shape, rows: int) -> float:
    """Bytes of one forward / backward pass's activations through the body: 34 * seq * rows *
    hidden * layers (Korthikanti et al. 2022, no recomputation)."""
    return 34 * cfg.train.seq_len * rows * shape.hidden * shape.layers


def logits(cfg, shape, rows: int) -> float:
    """Bytes of the logits: 10 per vocabulary entry per token (bf16, their fp32 copy for the
    loss, its gradient)."""
    return 10 * cfg.train.seq_len * rows * shape.vocab


def frozen_body(trainable: Callable[[Any, Any], float]) -> Callable:
    """The memory of a strategy whose few trainable parameters sit in or after a frozen body it
    back-propagates through: 4P fp32 weights + the 2P bf16 copies autocast keeps for the
    backward pass + 16 bytes per trainable parameter (fp32 copy, grads, Adam) + activations and
    logits. `trainable(cfg, shape)`: its trainable parameters."""
    def memory(cfg, shape, rows: int, workers: int) -> float:
        return 6 * shape.params + 16 * trainable(cfg, shape) + activations(cfg, shape, rows) \
            + logits(cfg, shape, rows)
    return memory


def _none(cfg) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class Strategy:
    """One fine-tuning strategy (see the module's doc). Only `name`, `settings`, `prepare` and
    `doc` are required; the rest defaults to a strategy that trains part of the model in
    plain torch, in the trial process."""

    name: str
    settings: type  # dataclass of train.<name> (documented fields made with `setting`, lr)
    prepare: Callable[[Any, Any], Prepared]  # (model, cfg): what trains
    doc: str  # a few words: what trains (`memlab plan` says it)
    saved: str = "full_model"  # "full_model": the model's weights; "adapter": a peft adapter
    engine: Callable[[Any], str] = lambda cfg: "torch"  # what trains it: torch | deepspeed
    first_engine: str = "torch"  # its engine when memlab first had it (not in its train key)
    workers: bool = False  # may train across several Ray Train workers (resources.workers)
    check: Callable[[Any], list[tuple[str, str]]] = _none  # (cfg) -> [(key, problem)]
    trainable: Callable | None = None  # (cfg, shape) -> the parameters it trains, estimated
    memory: Callable | None = None  # (cfg, shape, rows, workers) -> training bytes per GPU
    # (None with `trainable`: a frozen body back-propagated through, `frozen_body`)
    flops: float = 4.0  # FLOPs per parameter per training token (forward 2 + backward)
    fix: str = ""  # what `memlab plan` suggests when a trial does not fit its GPU
    label: Callable[[Any], str | None] = lambda cfg: None  # its engine as `plan` shows it
    auto: tuple[str, ...] = ()  # settings with an `auto` value: in its train key as what they
    # resolve to (`engine`), not as written
    since: dict = field(default_factory=dict)  # settings added later -> the value that does
    # what the strategy did before them: at that value in no key (its trials keep their keys)
    merges: bool = True  # its trained model is (or merges into) the base model's weights: the
    # generation engine and warm pools serve it; False (prefix / prompt tuning): HF generate
    # through peft, the trial's own actors

    def __post_init__(self):
        if self.memory is None and self.trainable is not None:
            object.__setattr__(self, "memory", frozen_body(self.trainable))

    @property
    def builtin(self) -> bool:
        """One of memlab's own (not a study's module)."""
        return self.prepare.__module__.startswith("memlab.strategies.")

    def lr(self, cfg) -> float:
        return self.section(cfg).lr

    def section(self, cfg):
        """Its settings in a trial's config: train.<name>."""
        return getattr(cfg.train, self.name)


STRATEGIES: dict[str, Strategy] = {}


def register(s: Strategy) -> Strategy:
    """Add a strategy to the registry (its module calls this when imported)."""
    if s.name in STRATEGIES and STRATEGIES[s.name] != s:
        raise ValueError(f"strategy {s.name!r} is registered twice")
    if "lr" not in getattr(s.settings, "__dataclass_fields__", {}):
        raise ValueError(f"strategy {s.name!r}: its settings need an `lr` field")
    STRATEGIES[s.name] = s
    return s


def get(name: str) -> Strategy:
    """The strategy registered under `name` (KeyError: none)."""
    return STRATEGIES[name]


def resources(cfg):
    """The resources a trial of this config reserves: resources.<its strategy>."""
    return getattr(cfg.resources, cfg.train.strategy)


ORIGIN: dict[str, str] = {}  # a study's strategy -> the module (file or name) that registered it


def load_plugins(plugins: Sequence[str]) -> list[str]:
    """Import each strategy module of a study once per process (`train.plugins`: a `.py`
    file by path, else a module by name); return the names of the strategies they
    registered."""
    from memlab import plugins as loader

    names: list[str] = []
    for plugin in plugins:
        got = loader.load("train.plugins", [plugin], lambda: STRATEGIES)
        ORIGIN.update(dict.fromkeys(got, plugin))
        names += got
    return names
