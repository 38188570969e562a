"""Time the literal reference and tabulate its labels by kind of generated text.

    .venv/bin/python -m tests.reference.measure_reference [n_texts] [n_docs] [seed]
"""

from __future__ import annotations

import collections
import sys
import time

import numpy as np

from tests.reference.plagiarism_ref import RefParams, ref_retrieve, ref_type_text
from tests.reference.texts import KINDS, demo_corpus, make_generated_texts


def main(n_texts: int = 200, n_docs: int = 2000, seed: int = 0) -> None:
    from memlab.scoring.similarity import Embedder

    emb = Embedder("all-MiniLM-L6-v2", device="cpu")
    judge_time, judge_calls = [0.0], [0]

    def judge(a: str, b: str) -> float:
        t = time.perf_counter()
        e = emb.encode([a, b])
        judge_time[0] += time.perf_counter() - t
        judge_calls[0] += 1
        return float(np.dot(e[0], e[1]))

    corpus = demo_corpus(n_docs, 0)
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    by_id = dict(zip(ids, texts))
    gens = make_generated_texts(corpus, n_texts, seed)
    p = RefParams()
    t = time.perf_counter()
    ref_retrieve("warm up", ids, texts, p.n_candidates)
    print(f"bm25 index over {n_docs} docs: {time.perf_counter() - t:.2f} s (cached afterwards)")
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    own = collections.Counter()
    t_ret = t_all = 0.0
    for g in gens:
        t0 = time.perf_counter()
        cands = ref_retrieve(g["text"], ids, texts, p.n_candidates)
        t1 = time.perf_counter()
        out = ref_type_text(g["text"], by_id, cands, judge, p)
        t_all += time.perf_counter() - t1
        t_ret += t1 - t0
        table[g["kind"]][out["label"]] += 1
        if out["label"] != "none" and out["doc_id"] == g["source_doc_id"]:
            own[g["kind"]] += 1
    n = len(gens)
    print(f"{n} texts; per text: retrieval {1e3 * t_ret / n:.1f} ms, alignment+typing "
          f"{1e3 * (t_all - judge_time[0]) / n:.1f} ms, judge {1e3 * judge_time[0] / n:.1f} ms "
          f"({judge_calls[0] / n:.1f} calls, {1e3 * judge_time[0] / max(judge_calls[0], 1):.1f} ms/call)")
    labels = ["verbatim", "paraphrase", "idea", "none"]
    print(f"{'kind':12s} " + " ".join(f"{x:>10s}" for x in labels) + "   own-doc")
    for k in KINDS:
        print(f"{k:12s} " + " ".join(f"{table[k][x]:10d}" for x in labels) + f"   {own[k]:7d}")


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
