"""Exact extractions are verbatim (PLAGIARISM.md section 9).

The attack cuts a document at token positions, so an exact extraction (METRICS.md section 1:
the generation's first suffix_tokens tokens are its document's reference suffix) often starts
and ends inside a word. Text alignment reads words: on the demo, one such copy of 60 characters
had a common run of whole words of 44, under the 50-character verbatim rule, and was typed
none while exact extraction counted it. A copy the model gave back token for token is the
plainest verbatim reuse there is, so the pipeline types it verbatim of its own document,
whatever its length in words; what typing finds otherwise is unchanged. `memlab plagiarism`
on files knows no tokens and types by text alone."""

from __future__ import annotations

from memlab.scoring.exact import exact_extracted
from memlab.scoring.plagiarism.index import CorpusIndex


def common_prefix(a: str, b: str) -> int:
    """Characters two texts share from their start."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def type_exact_copies(rows: list[dict], typed: list[dict], index: CorpusIndex,
                      position: dict[str, int]) -> list[dict]:
    """`typed` (type_texts' findings for the generation rows `rows`), with every exact
    extraction of a corpus document (`position`: doc_id -> its index in the corpus; a
    non-member's document is not there) that typing did not find verbatim typed verbatim of
    its own document: the copy is the generation's text from its start as far as it agrees
    with the reference suffix's (gen_span), found in the document (doc_span; None if the
    document's text does not hold it as decoded), score its length in characters."""
    out = []
    for r, t in zip(rows, typed):
        i = position.get(r["doc_id"])
        if t["label"] == "verbatim" or i is None or \
                not exact_extracted(r["gen_ids"], r["suffix_ids"]):
            out.append(t)
            continue
        n = common_prefix(r["gen_text"], r["suffix_text"])
        start = index.texts[i].find(r["gen_text"][:n]) if n else -1
        out.append({"label": "verbatim", "doc_id": r["doc_id"], "gen_span": [0, n],
                    "doc_span": [start, start + n] if start >= 0 else None,
                    "score": float(n)})
    return out
