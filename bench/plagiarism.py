"""Benchmark: plagiarism typing, memlab vs the literal per-pair reference, in one run.

For each corpus size (demo corpora of 10k, 100k, ... documents) it builds memlab's corpus index
once, types `--texts` generated texts with memlab and `--ref-texts` of them with the reference
(tests/reference/plagiarism_ref.py, which re-processes both texts for every pair as published
pipelines do), on one core, and records texts per second per core, the retrieval cost per query,
and the agreement of the labels. Writes bench/results/plagiarism.json.

    python bench/plagiarism.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[var] = "1"  # per-core figures: one thread everywhere
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def run_size(size: int, n_texts: int, n_ref: int, judge, tmp: Path) -> dict:
    import torch

    from memlab.components.corpus import generate_demo_corpus
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism import CorpusIndex, type_texts
    from tests.reference.plagiarism_ref import RefParams, ref_retrieve, ref_type_text
    from tests.reference.texts import make_generated_texts

    torch.set_num_threads(1)
    p = PlagiarismSection()
    t0 = time.perf_counter()
    corpus = generate_demo_corpus(size, seed=0)
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    gen = make_generated_texts(corpus, n=n_texts, seed=1)
    t_corpus = time.perf_counter() - t0
    t0 = time.perf_counter()
    folder = CorpusIndex.build(ids, texts, tmp / f"index-{size}", p)
    t_build = time.perf_counter() - t0
    index = CorpusIndex(folder, p)

    # memlab, in batches as the pipeline stage runs it (nothing cached from an earlier size)
    judge._emb.clear()
    t0 = time.perf_counter()
    index.retrieve([g["text"] for g in gen])
    t_retrieve = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = []
    for i in range(0, len(gen), 64):
        ours += type_texts([g["text"] for g in gen[i:i + 64]], index, judge)
    t_ours = time.perf_counter() - t0

    # the reference, per pair, on the first n_ref texts
    rp = RefParams()
    by_id = dict(zip(ids, texts))
    def ref_judge(a: str, b: str) -> float:  # one model call per sentence pair, no cache
        ea, eb = judge.model.encode([a, b])
        return float(ea @ eb)

    t0 = time.perf_counter()
    ref = []
    for g in gen[:n_ref]:
        cands = ref_retrieve(g["text"], ids, texts, rp.n_candidates)
        ref.append(ref_type_text(g["text"], by_id, cands, ref_judge, rp))
    t_ref = time.perf_counter() - t0
    agree = sum(a["label"] == b["label"] for a, b in zip(ours, ref)) / len(ref)
    same_doc = sum(a["label"] == b["label"] and a["doc_id"] == b["doc_id"]
                   for a, b in zip(ours, ref)) / len(ref)
    labels = {lab: sum(o["label"] == lab for o in ours) for lab in
              ("verbatim", "paraphrase", "idea", "none")}
    return {
        "corpus_docs": size,
        "texts": len(gen),
        "ref_texts": len(ref),
        "corpus_gen_s": t_corpus,
        "index_build_s": t_build,
        "texts_per_s_per_core": len(gen) / t_ours,
        "ref_texts_per_s_per_core": len(ref) / t_ref,
        "speedup_vs_reference": (len(gen) / t_ours) / (len(ref) / t_ref),
        "retrieval_ms_per_query": 1000 * t_retrieve / len(gen),
        "label_agreement": agree,
        "label_and_doc_agreement": same_doc,
        "labels": labels,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--texts", type=int, default=600, help="texts typed by memlab per size")
    ap.add_argument("--ref-texts", type=int, default=150, help="texts typed by the reference")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "plagiarism.json"))
    args = ap.parse_args()
    import tempfile

    from memlab.scoring.plagiarism import Judge

    judge = Judge("all-MiniLM-L6-v2")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            runs[size] = run_size(size, args.texts, min(args.ref_texts, args.texts), judge,
                                  Path(tmp))
            print(json.dumps({size: runs[size]}, indent=1), flush=True)
    tag = lambda n: f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}m"  # noqa: E731
    headline = {}
    for size, r in runs.items():
        headline[f"texts_per_s_per_core_{tag(size)}"] = round(r["texts_per_s_per_core"], 2)
        headline[f"speedup_vs_reference_{tag(size)}"] = round(r["speedup_vs_reference"], 2)
        headline[f"retrieval_ms_per_query_{tag(size)}"] = round(r["retrieval_ms_per_query"], 3)
    first = runs[min(runs)]
    headline["label_agreement"] = round(first["label_agreement"], 4)
    write_result(args.out, "plagiarism.py", headline,
                 runs={str(k): v for k, v in runs.items()})

if __name__ == "__main__":
    main()
