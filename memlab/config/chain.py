r"""The stage chain as data: every stage of a trial declared once.

    data  -> train -> gen -> score
                        \-> rank -/   (sample-and-rank, where attack.rank is on)
          \-> base --------/

A stage (`Link`) names the stages whose keys its key hashes (`after`), the config sections
in its key, what else its key holds (`extra`: the device and precision it runs on, a seed, the
content of plugin files), the finished stages it reads (`reads`: their manifests' digests say
what a finished output was built from), whether a trial has it (`when`), and the module that
computes it (`work`: its WORK, memlab/stages/runner.py). From these declarations come the
stage keys (memlab/config/keys.py), the runner's "is this trial done" (one loop over them) and
the order a trial computes its stages in.

Evaluation points (train.eval_at / train.eval_every: memorization through training): the
train stage also exports the model after chosen optimizer steps into its own folder
(`at/<step>/`, memlab/stages/train.py). A checkpoint is a model like any other: the links
marked `per_checkpoint` (gen, score) run again for it, through the same runner, with the
train folder replaced by `at/<step>` and keys that hash the final model's key of that stage
and the step (memlab/config/keys.py, checkpoint_keys); data, train and the base model's pass
are the trial's. The last step is the final model, evaluated once by the trial's own stages.
The points are in no key: adding points computes only the new ones, and "is this trial done"
covers every point (memlab/stages/runner.py).

The module is named, not imported: the config floor stays free of torch and of the stages,
which sit above it (the same way `score.plugins` and `train.plugins` name modules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memlab.config.digests import plugin_digests, source_digest
from memlab.config.schema import DP_ACCOUNTANT, DP_GRAD_SAMPLE_MODE, StudyConfig
from memlab.strategies import base as strategies


def _always(cfg: StudyConfig) -> bool:
    return True


def _nothing(cfg: StudyConfig, run: dict[str, str]) -> dict:
    return {}


def base_pass(cfg: StudyConfig) -> bool:
    """The base model's pass over the dataset: the `ref` membership signal and base_ppl."""
    m = cfg.score.membership
    return m.enabled and m.base_pass


def rank_on(cfg: StudyConfig) -> bool:
    """Sample-and-rank (attack.rank): the base model's pass over its generations."""
    return cfg.attack.rank.samples > 0


@dataclass(frozen=True)
class Link:
    name: str  # also its folder under <runs_root>/stages/
    after: tuple[str, ...]  # stages whose keys its key hashes
    sections: tuple[str, ...]  # config sections hashed into its key
    reads: tuple[str, ...]  # finished stages it reads (their manifests: its upstream)
    work: str  # the module that computes it (its WORK)
    extra: Callable[[StudyConfig, dict[str, str]], dict] = _nothing  # (cfg, resolved) -> key
    when: Callable[[StudyConfig], bool] = _always  # whether a trial has this stage
    per_checkpoint: bool = False  # an evaluation point (train.eval_at) has one of its own


def _data(cfg: StudyConfig, run: dict[str, str]) -> dict:
    return {"source": source_digest(cfg.data)}


def _train(cfg: StudyConfig, run: dict[str, str]) -> dict:
    """The seed, and how it trains: device and precision, plus the engine and compilation where
    they differ from the strategy's first way (full under DeepSpeed, eager), so that trials
    trained that way keep their keys; a study's own strategy by its module's content; with DP,
    Opacus's accountant and per-sample gradient mode. (CUDA graphs, train.cuda_graphs, are in
    no key: the same step up to rounding, as train.micro_batch's passes.)"""
    on = [run["train_device"], run["train_dtype"]]
    if run["train_engine"] != cfg.strategy.first_engine:
        on.append(f"engine={run['train_engine']}")
    if run["train_compiled"] == "yes":
        on.append("compiled")
    origin = strategies.ORIGIN.get(cfg.train.strategy)  # (a study's own: its module's content)
    plugin = {"plugins": plugin_digests([origin])} if origin else {}
    # DP: how Opacus picks the noise and computes per-sample gradients (train.dp is in the
    # train section; without DP neither is in the key)
    dp = {"dp": [DP_ACCOUNTANT, DP_GRAD_SAMPLE_MODE]} if cfg.train.dp.on else {}
    return {"seed": cfg.seed, "on": on, **plugin, **dp}


GEN_OUTPUTS = 2
"""Version of what a generation shard holds (2: per-token signals for membership inference):
generation stages written by an older memlab are not reused."""


def _gen(cfg: StudyConfig, run: dict[str, str]) -> dict:
    """Where it generates, and, with ReCaLL on, its prefix (the generate stage makes its
    passes; without it nothing is added: keys as before)."""
    r = cfg.score.membership.recall
    recall = {"recall": {"shots": r.shots}} if r.enabled and cfg.score.membership.enabled else {}
    return {"on": [run["gen_device"], run["gen_dtype"], run["gen_engine"]],
            "outputs": GEN_OUTPUTS, **recall}


def _base(cfg: StudyConfig, run: dict[str, str]) -> dict:
    return {"seq_len": cfg.train.seq_len, "on": [run["gen_device"], run["gen_dtype"]]}


def _rank(cfg: StudyConfig, run: dict[str, str]) -> dict:
    """The base model's pass over sample-and-rank's generations: where it runs (the base
    model itself is in the model section, under gen's key)."""
    return {"on": [run["gen_device"], run["gen_dtype"]]}


def _score(cfg: StudyConfig, run: dict[str, str]) -> dict:
    return {"plugins": plugin_digests(cfg.score.plugins)}


CHAIN: tuple[Link, ...] = (
    Link("data", (), ("data",), (), "memlab.stages.data", _data),
    Link("train", ("data",), ("model", "train"), ("data",), "memlab.stages.train", _train),
    Link("gen", ("train",), ("attack",), ("train", "data"), "memlab.stages.generate", _gen,
         per_checkpoint=True),
    # the base model's pass: shared by every strategy, seed and attack of a model and dataset
    Link("base", ("data",), ("model",), ("data",), "memlab.stages.base", _base, base_pass),
    # sample-and-rank's generations (the generate stage's rank-* side files) under the base model
    Link("rank", ("gen",), (), ("gen",), "memlab.stages.rank", _rank, rank_on,
         per_checkpoint=True),
    Link("score", ("gen", "base", "rank"), ("score",), ("gen", "base", "rank"),
         "memlab.stages.score", _score, per_checkpoint=True),
)
CHECKPOINTS_FROM = "train"
"""The stage whose folder holds the evaluation points' models (at/<step>/): to a checkpoint's
own stages it stands where the final model's train folder stands for the trial's."""
LINKS = {link.name: link for link in CHAIN}
STAGES = tuple(LINKS)
