"""Where a trial's work runs: Ray node label selectors.

memlab's placement vocabulary is Ray node labels (`ray start --labels`, the cluster launcher's
`labels:` per node type, KubeRay's `labels:` per group), not custom resources: a label says what
a node is, a resource says how much of something it has. A custom resource such as
`memlab_full: 1` is consumed by whoever asks for it, so a study would either hold a whole 8-GPU
node per 1-GPU trial or ask for fractions sized to the node (`memlab_full: 0.125`), tying the
study file to the hardware. A label selector is checked, not consumed: GPUs and CPUs are still
counted by Ray's own resources, and the same selector reaches every place memlab puts work
(Tune placement-group bundles, Ray Train's ScalingConfig, Ray Data actors, warm-pool actors).

A trial has two selectors: `resources.<strategy>.labels` for the trial process and its Ray
Train workers, `resources.<strategy>.actor_labels` for its generation and scoring actors (the
trial's labels when unset). A selector's value is a label value, `!value`, `in(a,b)` or
`!in(a,b)`, as in Ray.

Pure functions, no Ray import: `memlab validate` and `memlab plan` use them.
"""

from __future__ import annotations

import re

from memlab.config.schema import StudyConfig

# Ray 2.60's own rules (ray/_private/label_utils.py), restated so that `validate` and `plan`
# need no Ray import; tests/unit/test_config.py checks them against Ray's validator
_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_PREFIX = re.compile(rf"({_NAME})?(\.({_NAME})?)*")
_VALUE = re.compile(rf"!?(in)?\({_NAME}(, ?{_NAME})*\)|!?{_NAME}")


def selectors(cfg: StudyConfig) -> dict[str, dict[str, str]]:
    """The label selectors of a trial: {"trial": for the trial process and its train workers,
    "actors": for its generation and scoring actors}."""
    res = cfg.reserved
    actors = res.labels if res.actor_labels is None else res.actor_labels
    return {"trial": dict(res.labels), "actors": dict(actors)}


def selector_problem(selector: dict[str, str]) -> str:
    """Why Ray would refuse this label selector ('' when it would not)."""
    for key, value in selector.items():
        prefix, _, name = key.rpartition("/")
        if not re.fullmatch(_NAME, name) or ("/" in key and (
                len(prefix) > 253 or not _PREFIX.fullmatch(prefix))):
            return f"label key {key!r} is not a Kubernetes-style label key ([prefix/]name)"
        if value and not _VALUE.fullmatch(value):
            return (f"label value {value!r} of {key!r}: expected a value, !value, in(a,b) or "
                    "!in(a,b)")
    return ""


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a node with `labels` satisfies `selector` (Ray's label selector semantics: a
    negated term also matches a node without the key)."""
    for key, want in selector.items():
        neg = want.startswith("!")
        want = want[1:] if neg else want
        have = labels.get(key)
        if want.startswith(("in(", "(")):  # (Ray reads "(a,b)" as "in(a,b)")
            ok = have in {v.strip() for v in want[want.index("(") + 1:-1].split(",")}
        else:
            ok = have == want
        if ok == neg:
            return False
    return True


def show(selector: dict[str, str]) -> str:
    """A selector or a node's labels as written in a study file: {memlab/role: full}."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(selector.items())) + "}"
