"""Messages of Ray and other libraries that are harmless in memlab's use, hidden in one place,
each with why.

A sweep's output relays every Ray worker's standard error: among memlab's own lines, error-level
'E' lines of Ray's C++ core, a traceback Ray itself calls safe to ignore, deprecation warnings
of calls made inside libraries. A newcomer cannot tell them from a failure, so the ones known to
be harmless (KNOWN) are dropped, twice over:
- Python warnings (kind "warning"): a warnings filter in every process that imports memlab
  (memlab/__init__.py: the driver, Ray Tune trials, Ray Train workers, actors);
- lines Ray relays from its workers to the driver (kind "line"; also Ray's C++ log lines and
  processes that never import memlab, such as Ray Train's controller): the driver's relay,
  wrapped after ray.init (`quiet_ray_driver`); how many it dropped is said once, at the end.
Anything not listed here is shown as it comes. MEMLAB_NOISE=show hides nothing.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Noise:
    pattern: str  # a regex: searched in a relayed line; a warning's message must start with it
    source: str  # who says it
    why: str  # why it is harmless here
    kind: str = "line"  # "line": relayed by Ray to the driver; "warning": a Python warning
    traceback: bool = False  # the traceback that follows the line goes with it


KNOWN = (
    Noise(r"has constructor arguments in the object store and max_restarts > 0",
          "Ray's core worker: an error-level 'E' line of core_worker.cc, one per actor",
          "Ray Data's actor pools (generation, base pass, scoring) and Ray Train's controller "
          "pass their constructor arguments through the object store and allow restarts; the "
          "stage that started them holds those arguments while the actors live, so a "
          "restarted actor finds them (the case ray-project/ray#53727 warns about is an "
          "argument gone out of scope)."),
    Noise(r"Failed to send resource request for train-",
          "Ray Train's controller (with a traceback ending in GetTimeoutError)",
          "Ray's own text says it is safe to ignore when it happens transiently with the CPU "
          "overloaded, which is a small machine while trials start; workers that cannot "
          "start fail the trial, which memlab reports.", traceback=True),
    Noise(r"Unhandled error .*_StatsActor\.update_execution_metrics",
          "Ray Data's stats actor (with a traceback ending in KeyError: 'dataset_...')",
          "the actor that keeps Ray Data's execution metrics for Ray's dashboard is told of a "
          "dataset it has not registered, when trials run their Ray Data stages at once; no "
          "row of a stage goes through it, and memlab counts its shards itself.",
          traceback=True),
    Noise(r"Progress bars disabled\. To enable",
          "Ray Data", "memlab turns Ray Data's bars off on purpose: its own progress line "
          "counts the shards (memlab/io/progress.py)."),
    Noise(r"INFO:bm25s:The query is empty",
          "bm25s (plagiarism retrieval)", "an empty generation has no words to search for; it "
          "is typed 'none', as it should be."),
    Noise(r"`ray_remote_args_fn` is deprecated",
          "Ray Data (RayDeprecationWarning)", "memlab places its actors with it "
          "(memlab/stages/actors.py); it works in the Ray memlab pins (2.60.0), and is to be "
          "replaced before Ray 2.64 removes it.", kind="warning"),
    Noise(r"`is_gradient_checkpointing` is deprecated",
          "transformers (FutureWarning)", "called inside transformers and PEFT, not by "
          "memlab; nothing changes before transformers 6.", kind="warning"),
    Noise(r"Secure RNG turned off",
          "Opacus's PrivacyEngine (train.dp)", "memlab draws DP's noise from torch's seeded "
          "generator, so that a trial trains the same every time; Opacus's secure_mode "
          "(torchcsprng) guards a released model against attacks on floating-point noise, "
          "which a study of memorization does not release.", kind="warning"),
    Noise(r"Optimal order is the largest alpha",
          "Opacus's RDP analysis (train.dp)", "the PRV accountant memlab uses sizes the domain "
          "it computes on with an RDP bound at a tiny delta; a looser bound there gives a "
          "wider domain (safe), not another epsilon (seen at the tests' small streams).",
          kind="warning"),
    Noise(r"Full backward hook is firing when gradients are computed with respect to module "
          r"outputs since no inputs require gradients",
          "torch (train.dp)", "Opacus's per-sample gradient hooks on the first trainable "
          "layer (the embedding, whose input is token ids; the head when only the head "
          "trains) read the gradient of the layer's output, which they get.", kind="warning"),
)

HIDDEN: Counter = Counter()  # relayed lines this driver dropped, by KNOWN pattern
_LINES = [(re.compile(n.pattern), n) for n in KNOWN if n.kind == "line"]
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\s")  # its header, its frames
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(Error|Exception)\b")  # its last line


def showing() -> bool:
    """MEMLAB_NOISE=show: hide nothing (to see what is hidden, or to report a bug to Ray)."""
    return os.environ.get("MEMLAB_NOISE", "").lower() == "show"


def quiet_warnings() -> None:
    """Filter the known-harmless Python warnings in this process. Called again after `import
    ray`: Ray puts its own filter for its deprecation warnings first on import, and the first
    filter that matches wins."""
    if showing():
        return
    for n in KNOWN:
        if n.kind == "warning":
            warnings.filterwarnings("ignore", message=n.pattern)


def known(line: str) -> Noise | None:
    """The KNOWN relayed line this is, if any."""
    return next((n for rx, n in _LINES if rx.search(line)), None)


def _filtered(relay):
    """Ray's relay of worker output with KNOWN lines (and a traceback after one whose Noise
    says so: its header, its indented frames, its exception line) dropped."""
    in_traceback: dict = {}  # per worker process: inside a dropped traceback

    def relay_quietly(data: dict) -> None:
        pid, kept = data.get("pid"), []
        for line in data.get("lines", []):
            if in_traceback.get(pid):
                if _TRACEBACK.match(line):
                    continue
                in_traceback[pid] = False
                if _EXCEPTION.match(line):
                    continue
            n = known(line)
            if n is None:
                kept.append(line)
                continue
            HIDDEN[n.pattern] += 1
            in_traceback[pid] = n.traceback
        in_traceback[pid] = False  # (a traceback is relayed in the batch of its line)
        if kept or not data.get("lines"):
            relay({**data, "lines": kept})

    relay_quietly.memlab = True
    return relay_quietly


def quiet_ray_driver() -> None:
    """After ray.init: wrap the handler that prints what Ray's workers write (Ray 2.60's
    `ray_print_logs` handler of its stdstream dispatcher). Where Ray's internals differ,
    nothing is wrapped: the lines are shown, nothing breaks."""
    if showing():
        return
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as relays
    except ImportError:
        return
    with relays._lock:
        relays.handlers = [(name, _filtered(h) if name == "ray_print_logs"
                            and not getattr(h, "memlab", False) else h)
                           for name, h in relays.handlers]


def said_once() -> str | None:
    """The one line that says what was hidden (None: nothing was)."""
    if not HIDDEN:
        return None
    return (f"{sum(HIDDEN.values())} known-harmless line(s) of Ray's workers hidden "
            "(memlab/io/noise.py lists them and why; MEMLAB_NOISE=show shows them)")
