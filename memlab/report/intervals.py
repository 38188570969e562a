"""The report's 95% intervals, inside each metric's range.

A metric's range is what the scorer registry declares for it (`Scale`, memlab/scoring/
registry.py: rates in [0, 100], AUC in [0, 1]; undeclared: unbounded). The methods, chosen in
score.intervals (`IntervalSection`):

- One trial's share of samples (k of n: exact_%, sim>=t_%, the plagiarism rates), where its
  summary has no interval of its own: the Wilson score interval (Wilson 1927; recommended over
  the Wald interval, which leaves [0, 100] and undercovers at small n or near 0 and 1, by
  Brown, Cai and DasGupta 2001, "Interval estimation for a binomial proportion", Statist.
  Sci. 16:101-133), or Clopper-Pearson, by scipy.stats.binomtest (scipy is a dependency;
  statsmodels is not). n is the row's samples; with attack.samples_per_prompt > 1 the samples
  of one document are not independent, so the interval is too narrow by up to that factor's
  square root. A share of documents over their samples (exact_any_%, the *_docs_% labels:
  `Scale.of` "docs") is over the row's documents instead. A trial's own interval (the
  membership bootstrap's `<m>_lo` / `<m>_hi`, a percentile bootstrap: inside the range
  already) is used as it is.
- The mean over n >= 2 seeds of a bounded metric (default `logit`): the Student-t interval of
  the mean of the seeds' logits, mapped back (the logit transform of proportions pooled over
  studies: Lipsey and Wilson 2001, "Practical meta-analysis"; Barendregt et al. 2013, "Meta-
  analysis of prevalence", J. Epidemiol. Community Health 67:974-978). It keeps the t
  interval's width for few seeds (a percentile bootstrap over 2-3 seeds is at most the range
  of the seeds' values, and covers far less than 95%: Efron and Tibshirani 1993, section 13.3,
  its "narrowness bias"), and its ends move away from a bound as a proportion's do. A value
  at a bound has no finite logit: every value v of n samples is taken as (v n + c) / (n + 2c),
  the empirical logit (c = 0.5: Cox 1970, "The analysis of binary data"), and the ends are
  mapped back through the same shift (a summary without its `samples` and a value at a bound:
  the `t` method). The interval is then widened, if need be, to hold the
  arithmetic mean the cell shows (the logit interval is centred on the mean logit, which can
  lie below the mean of skewed values). `bootstrap`: the percentile bootstrap over the
  seeds; `t`: the Student-t interval cut to the range (cutting keeps its coverage: the mean
  lies in the range; Mandelkern 2002, "Setting confidence intervals for bounded parameters",
  Statist. Sci. 17:149-172). A share that is the same in every seed (0 of each seed's
  documents) has no spread over seeds to measure, yet is not certain: its interval is the
  one-seed method's over the seeds' pooled counts (every method). Where a prompt has several
  samples, a share of samples counts its documents (the report's caller passes the fewer):
  the samples of one document are not independent.
- An unbounded metric (perplexity, exposure, a training figure, a difference of rates): the
  Student-t interval of the mean over n >= 2 seeds, as before; with one seed, its own
  interval where it has one.

The mean itself is the arithmetic mean of the seeds' values whatever the method.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from memlab.config.schema import IntervalSection
from memlab.scoring.registry import UNBOUNDED, Scale

LEVEL = 0.95  # every interval of the report (the membership scorer's bootstrap too)

OVER_SEEDS = {  # score.intervals.over_seeds -> the report's header
    "logit": "the Student-t interval on the logit scale (0.5 added to hits and misses), "
             "mapped back",
    "bootstrap": "the percentile bootstrap over the seeds",
    "t": "the Student-t interval cut to the metric's range",
}
ONE_SEED = {"wilson": "Wilson score", "wilsoncc": "Wilson score with continuity correction",
            "exact": "Clopper-Pearson"}


@dataclass(frozen=True)
class Intervals:
    """How the report's intervals are computed: the settings (score.intervals) and each
    summary metric's Scale (the registry's; a metric not in `scales` is unbounded)."""

    settings: IntervalSection = field(default_factory=IntervalSection)
    scales: dict[str, Scale] = field(default_factory=dict)

    @classmethod
    def of(cls, score_sections=()) -> Intervals:
        """The intervals of studies scored with these score sections (the settings of the
        first; none: the defaults), the scales of every one's scorers (plugins included)."""
        from memlab.config.schema import ScoreSection
        from memlab.scoring import suite

        secs = list(score_sections) or [ScoreSection()]
        scales = {m: s for sec in secs for m, s in suite.scales(sec).items()}
        return cls(secs[0].intervals, scales)

    def scale(self, metric: str) -> Scale:
        return self.scales.get(metric, UNBOUNDED)

    def header(self) -> str:
        """The report's line naming the methods."""
        s = self.settings
        c = f"{s.continuity:g}"
        over = OVER_SEEDS[s.over_seeds].replace("0.5", c)
        return (f"Each cell: mean [{LEVEL:.0%} interval] over seeds. Rates and AUCs, inside "
                f"their range: with n >= 2, {over}; with one seed, the trial's bootstrap "
                f"interval where it has one (membership AUC, TPR), else the "
                f"{ONE_SEED[s.one_seed]} interval of a share of samples (over its documents "
                f"where a prompt has several; none for a mean fraction such as match_%). "
                f"Unbounded metrics (perplexity): the Student-t "
                f"interval of the mean with n >= 2. n: the seeds a row averages (the fewest "
                f"of its cells, where they differ).")


def t_interval(values: list[float]) -> tuple[float, float]:
    """The Student-t interval of the mean of n >= 2 values."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    half = t.ppf(0.5 + LEVEL / 2, len(values) - 1) * statistics.stdev(values) \
        / math.sqrt(len(values))
    return mean - half, mean + half


def one_share(value: float, samples: float, method: str = "wilson") -> tuple[float, float]:
    """The interval (percent) of a share of `value` percent of `samples` samples, by
    scipy.stats.binomtest's `method` (wilson, wilsoncc, exact)."""
    from scipy.stats import binomtest

    n = int(round(samples))
    k = min(n, max(0, int(round(value / 100.0 * n))))
    ci = binomtest(k, n).proportion_ci(LEVEL, method=method)
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def _logit(values: list[float], lo: float, hi: float, n: float | None,
           c: float) -> tuple[float, float] | None:
    """The logit method on [lo, hi] (module docstring); None: a value at a bound and no
    count of samples to shift it by."""
    u = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    if n is None:
        if ((u <= 0) | (u >= 1)).any():
            return None
        shift = lambda x: x  # noqa: E731
        back = lambda x: x  # noqa: E731
    else:
        shift = lambda x: (x * n + c) / (n + 2 * c)  # noqa: E731
        back = lambda x: (x * (n + 2 * c) - c) / n  # noqa: E731
    a, b = t_interval(list(np.log(shift(u) / (1 - shift(u)))))
    ends = np.clip(back(1 / (1 + np.exp(-np.array([a, b])))), 0.0, 1.0)
    return float(lo + ends[0] * (hi - lo)), float(lo + ends[1] * (hi - lo))


def _bootstrap(values: list[float], resamples: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean over the values."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    a, b = np.percentile(means, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return float(a), float(b)


def over_seeds(values: list[float], scale: Scale = UNBOUNDED, samples: float | None = None,
               settings: IntervalSection | None = None) -> tuple[float, float]:
    """The interval of the mean of n >= 2 values (one per seed) of a metric of `scale`;
    `samples`: the samples each value is over (the fewest of the seeds; None: not known)."""
    s = settings or IntervalSection()
    if not scale.bounded:
        return t_interval(values)
    mean = statistics.fmean(values)
    if s.over_seeds == "bootstrap":
        a, b = _bootstrap(values, s.resamples, s.seed)
    else:
        got = _logit(values, scale.lo, scale.hi, samples, s.continuity) \
            if s.over_seeds == "logit" else None
        a, b = got if got is not None else t_interval(values)
    if scale.share and samples and len(set(values)) == 1:
        # every seed the same share (0 of each seed's documents, say): no spread over seeds
        # to measure, but not certainty: the binomial interval of the seeds' pooled counts
        a, b = one_share(mean, samples * len(values), s.one_seed)
    return float(max(scale.lo, min(a, mean))), float(min(scale.hi, max(b, mean)))
