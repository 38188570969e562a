"""Plagiarism typing at corpus scale (METRICS.md section 2, read exactly as PLAGIARISM.md).

Every generated text is checked against the whole fine-tuning corpus: BM25 candidates, then
PAN-style text alignment of each (text, candidate) pair, then typing as verbatim, paraphrase,
idea or none. What makes it fast, without changing a label:
- the corpus is pre-processed once per dataset (sentences, spans, stem ids) and saved next to
  the dataset shards with its BM25 index; workers memory-map both, loading them once (index);
- a generated text is pre-processed once, not once per candidate, and stems are cached (text);
- each pair is a handful of small dense matrix products (tf-idf cosines, Dice) instead of
  Python loops over sentence pairs (align);
- paraphrase-judge calls of a whole batch of texts are made in one batched, cached call (typer,
  judge).
One job per module: text (sentences, stems, facts), align (one pair's cases), judge, index
(the corpus's BM25 and dense indexes), typer (a batch of texts), scorer (the registered
scorer), files (`memlab plagiarism` on files). Importing this package registers the scorer.
"""

from memlab.scoring.plagiarism import scorer  # noqa: F401  (it registers)
