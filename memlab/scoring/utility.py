"""Task utility of the generations (METRICS.md section 5), per non-member sample (the held-out
documents; null on members), by maintained libraries:
ROUGE-L F1 (rouge-score, its default tokenizer, no stemming) and sentence BLEU (sacrebleu,
its defaults) of the generation against the true suffix, both 0-100; Flesch reading ease of
the generation (textstat; null for a blank generation). Reported next to the held-out
perplexity of the fine-tuned and the base model."""

from __future__ import annotations

import functools
import math

import pyarrow as pa

from memlab.scoring.registry import PERCENT, mean, scorer


@functools.cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _nanmean(metric: str):
    return lambda x, sec: {metric: float(x.astype(float).mean())}  # (pandas skips NaN)


@functools.cache
def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)  # what sacrebleu.sentence_bleu uses


def rouge_l(gen: str, ref: str) -> float:
    return 100.0 * _rouge().score(ref, gen)["rougeL"].fmeasure


def bleu(gen: str, ref: str) -> float:
    return float(_bleu().sentence_score(gen, [ref]).score)


def flesch(gen: str) -> float:
    import textstat

    return float(textstat.flesch_reading_ease(gen)) if gen.strip() else math.nan


def _held_out(fn):
    """The metric on non-member samples (the held-out documents), null on the others."""
    return lambda split, *texts: fn(*texts) if split == "nonmember" else None


# one legend phrase for both (the report's utility table joins its columns' docs, each once)
AGAINST_SUFFIX = ("rougeL (ROUGE-L F1 x 100) and bleu (sentence BLEU, 0-100) against the true "
                  "suffix")
scorer("rougeL", pa.float64(), inputs=("split", "gen_text", "suffix_text"),
       aggregate=mean("rougeL", PERCENT), report={"rougeL": "rougeL"}, table="utility",
       doc=AGAINST_SUFFIX, enabled=lambda sec: sec.utility)(_held_out(rouge_l))
scorer("bleu", pa.float64(), inputs=("split", "gen_text", "suffix_text"),
       aggregate=mean("bleu", PERCENT), report={"bleu": "bleu"}, table="utility",
       doc=AGAINST_SUFFIX, enabled=lambda sec: sec.utility)(_held_out(bleu))
scorer("flesch", pa.float64(), inputs=("split", "gen_text"), aggregate=_nanmean("flesch"),
       report={"flesch": "flesch"}, table="utility", doc="flesch (Flesch reading ease)",
       enabled=lambda sec: sec.utility)(_held_out(flesch))
