"""Memorization through training (issue 34): with evaluation points (train.eval_at /
eval_every), each group's metrics at every point and at its last step (the final model), over
seeds as the final models' are (numbers.aggregate of the trials' summaries at each step).
From those curves, per group: the onset step (the first step whose members' rate lies above
the non-member floor, intervals apart) and the best-utility checkpoint (the lowest held-out
perplexity), whose values the table puts next to the final model's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from memlab.config.expand import Study
from memlab.io.paths import stage_dir, sweep_root
from memlab.io.shards import read_summary
from memlab.report.intervals import Intervals
from memlab.report.numbers import Group, Stat, aggregate

Points = dict[str, dict[int, list[dict]]]  # trial key -> {step: that point's summary rows}


@dataclass(frozen=True)
class Headline:
    """What the curves draw: members at the highest duplication level (`dup`; -1: all
    members), their similarity rate at score.headline_threshold (`sim`) and the membership
    AUC of the reference-model signal, or of the loss where no group has it (`auc`)."""

    dup: int
    sim: str
    auc: str

    @classmethod
    def of(cls, groups: list[Group], threshold: float) -> Headline:
        top = max((d for g in groups for d in g.dups()), default=-1)
        ref = any(g.get("member", top, "auc_ref") for g in groups)
        return cls(top, f"sim_src_ge_{threshold:g}_pct", "auc_ref" if ref else "auc_loss")


@dataclass
class Curve:
    """One group through training: `steps` (optimizer steps, ascending; the last is the final
    model's) and the group at each (`at`: over the seeds that have that step)."""

    group: Group  # the final models' group: the report's row
    steps: list[int]
    at: list[Group]
    stopped: list[dict | None] = field(default_factory=list)  # per seed: train.stop_when's

    def stops(self) -> str:
        """Where each seed's train.stop_when fired and why (`3 (sim_member_minus_floor > 5)`,
        seeds apart by `, `; `-`: never), or `-` when none did."""
        if not any(self.stopped):
            return "-"
        rules = {s["rule"] for s in self.stopped if s}
        steps = ", ".join(str(s["step"]) if s else "-" for s in self.stopped)
        return f"{steps} ({'; '.join(sorted(rules))})"

    def stats(self, split: str, dup: int, metric: str) -> list[tuple[int, Stat]]:
        return [(s, st) for s, g in zip(self.steps, self.at) if (st := g.get(split, dup, metric))]

    def floor(self, metric: str) -> list[tuple[int, Stat]]:
        return self.stats("nonmember", -1, metric)

    def onset(self, h: Headline) -> int:
        """The first step whose members' rate has an interval lying above the floor's (its
        upper bound; the floor's mean where it has no interval); -1: none does. Intervals:
        over seeds as numbers.over_seeds computes them (in the rate's range), or with one seed
        that trial's own (a rate's binomial interval; a step without one cannot show an
        onset)."""
        for step, g in zip(self.steps, self.at):
            m, f = g.get("member", h.dup, h.sim), g.get("nonmember", -1, h.sim)
            if m is not None and f is not None and m.lo is not None and \
                    m.lo > (f.hi if f.hi is not None else f.mean):
                return step
        return -1

    def best(self) -> int | None:
        """The index of the best-utility step: the lowest mean held-out perplexity (the
        earliest of equals); None: no step has one."""
        ppl = [(st.mean, i) for i, g in enumerate(self.at)
               if (st := g.get("nonmember", -1, "ppl")) is not None]
        return min(ppl)[1] if ppl else None


def _key(g: Group) -> str:
    return json.dumps(g.key, sort_keys=True, default=str)


def curves_of(records: list[tuple[dict, list[dict]]], points: Points, groups: list[Group],
           axis_names: list[str], how: Intervals | None = None) -> list[Curve]:
    """The curve of each group (in `groups`' order) that some trial with evaluation points
    is in: every trial's points (`points`) and its final model at its last step (result.json
    train.train_steps), aggregated over seeds at each step (intervals by `how`, as the
    groups'); [] when no trial has points."""
    by_step: dict[int, list[tuple[dict, list[dict]]]] = {}
    for res, rows in records:
        own = points.get(res["key"])
        if not own:
            continue
        for step, prow in own.items():
            by_step.setdefault(step, []).append((res, prow))
        by_step.setdefault(int(res["train"]["train_steps"]), []).append((res, rows))
    at: dict[str, list[tuple[int, Group]]] = {}
    for step in sorted(by_step):
        for g in aggregate(by_step[step], axis_names, how):
            at.setdefault(_key(g), []).append((step, g))
    stops = {res["key"]: res.get("stopped") for res, _ in records}
    return [Curve(g, [s for s, _ in at[_key(g)]], [x for _, x in at[_key(g)]],
                  [stops.get(k) for k in g.trial_keys])
            for g in groups if _key(g) in at]


def load_points(study: Study) -> Points:
    """Each finished trial's evaluation points whose score summary is on disk (result.json
    `checkpoints`: step and stage keys): trial key -> {step: summary rows}."""
    out: Points = {}
    for t in study.trials:
        path = sweep_root(t.config) / t.key / "result.json"
        if not path.is_file():
            continue
        for cp in json.loads(path.read_text()).get("checkpoints", []):
            folder = stage_dir(t.config, "score", cp["keys"]["score"])
            if (folder / "summary.parquet").is_file():
                out.setdefault(t.key, {})[int(cp["step"])] = read_summary(folder).to_pylist()
    return out
