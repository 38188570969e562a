"""memlab: measure how much a language model memorizes its fine-tuning data.

Importing the package is cheap on purpose: the CLI, config and planning never import torch,
transformers, deepspeed or ray; heavy imports happen inside stage functions.

One voice: every module logs through `logging.getLogger(__name__)`, and every such logger is a
child of the `memlab` logger, which gets memlab's one handler here, in every process that
imports memlab (the driver, Ray Tune trials, Ray Train workers, actors): `[memlab] <message>`
on standard error (`[memlab] warning: ...` for warnings), at the level MEMLAB_LOG names
(default INFO). What a command produces (a plan's table, the report, a refusal's `error:`
lines) is its output, printed by the command line (memlab/cli.py). Warnings of other
libraries known to be harmless are filtered here too, in every such process (the list, and
why each is harmless: memlab/io/noise.py).
"""

import logging
import os
import sys

from memlab.io.noise import quiet_warnings

__version__ = "0.1.0"


class _Voice(logging.Handler):
    """memlab's handler: one line per record on the current standard error (so that a test's
    or a Ray worker's replaced stream gets it)."""

    memlab = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            if record.levelno <= logging.DEBUG:
                level = f"debug {record.name}: "
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            sys.stderr.write(f"[memlab] {level}{text}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


def _one_voice() -> None:
    log = logging.getLogger("memlab")
    if not any(getattr(h, "memlab", False) for h in log.handlers):
        log.addHandler(_Voice())
        log.setLevel(os.environ.get("MEMLAB_LOG", "INFO").upper())
        log.propagate = False  # (Ray's and others' root handlers would say it twice)


_one_voice()
quiet_warnings()
