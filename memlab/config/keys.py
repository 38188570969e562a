"""Stage identities: each stage's output is addressed by a key of what it computes, derived
from the chain's declarations (memlab/config/chain.py):

    data_key  = the data section + the content digest of its source
    train_key = data_key + the model section + the trial's own training settings + seed
    gen_key   = train_key + the attack section
    score_key = gen_key + the score section (+ the content of scorer plugin files) + base_key
    rank_key  = gen_key + the device and precision (sample-and-rank: the base model's pass
                over the generate stage's free generations; score_key holds it where it is on)
    base_key  = data_key + the model section + train.seq_len (the base model's pass over the
                dataset, shared by every strategy, seed and attack of that model and data)

Each key hashes its own inputs and its upstream's key, so trials that share a prefix of the
chain share its outputs: a changed score field rescores, a changed attack field regenerates
and rescores, and neither retrains. Fields that say where or how a trial runs
(`NON_IDENTITY_KEYS`) are in no key, except for what changes the numbers: the device and
precision it trains and generates on, and the generation engine (`resolved`). A trial is a
leaf of the chain: its key is its score_key.

Content, not mtimes: a local dataset is identified by the SHA-256 of its files
(memlab/config/digests.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from memlab.config.chain import CHAIN, LINKS
from memlab.config.digests import content_key, local_model_digest
from memlab.config.load import flatten, to_dict
from memlab.config.schema import CALIBRATED, NON_IDENTITY_KEYS, StudyConfig
from memlab.strategies import STRATEGIES


def unused_by_format(cfg: StudyConfig) -> tuple[str, ...]:
    """Fields that change nothing for this trial's data format (or at their default, for the
    dataset settings added with formats; the canary settings without canaries), so that they
    are in no key: a text dataset keeps the
    keys it had before formats existed, and settings another format reads do not split
    trials. For text and papers the response is the whole document, so where the attack's
    prompt is counted from and which tokens carry the loss change nothing either."""
    d = cfg.data
    out = ["data.hf_config"] if d.hf_config is None else []
    if d.format == "text":
        out.append("data.format")
    if d.format != "instruction":
        out.append("data.template")
    if d.format != "papers":
        out.append("data.paper_body")
    if d.format in ("text", "papers"):
        out += ["train.loss_on", "attack.prompt_from"]
    if not d.canaries.count:  # no canaries: their settings change nothing (and a study from
        out += ["data.canaries", "attack.canary_alternatives"]  # before them keeps its keys)
    return tuple(out)


def under(key: str, names) -> bool:
    """The dotted key is one of `names` or a field inside one of them."""
    return any(key == n or key.startswith(n + ".") for n in names)


def _identity(cfg: StudyConfig) -> dict[str, Any]:
    """Every field that changes what the trial computes, flattened (dotted keys)."""
    other = tuple(f"train.{s}" for s in cfg.train.sections() if s != cfg.train.strategy)
    skip = NON_IDENTITY_KEYS + other + unused_by_format(cfg)
    if not cfg.train.plugins:
        skip += ("train.plugins",)  # (keys as before strategy modules)
    own = cfg.train.strategy
    if own in STRATEGIES:  # its settings added later, at the value that means what it did
        section = getattr(cfg.train, own)
        skip += tuple(f"train.{own}.{k}" for k, v in STRATEGIES[own].since.items()
                      if getattr(section, k) == v)
    if not cfg.train.dp.on:
        skip += ("train.dp",)  # (keys as before DP fine-tuning)
    if cfg.train.lr_schedule == "constant":
        skip += ("train.lr_schedule",)  # (keys as before schedules)
    if not cfg.data.num_population:
        skip += ("data.num_population",)  # (keys as before the population split)
    m = cfg.score.membership  # the calibrated signals, each while off (keys as before them)
    skip += tuple(f"score.membership.{s}" for s in CALIBRATED if not getattr(m, s).enabled)
    if not cfg.attack.rank.samples:  # sample-and-rank off (keys as before it)
        skip += ("attack.rank", "score.rank")
    if cfg.score.plagiarism.method == "pan2014":  # (keys as before the semantic method)
        skip += ("score.plagiarism.method", "score.plagiarism.semantic")
    if (cfg.score.corpus_ann_above, cfg.score.corpus_ann_candidates) == (500_000, 10):
        skip += ("score.corpus_ann_above", "score.corpus_ann_candidates")  # (keys as before)
    if cfg.score.corpus_ann_breadth == 64:
        skip += ("score.corpus_ann_breadth",)  # (keys as before)
    if cfg.score.discoverable_within == [1, 10, 100]:
        skip += ("score.discoverable_within",)  # (keys as before discoverability)
    if cfg.score.plagiarism.semantic.dense_breadth == 64:
        skip += ("score.plagiarism.semantic.dense_breadth",)  # (keys as before)
    sem = cfg.score.plagiarism.semantic  # issue 35 part 6's fourth round, at the rule before it
    if not sem.idea_number_phrases:
        skip += ("score.plagiarism.semantic.idea_number_phrases",)  # (keys as before)
    if sem.idea_added is None:  # (idea_added_cosine means nothing without it)
        skip += ("score.plagiarism.semantic.idea_added",
                 "score.plagiarism.semantic.idea_added_cosine")  # (keys as before)
    if sem.idea_added_scope == "passage":  # issue 35 part 6's fifth round, at the rule before
        skip += ("score.plagiarism.semantic.idea_added_scope",)  # (keys as before)
    if sem.paraphrase_facts == "pair":
        skip += ("score.plagiarism.semantic.paraphrase_facts",)  # (keys as before)
    ident = {k: v for k, v in flatten(to_dict(cfg)).items()
             if not under(k, skip)}
    if ident.get("attack.prompt_from") == "auto":  # hashed as what it resolves to
        ident["attack.prompt_from"] = "response"
    return ident


def config_identity(cfg: StudyConfig) -> str:
    """A key of the config alone (no file is read): trials with equal identities are one.
    Paths count as the files they name (one file spelled two ways is one)."""
    ident = _identity(cfg)
    paths = {"data.path": [cfg.data.path] if cfg.data.source == "local" else [],
             "score.plugins": cfg.score.plugins, "train.plugins": cfg.train.plugins}
    for key, values in paths.items():
        ident[key] = [os.path.abspath(os.path.expanduser(v)) if v and (key == "data.path" or
                      v.endswith(".py")) else v for v in values]
    return content_key(ident)


def _section(ident: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in ident.items() if k.startswith(name + ".")}


@dataclass(frozen=True)
class StageKeys:
    """Every stage's key. The stages every trial has are fields; an opt-in stage's (chain.py's
    `when`: rank, with attack.rank on) is in `opt_in` only where the trial has it, so that the
    keys of a trial without it read as before it existed (field by field, as the trial
    records and pinned keys hold them)."""

    data: str
    train: str
    gen: str
    score: str
    base: str  # the base model's pass over the dataset (memlab/stages/base.py)
    opt_in: dataclasses.InitVar[dict[str, str] | None] = None

    def __post_init__(self, opt_in: dict[str, str] | None) -> None:
        object.__setattr__(self, "more", dict(opt_in or {}))

    @classmethod
    def of(cls, named: dict[str, str]) -> StageKeys:
        """From stage -> key (the fields', and those of opt-in stages the trial has)."""
        own = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in named.items() if k in own},
                   opt_in={k: v for k, v in named.items() if k not in own})

    def named(self) -> dict[str, str]:
        """stage -> key of every stage the trial has."""
        return {**dataclasses.asdict(self), **self.more}

    @property
    def trial(self) -> str:
        """A trial is the leaf of its chain."""
        return self.score

    def tags(self) -> dict[str, str]:
        return {f"{k}_key": v for k, v in self.named().items()}


# fields whose content is hashed instead of their text: the same dataset or plugin file under
# another path (relative, absolute, moved) keeps its keys; and `auto` fields, hashed as what
# they resolve to (`resolved`)
NOT_BY_TEXT = ("data.path", "score.plugins", "train.plugins", "train.precision",
               "attack.engine")


def member_stream(cfg: StudyConfig) -> int:
    """Members' sequences in the training stream, from the config alone: each duplication
    subset's documents times their copies (canaries not counted)."""
    d = cfg.data
    groups = len(d.dup_mix)
    return sum(d.dup_factor * k * (d.num_members // groups + (i < d.num_members % groups))
               for i, k in enumerate(d.dup_mix))


def count_steps(stream_len: int, cfg: StudyConfig) -> int:
    """Optimizer steps over a training stream of `stream_len` sequences: train.epochs passes
    of train.batch_size (the last batch of each pass what is left), at most train.max_steps.
    The train stage counts its dataset's stream with it; plan and the keys the config's."""
    t = cfg.train
    steps = -(-stream_len // t.batch_size) * t.epochs
    return min(steps, t.max_steps) if t.max_steps else steps


def eval_steps(cfg: StudyConfig, steps: int) -> list[int]:
    """The optimizer steps (of a training of `steps` steps) after which the model is
    evaluated besides the final one: train.eval_at's fractions (each at ceil(fraction x
    steps), at least 1) or every train.eval_every-th step, in order, the last step left out
    (it is the final model, evaluated by the trial's own stages)."""
    t = cfg.train
    if t.eval_every:
        points = set(range(t.eval_every, steps + 1, t.eval_every))
    else:
        points = {max(1, math.ceil(f * steps - 1e-9)) for f in t.eval_at}
    return sorted(s for s in points if s < steps)


def checkpoint_keys(keys: StageKeys, step: int) -> StageKeys:
    """The keys of the model after `step` optimizer steps (an evaluation point): each stage a
    checkpoint has of its own (chain.py's `per_checkpoint`: generate, score) keyed by the
    final model's key of that stage and the step; the others (data, train, base) are the
    trial's: the checkpoint lies in the trial's train folder, and the base model's pass does
    not depend on the fine-tuned model. From the keys alone (no file is read)."""
    named = keys.named()
    return StageKeys.of({**named, **{
        link.name: content_key({link.name: named[link.name], "step": step})
        for link in CHAIN if link.per_checkpoint and link.name in named}})


def train_tokens(cfg: StudyConfig) -> int:
    """Tokens a trial trains on at most (steps x batch x seq_len), from the config alone (the
    members' stream: what train.compile=auto weighs)."""
    t = cfg.train
    return count_steps(member_stream(cfg), cfg) * t.batch_size * t.seq_len


def resolved(cfg: StudyConfig) -> dict[str, str]:
    """What the `auto` settings become for this trial's resources: the device and precision
    it trains on, the engine that trains it (the strategy's: plain torch, or DeepSpeed for
    full fine-tuning), whether its model is compiled (never with DP: Opacus's hooks) and its
    steps captured as CUDA graphs (plain torch on a GPU, no DP), and the
    device, precision and engine it
    generates with (a GPU trial in bf16 computes other numbers than a CPU trial in float32, so
    they are different outputs)."""
    t, a = cfg.train, cfg.attack
    train_gpu = cfg.reserved.gpu > 0
    gen_gpu = a.actor_gpus > 0
    dtype = lambda gpu: t.precision if t.precision != "auto" else ("bf16" if gpu else "fp32")  # noqa: E731
    engine = a.engine if a.engine != "auto" else ("memlab" if gen_gpu else "hf")
    train_engine = cfg.strategy.engine(cfg)
    compiled = train_gpu and train_engine == "torch" and not t.dp.on and (t.compile == "on" or (
        t.compile == "auto" and train_tokens(cfg) >= t.compile_min_tokens))
    graphed = train_gpu and train_engine == "torch" and not t.dp.on and t.cuda_graphs == "auto"
    return {"train_device": "gpu" if train_gpu else "cpu", "train_dtype": dtype(train_gpu),
            "train_engine": train_engine, "train_compiled": "yes" if compiled else "no",
            "train_graphed": "yes" if graphed else "no",
            "gen_device": "gpu" if gen_gpu else "cpu", "gen_dtype": dtype(gen_gpu),
            "gen_engine": engine}


def _local_models(cfg: StudyConfig) -> dict[str, str]:
    """A local model (model.name, score.embedder) as its content, not its path: the same
    checkout moved, or mounted elsewhere on a cluster, keeps its keys."""
    m, out = cfg.model, {}
    if m.name and (m.source == "gguf" or m.source == "hf" and os.path.isdir(
            os.path.expanduser(m.name))):
        out["model.name"] = local_model_digest(m.name)
    if os.path.isdir(os.path.expanduser(cfg.score.embedder)):
        out["score.embedder"] = local_model_digest(cfg.score.embedder)
    return out


def stage_keys(cfg: StudyConfig) -> StageKeys:
    """Every stage's key, from the chain's declarations (memlab/config/chain.py): its upstream
    stages' keys, its config sections, and what else it declares."""
    auto = tuple(f"train.{cfg.train.strategy}.{name}" for name in cfg.strategy.auto)
    ident = {k: v for k, v in _identity(cfg).items() if k not in NOT_BY_TEXT + auto}
    ident.update(_local_models(cfg))
    run = resolved(cfg)
    keys: dict[str, str] = {}
    for link in CHAIN:
        keys[link.name] = content_key({
            **{up: keys[up] for up in link.after if LINKS[up].when(cfg)},
            **{sec: _section(ident, sec) for sec in link.sections},
            **link.extra(cfg, run)})
    own = {f.name for f in dataclasses.fields(StageKeys)}  # (an opt-in stage: where it is on)
    return StageKeys.of({n: k for n, k in keys.items() if n in own or LINKS[n].when(cfg)})
