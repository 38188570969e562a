"""Progress of long steps as plain log lines: tqdm's counting, rates and ETA, printed as one
line at most every `every_s` seconds (and one at the end) instead of a carriage-return bar, so
it stays readable in Ray worker output relayed to the driver and in CI logs."""

from __future__ import annotations

import logging

from tqdm import tqdm

log = logging.getLogger(__name__)

FORMAT = ("{desc}: {n_fmt}/{total_fmt} {unit}s{postfix}, {rate_inv_fmt}, "
          "elapsed {elapsed}, eta {remaining}")


class _Quiet:
    """tqdm's own writes (carriage returns, the closing newline) go nowhere."""

    def write(self, s: str) -> None:
        pass

    def flush(self) -> None:
        pass


class Progress(tqdm):
    """tqdm whose display is a log line (tqdm's documented way to change its front end:
    override `display`). Nothing is printed before the first step; each count once."""

    def __init__(self, total: int, desc: str, unit: str = "step", every_s: float = 15.0):
        self._shown = 0
        super().__init__(total=total, desc=desc, unit=unit, mininterval=every_s,
                         maxinterval=every_s, miniters=1, file=_Quiet(), bar_format=FORMAT,
                         dynamic_ncols=False, leave=True)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self.n > self._shown:
            self._shown = self.n
            line = self.format_meter(**self.format_dict).replace(",  ", ", ")
            log.info(line)
        return True

    def update(self, n: int = 1, postfix: str = "") -> None:
        if postfix:
            self.set_postfix_str(postfix, refresh=False)
        super().update(n)
        if self.n >= self.total:
            self.close()
