"""Early stopping (train.stop_when, issue 34): the first evaluation point at which a trial's
rule fires.

The rule reads one headline metric (memlab/tracking/desk.py: its short name, or a member rate
minus its non-member floor, `*_minus_floor`, in points) at each evaluation point in step
order, the final model last, and fires when the value is `op` the rule's threshold (>, >=, <,
<=) or above (rising) / below (falling) the previous point's. A point whose metric is absent
or not finite neither fires nor counts as the previous one. The runner stops evaluating points
there (memlab/stages/runner.py); the trial's record says `stopped` (memlab/sweep/trial.py).
Training has run to the end: the rule picks the stop point after it, it saves the evaluation
of the later points, not their training.
"""

from __future__ import annotations

import math
import operator

from memlab.config.schema import StopSection
from memlab.tracking import desk

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def value_of(rule: StopSection, metrics: dict, threshold: float) -> float:
    """The rule's metric in a trial's flat metrics (nan: absent)."""
    if rule.metric.endswith("_minus_floor"):
        member = rule.metric.removesuffix("_minus_floor")
        floor = member.removesuffix("_member") + "_floor"
        return desk.measure(metrics, member, threshold) - desk.measure(metrics, floor, threshold)
    return desk.measure(metrics, rule.metric, threshold)


def described(rule: StopSection) -> str:
    """The rule as one reads it: `sim_member_minus_floor > 5`, `heldout_ppl rising`."""
    return f"{rule.metric} {rule.op}" + ("" if rule.value is None else f" {rule.value:g}")


def fires(rule: StopSection, value: float, previous: float) -> bool:
    """The rule holds for `value`, the previous evaluated point's being `previous` (nan: none)."""
    if not math.isfinite(value):
        return False
    if rule.op == "rising":
        return value > previous  # (False against nan: the first point never rises)
    if rule.op == "falling":
        return value < previous
    return _COMPARE[rule.op](value, rule.value)


def first_stop(rule: StopSection, points: list[tuple[int, dict]],
               threshold: float) -> dict | None:
    """The first of `points` ((optimizer step, a trial's flat metrics), taken in step order) at
    which the rule fires: {step, rule, value}; None: it never fires, or there is no rule."""
    if not rule.on:
        return None
    previous = math.nan
    for step, metrics in sorted(points, key=lambda p: p[0]):
        value = value_of(rule, metrics, threshold)
        if fires(rule, value, previous):
            return {"step": step, "rule": described(rule), "value": value}
        if math.isfinite(value):
            previous = value
    return None
