"""Progress of long steps as plain log lines (one at most every `every_s` seconds, and one at
the end): readable on a terminal, in Ray worker output relayed to the driver, and in CI logs,
where carriage-return progress bars are not."""

from __future__ import annotations

import sys
import time


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    def __init__(self, total: int, desc: str, unit: str = "step", every_s: float = 15.0):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = 0
        self.start = self.last = time.time()
        self.postfix = ""

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.n += n
        self.postfix = postfix or self.postfix
        now = time.time()
        if now - self.last >= self.every_s or self.n >= self.total:
            self.last = now
            self._print(now)

    def _print(self, now: float) -> None:
        el = now - self.start
        rate = el / self.n if self.n else 0.0
        eta = rate * (self.total - self.n)
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"[memlab] {self.desc}: {self.n}/{self.total} {self.unit}s{extra}, "
              f"{rate:.2f} s/{self.unit}, elapsed {_fmt_s(el)}, eta {_fmt_s(eta)}",
              file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        return None
