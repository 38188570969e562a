"""Sample-and-rank extraction (Carlini et al. 2021, "Extracting Training Data from Large
Language Models", USENIX Security; METRICS.md section 7).

The fine-tuned model generates freely (attack.rank: N draws from empty prompts or a
population document's first tokens, memlab/stages/generate.py); the generations are
- deduplicated (score.rank.dedupe; empty ones dropped, the first draw of equal texts kept),
- scored by each membership signal of memlab/scoring/membership.py over their own generated
  tokens (`signals`: loss, zlib, min-k%, min-k%++, and ref with the base model's NLL of the
  same tokens from the rank stage, memlab/stages/rank.py), higher = more likely memorised,
- checked against the fine-tuning corpus (the members) with the plagiarism index
  (memlab/scoring/plagiarism/index.py): a generation is verbatim training text when it shares
  a run of whole words longer than score.plagiarism.verbatim_chars characters with one of its
  score.plagiarism.n_candidates BM25 candidates (the typer's verbatim rule, PLAGIARISM.md),
- ranked by each signal of score.rank.signals: precision at k is the share (%) of the k
  highest-ranked that are verbatim (fewer than k distinct generations: all of them; a
  generation whose signal is undefined ranks last; ties keep draw order).

The trial's figures go to its score summary (members, whole split): rank_samples,
rank_unique, rank_verbatim_pct (of the distinct generations: the precision of a random
ranking), rank_precision_at_<k>_<signal> and the headline rank_precision_at_<k> (signal
score.rank.headline). The per-generation rows go to the score stage's rank.parquet.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from memlab.config.schema import ScoreSection, StudyConfig
from memlab.scoring.membership import signals as signal_values
from memlab.scoring.plagiarism.align import longest_common_word_run
from memlab.scoring.registry import PERCENT, Scale

FILE = "rank.parquet"  # the per-generation rows, in the score stage's folder


def dedupe_key(text: str, rule: str) -> str:
    """What two generations are compared by (score.rank.dedupe)."""
    return re.sub(r"\s+", " ", text).strip() if rule == "whitespace" else text


def distinct(rows: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The rows in draw order, empty generations and later duplicates dropped; `copies`: how
    many draws gave each kept text."""
    rows = rows.sort_values("rank_idx", kind="stable")
    key = rows.gen_text.map(lambda t: dedupe_key(t, rule))
    rows = rows.assign(copies=key.map(key.value_counts()))
    return rows[(key.str.strip() != "") & ~key.duplicated()].reset_index(drop=True)


def ranking(score) -> np.ndarray:
    """The positions of `score` from the highest down (NaN last; ties in the given order)."""
    s = np.asarray(score, dtype=np.float64)
    return np.lexsort((np.arange(len(s)), np.where(np.isnan(s), np.inf, -s)))


def precision_at(score, verbatim, k: int) -> float:
    """The share (%) of verbatim among the k highest scores (`ranking`); fewer than k: over
    all of them. NaN for none."""
    v = np.asarray(verbatim, dtype=bool)
    if not len(v):
        return math.nan
    return 100.0 * float(v[ranking(score)[:k]].mean())


def verbatim_matches(texts: list[str], index) -> list[tuple[str | None, int]]:
    """(member doc_id, characters) of each text's longest run of whole words shared with one
    of its BM25 candidates in the corpus index (equal runs: the better candidate; None, 0: no
    shared word)."""
    out = []
    for text, cands in zip(texts, index.retrieve(texts) if texts else []):
        runs = [(longest_common_word_run(text, index.texts[c]), -i, c) for i, c in
                enumerate(cands)]
        n, _, c = max(runs, default=(0, 0, None))
        out.append((index.doc_ids[c] if c is not None and n else None, n))
    return out


def ranked(rows: pd.DataFrame, cfg: StudyConfig, index) -> pd.DataFrame:
    """The distinct generations with every signal (`mia_<signal>`), their verbatim match
    (`verbatim`, `source_doc_id`, `match_chars`) and their rank by each signal of
    score.rank.signals (`rank_<signal>`, 1 = first)."""
    sr, p = cfg.score.rank, cfg.score.plagiarism
    rows = distinct(rows, sr.dedupe)
    frac = cfg.score.membership.mink_frac
    found = [signal_values(r, frac) for r in rows.to_dict("records")]
    for s in sr.signals:
        rows[f"mia_{s}"] = [f[s] for f in found]
    match = verbatim_matches(rows.gen_text.tolist(), index)
    rows["source_doc_id"] = [m[0] for m in match]
    rows["match_chars"] = [m[1] for m in match]
    rows["verbatim"] = rows.match_chars > p.verbatim_chars
    for s in sr.signals:
        rank = np.empty(len(rows), dtype=np.int64)
        rank[ranking(rows[f"mia_{s}"])] = np.arange(1, len(rows) + 1)
        rows[f"rank_{s}"] = rank
    return rows


def figures(rows: pd.DataFrame, drawn: int, cfg: StudyConfig) -> dict[str, float]:
    """The trial's summary metrics of its ranked generations (`ranked`)."""
    sr = cfg.score.rank
    out = {"rank_samples": float(drawn), "rank_unique": float(len(rows)),
           "rank_verbatim_pct": 100.0 * float(rows.verbatim.mean()) if len(rows) else math.nan}
    for s in sr.signals:
        for k in sr.at:
            out[f"rank_precision_at_{k}_{s}"] = precision_at(rows[f"mia_{s}"], rows.verbatim, k)
    for k in sr.at:
        out[f"rank_precision_at_{k}"] = out[f"rank_precision_at_{k}_{sr.headline}"]
    return out


def scales(sec: ScoreSection) -> dict[str, Scale]:
    """The figures' ranges (the report's intervals stay inside them): the shares in percent;
    the counts are unbounded."""
    names = ["rank_verbatim_pct", *(f"rank_precision_at_{k}" for k in sec.rank.at),
             *(f"rank_precision_at_{k}_{s}" for k in sec.rank.at for s in sec.rank.signals)]
    return dict.fromkeys(names, PERCENT)


def rank_trial(rank_dir: Path, data_dir: Path, cfg: StudyConfig, out: Path) -> dict[str, float]:
    """Rank a trial's draws (the rank stage's shards), write the rows to `out`, return its
    summary metrics."""
    from memlab.io.shards import RANK_BASE_SCHEMA, read_shards
    from memlab.scoring.plagiarism.index import CorpusIndex, dataset_index

    table = read_shards(rank_dir, RANK_BASE_SCHEMA)
    index = CorpusIndex(dataset_index(data_dir, cfg.score.plagiarism), cfg.score.plagiarism)
    rows = ranked(table.to_pandas(), cfg, index)
    keep = [c for c in rows.columns if c not in ("token_logp", "token_z")]
    tmp = out.with_name(out.name + ".tmp")
    rows[keep].to_parquet(tmp, index=False)
    tmp.replace(out)
    return figures(rows, table.num_rows, cfg)
