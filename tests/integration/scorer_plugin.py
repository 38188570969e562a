"""A scorer defined outside memlab, for the test that a registration alone makes it a score
column, an MLflow metric and a report column: does the generation reach the length of the
reference suffix (it stopped at end-of-text otherwise)?"""

import pyarrow as pa

from memlab.scoring.registry import percent, scorer


@scorer("covers_suffix", pa.bool_(), inputs=("gen_ids", "suffix_ids"),
        aggregate=percent("covers_pct"), report={"covers_pct": "covers_%"},
        doc="generations at least as long as the true suffix")
def covers_suffix(gen, suffix) -> bool:
    return len(gen) >= len(suffix)
