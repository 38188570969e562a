"""Scorers are small registered functions carrying their metadata, so reports know how to
aggregate each one and which direction means more memorization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ScorerInfo:
    name: str
    fn: Callable
    higher_is_better: bool  # from the data owner's side: False = higher means more leakage
    aggregation: str  # "rate" (percent of samples), "mean", or "max"


SCORERS: dict[str, ScorerInfo] = {}


def scorer(name: str, higher_is_better: bool, aggregation: str):
    def wrap(fn: Callable) -> Callable:
        if name in SCORERS:
            raise ValueError(f"scorer {name!r} registered twice")
        SCORERS[name] = ScorerInfo(name, fn, higher_is_better, aggregation)
        return fn

    return wrap
