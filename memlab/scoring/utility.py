"""Task utility of the generations (METRICS.md section 5), per sample, by maintained libraries:
ROUGE-L F1 (rouge-score, its default tokenizer, no stemming) and sentence BLEU (sacrebleu,
its defaults) of the generation against the true suffix, both 0-100; Flesch reading ease of
the generation (textstat; null for a blank generation). Reported on the held-out documents
(the non-members) next to the held-out perplexity of the fine-tuned and the base model."""

from __future__ import annotations

import functools
import math

import pyarrow as pa

from memlab.scoring.registry import mean, scorer

UTILITY_DOC = "mean over the samples of the group"


@functools.cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _nanmean(metric: str):
    return lambda x, sec: {metric: float(x.astype(float).mean())}  # (pandas skips NaN)


@scorer("rougeL", pa.float64(), inputs=("gen_text", "suffix_text"), aggregate=mean("rougeL"),
        report={"rougeL": "ROUGE-L"}, table="utility", doc="ROUGE-L F1 x 100 vs the true suffix")
def rouge_l(gen: str, ref: str) -> float:
    return 100.0 * _rouge().score(ref, gen)["rougeL"].fmeasure


@scorer("bleu", pa.float64(), inputs=("gen_text", "suffix_text"), aggregate=mean("bleu"),
        report={"bleu": "BLEU"}, table="utility", doc="sentence BLEU vs the true suffix")
def bleu(gen: str, ref: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(gen, [ref]).score)


@scorer("flesch", pa.float64(), inputs=("gen_text",), aggregate=_nanmean("flesch"),
        report={"flesch": "Flesch"}, table="utility", doc="Flesch reading ease of the generation")
def flesch(gen: str) -> float:
    import textstat

    return float(textstat.flesch_reading_ease(gen)) if gen.strip() else math.nan
