"""The registered scorer `plagiarism` (columns plag_*): each generation typed against its
dataset's fine-tuning documents (members). The corpus index (and method=semantic's) is
prepared once per dataset, before any scoring worker loads it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from memlab.config.schema import StudyConfig
from memlab.scoring.plagiarism.copies import type_exact_copies
from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex, dataset_index
from memlab.scoring.plagiarism.judge import Judge
from memlab.scoring.plagiarism.typer import LABELS, type_texts
from memlab.scoring.registry import (
    Column,
    Context,
    PerDoc,
    Scorer,
    label_percents,
    most_severe,
    register,
)


class PlagiarismScorer:
    """Plagiarism typing of each generation against the fine-tuning corpus (members); an
    exact extraction of a member is verbatim of its document (copies.py)."""

    def __init__(self, ctx: Context):
        sec = ctx.cfg.score.plagiarism
        self.index = CorpusIndex(ctx.prepared["index"], sec)
        self.judge = Judge(sec.judge, sec.judge_kind)
        self.semantic = SemanticIndex(ctx.prepared["semantic"], self.index,
                                      sec.semantic.dense_breadth) \
            if sec.method == "semantic" else None
        self.position = {d: i for i, d in enumerate(self.index.doc_ids)}

    def __call__(self, rows: list[dict]) -> dict[str, list]:
        typed = type_texts([r["gen_text"] for r in rows], self.index, self.judge,
                           self.semantic)
        typed = type_exact_copies(rows, typed, self.index, self.position)
        return {f"plag_{k}": [t[k] for t in typed]
                for k in ("label", "doc_id", "gen_span", "doc_span", "score")}


def _prepare(cfg: StudyConfig, data_dir: Path) -> dict:
    p = cfg.score.plagiarism
    index = dataset_index(data_dir, p)
    if p.method != "semantic":
        return {"index": str(index)}
    return {"index": str(index), "semantic": str(SemanticIndex.build(
        CorpusIndex(index, p), index, Judge(p.judge, p.judge_kind)))}


register(Scorer(
    "plagiarism",
    (Column("plag_label", pa.string(),  # verbatim | paraphrase | idea | none
            label_percents(LABELS[:3], "none", "plagiarism_any_pct"),
            lambda sec: {"verbatim_pct": "verbatim_%", "paraphrase_pct": "paraphrase_%",
                         "idea_pct": "idea_%", "plagiarism_any_pct": "any_%"},
            table="plagiarism",
            per_doc=PerDoc(  # (n > 1 samples per prompt) a document at its most severe sample
                most_severe(LABELS[:3], "none", "plagiarism_any_docs_pct"),
                lambda sec: {"verbatim_docs_pct": "verbatim_docs_%",
                             "paraphrase_docs_pct": "paraphrase_docs_%",
                             "idea_docs_pct": "idea_docs_%",
                             "plagiarism_any_docs_pct": "any_docs_%"},
                doc="% of documents at their most severe sample's label (verbatim > paraphrase "
                    "> idea > none) over their n samples",
                table="plagiarism")),
     Column("plag_doc_id", pa.string()),
     Column("plag_gen_span", pa.list_(pa.int32())),
     Column("plag_doc_span", pa.list_(pa.int32())),
     Column("plag_score", pa.float64())),
    load=PlagiarismScorer, prepare=_prepare, enabled=lambda sec: sec.plagiarism.enabled,
))
