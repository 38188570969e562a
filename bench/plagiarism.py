"""Benchmark: plagiarism typing, memlab vs the literal per-pair reference, in one run.

For each corpus size (demo corpora of 10k, 100k, ... documents) it builds memlab's corpus index
once, types `--texts` generated texts with memlab and `--ref-texts` of them with the reference
(tests/reference/plagiarism_ref.py, which re-processes both texts for every pair as published
pipelines do), on one core, and records texts per second per core, the retrieval cost per query,
and the agreement of the labels. With `--methods ... semantic` it also builds method=semantic's
sentence embeddings and document index (on the GPU when there is one; `--build-threads` for the
graph) and types the same texts with it, on one core.

`--dense-sizes N ...` measures method=semantic's dense retrieval alone over N documents (demo
corpora generated in parallel; every sentence embedded, on the GPU when there is one; each
document's vector the unit mean of its sentences', as memlab.scoring.plagiarism.index.SemanticIndex
builds it; usearch's HNSW graph built with `--build-threads`): milliseconds per query on one
thread and recall of the exact nearest documents. Each phase's output is kept under `--work`,
so a run stopped after embedding resumes at the graph; `--generate-only` stops after the
sentences (the CPU phase), so that a GPU run embeds them. On the GPU the vectors are computed
with TF32 matmuls (they serve this timing only). `--judge-device` (auto: the GPU when there is
one, as memlab's score actor does) is where both methods' judge embeds the typed texts'
sentences. Writes bench/results/plagiarism.json.

    python bench/plagiarism.py --sizes 10000 100000
    python bench/plagiarism.py --sizes 100000 --methods pan2014 semantic --ref-texts 0 \
        --dense-sizes 1000000 --work /tmp/plag --out bench/results/plagiarism_semantic.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
if "--dense-only" not in sys.argv:  # per-core figures: one thread everywhere
    for var in THREAD_VARS:
        os.environ[var] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def run_size(size: int, n_texts: int, n_ref: int, judge, tmp: Path, methods: list[str],
             build_judge, threads: int) -> dict:
    import torch

    from memlab.config.schema import PlagiarismSection
    from memlab.scoring import ann
    from memlab.scoring.plagiarism.index import CorpusIndex, SemanticIndex
    from memlab.scoring.plagiarism.text import prepare
    from memlab.scoring.plagiarism.typer import type_texts
    from tests.reference.texts import make_generated_texts

    torch.set_num_threads(1)
    p = PlagiarismSection()
    t0 = time.perf_counter()
    corpus, out_note = _bench_corpus(size)
    ids, texts = [d["doc_id"] for d in corpus], [d["text"] for d in corpus]
    gen = make_generated_texts(corpus, n=n_texts, seed=1)
    gtexts = [g["text"] for g in gen]
    t_corpus = time.perf_counter() - t0
    t0 = time.perf_counter()
    folder = CorpusIndex.build(ids, texts, tmp / f"index-{size}", p)
    t_build = time.perf_counter() - t0
    index = CorpusIndex(folder, p)
    out: dict = {"corpus_docs": size, "corpus": out_note, "texts": len(gen),
                 "corpus_gen_s": t_corpus,
                 "index_build_s": t_build}
    count = lambda rows: {lab: sum(o["label"] == lab for o in rows)  # noqa: E731
                          for lab in ("verbatim", "paraphrase", "idea", "none")}

    def timed_typing(semantic=None) -> tuple[list[dict], float]:
        judge._emb.clear()  # (nothing cached from an earlier size or method)
        t0 = time.perf_counter()
        rows = []
        for i in range(0, len(gen), 64):  # in batches, as the pipeline stage runs it
            rows += type_texts(gtexts[i:i + 64], index, judge, semantic)
        return rows, time.perf_counter() - t0

    ours: list[dict] = []
    if "pan2014" in methods:
        t0 = time.perf_counter()
        index.retrieve(gtexts)
        t_retrieve = time.perf_counter() - t0
        ours, t_ours = timed_typing()
        out.update(texts_per_s_per_core=len(gen) / t_ours,
                   retrieval_ms_per_query=1000 * t_retrieve / len(gen), labels=count(ours))
    if "semantic" in methods:
        t0 = time.perf_counter()
        sfolder = SemanticIndex.build(index, folder, build_judge, threads=threads)
        t_sbuild = time.perf_counter() - t0
        sem = SemanticIndex(sfolder, index)
        # the dense retrieval alone: each text's vector (its sentences' unit mean), then the
        # search on one thread
        judge._emb.clear()
        preps = [prepare(t, p, index.stem, index.vocab) for t in gtexts]
        sents = [[t[a:b] for a, b in g.spans] for t, g in zip(gtexts, preps)]
        flat = judge.vectors([x for ss in sents for x in ss])
        query = ann.unit_means(flat, np.cumsum([0] + [len(ss) for ss in sents]))
        t0 = time.perf_counter()
        sem.retrieve(query, p.semantic.dense_candidates)
        t_dense = time.perf_counter() - t0
        sem_rows, t_sem = timed_typing(sem)
        out.update(semantic_build_s=t_sbuild, semantic_build_threads=threads,
                   semantic_texts_per_s_per_core=len(gen) / t_sem,
                   semantic_dense_ms_per_query=1000 * t_dense / len(gen),
                   semantic_labels=count(sem_rows))
        if ours:
            out["semantic_over_pan2014"] = (len(gen) / t_sem) / out["texts_per_s_per_core"]
            out["semantic_same_label_as_pan2014"] = sum(
                a["label"] == b["label"] for a, b in zip(ours, sem_rows)) / len(gen)

    if ours and n_ref:  # the reference, per pair, on the first n_ref texts
        from tests.reference.plagiarism_ref import RefParams, ref_retrieve, ref_type_text

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
        out.update(
            ref_texts=len(ref), ref_texts_per_s_per_core=len(ref) / t_ref,
            speedup_vs_reference=out["texts_per_s_per_core"] / (len(ref) / t_ref),
            label_agreement=sum(a["label"] == b["label"] for a, b in zip(ours, ref)) / len(ref),
            label_and_doc_agreement=sum(a["label"] == b["label"] and a["doc_id"] == b["doc_id"]
                                        for a, b in zip(ours, ref)) / len(ref))
    return out


# ------------------------------------------------------------------ dense retrieval at scale
PART_DOCS = 15_625  # documents per demo corpus of the dense run (its titles stay unique)


def _bench_corpus(size: int) -> tuple[list[dict], str]:
    """generate_demo_corpus(size, seed=0) up to PART_DOCS documents; past that (seed 0's
    titles run out before 100k documents at 8cd058c), parts of PART_DOCS documents with seeds
    100, 101, ... (renumbered)."""
    from memlab.components.corpus import generate_demo_corpus

    if size <= PART_DOCS:
        return generate_demo_corpus(size, seed=0), "generate_demo_corpus(size, seed=0)"
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(min(PART_DOCS, size - j), 100 + j // PART_DOCS) for j in range(0, size, PART_DOCS)]
    procs = max(1, min(os.cpu_count() or 1, len(jobs)))  # (parts in parallel, same documents)
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_corpus_docs, *zip(*jobs)))
    return ([dict(d, doc_id=f"demo-{i:07d}") for i, d in
             enumerate(d for part in parts for d in part)],
            f"one demo corpus of {size} fails; parts of {PART_DOCS} with seeds 100...")


def _corpus_docs(n: int, seed: int) -> list[dict]:
    """A demo corpus of n documents; a seed whose titles run out is drawn again."""
    from memlab.components.corpus import generate_demo_corpus

    for attempt in range(5):
        try:
            return generate_demo_corpus(n, seed=seed + 1_000_000 * attempt)
        except RuntimeError:
            if attempt == 4:
                raise
    raise AssertionError


def _corpus_part(args: tuple[int, int, int]) -> tuple[list[str], list[int], list[str]]:
    """One process's share of the dense corpus: its documents' sentences (memlab's splitter;
    stems are not needed for the spans) and sentence counts, and (part 0) the texts to query."""
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism.text import split_sentences

    n, seed, n_queries = args
    docs = _corpus_docs(n, seed)
    msw = PlagiarismSection().min_sentence_words
    sents, counts = [], []
    for d in docs:
        spans = split_sentences(d["text"], msw, str)
        sents += [d["text"][a:b] for a, b, _ in spans]
        counts.append(len(spans))
    queries: list[str] = []
    if n_queries:
        from tests.reference.texts import make_generated_texts

        queries = [g["text"] for g in make_generated_texts(docs, n=n_queries, seed=1)]
    return sents, counts, queries


def run_dense(size: int, n_queries: int, work: Path, embedder: str, threads: int,
              generate_only: bool = False) -> dict:
    """Dense retrieval over `size` documents; phases kept under work/dense-<size>: the corpus's
    sentences (generated in parallel processes, before any GPU work, so that the tokenizer
    does not compete with them for the CPUs), their embeddings per part, the graph."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from memlab.scoring import ann

    d = work / f"dense-{size}"
    d.mkdir(parents=True, exist_ok=True)
    meta_file = d / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {"corpus_docs": size}
    save = lambda: meta_file.write_text(json.dumps(meta, indent=1))  # noqa: E731
    shares = [min(PART_DOCS, size - i) for i in range(0, size, PART_DOCS)]
    vec = lambda i: d / f"part-{i:04d}.npy"  # noqa: E731
    txt = lambda i: d / f"sents-{i:04d}.pkl"  # noqa: E731
    if not (d / "docs.npy").is_file():
        todo = [i for i in range(len(shares)) if not vec(i).is_file() and not txt(i).is_file()]
        if todo:
            t0 = time.perf_counter()
            spawn = multiprocessing.get_context("spawn")
            procs = max(1, min(os.cpu_count() or 1, 32, len(todo)))
            with ProcessPoolExecutor(procs, mp_context=spawn) as pool:  # (a seed per part)
                jobs = [(shares[i], 100 + i, n_queries * (i == 0)) for i in todo]
                for n, (i, part) in enumerate(zip(todo, pool.map(_corpus_part, jobs)), 1):
                    tmp = txt(i).with_suffix(".tmp")
                    tmp.write_bytes(pickle.dumps(part))
                    tmp.replace(txt(i))
                    print(f"[dense {size}] part {i + 1}/{len(shares)} generated ({n}/{len(todo)}"
                          f", {time.perf_counter() - t0:.0f} s)", flush=True)
            meta["generate_s"] = meta.get("generate_s", 0.0) + time.perf_counter() - t0
            meta["generate_processes"] = procs
            save()
        if generate_only:
            return meta
        from memlab.scoring.similarity import Embedder

        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":  # TF32 tensor-core matmuls: the vectors serve only this timing
            torch.backends.cuda.matmul.allow_tf32 = True
        model = Embedder(embedder, device)  # (memlab's: the Rust tokenizer on a GPU)

        def embed(sents: list[str]) -> np.ndarray:
            return model.encode(sents, batch_size=2048 if device == "cuda" else 64)

        for i in range(len(shares)):
            if vec(i).is_file():
                continue
            t0 = time.perf_counter()
            sents, counts, q = pickle.loads(txt(i).read_bytes())
            if q:  # (before the part: a run stopped between them redoes both)
                qs = [[t[a:b] for a, b, _ in _split(t)] for t in q]
                np.save(d / "queries.npy", ann.unit_means(
                    embed([x for ss in qs for x in ss]), np.cumsum([0] + [len(x) for x in qs])))
            np.save(vec(i), ann.unit_means(embed(sents), np.cumsum([0] + counts)))
            txt(i).unlink()
            meta["embed_s"] = meta.get("embed_s", 0.0) + time.perf_counter() - t0
            meta["sentences"] = meta.get("sentences", 0) + len(sents)
            meta["embed_sentences_per_s"] = meta["sentences"] / meta["embed_s"]
            save()
            print(f"[dense {size}] part {i + 1}/{len(shares)} embedded ({meta['embed_s']:.0f} s,"
                  f" {meta['embed_sentences_per_s']:.0f} sentences/s)", flush=True)
        np.save(d / "docs.npy", np.concatenate([np.load(vec(i)) for i in range(len(shares))]))
        meta.update(embed_device=device, part_docs=PART_DOCS,
                    embed_matmul="tf32" if device == "cuda" else "fp32")
        save()
    if generate_only:  # (the sentences were embedded already)
        return meta
    docs = np.load(d / "docs.npy", mmap_mode="r")
    queries = np.load(d / "queries.npy")
    if not (d / "docs.usearch").is_file():
        t0 = time.perf_counter()
        ann.build(np.asarray(docs), d / "docs.usearch", threads)
        meta.update(build_s=time.perf_counter() - t0, build_threads=threads)
        save()
    index = ann.load(d / "docs.usearch")
    k = 10
    ann.search(index, queries[:10], k)  # (pages the view in)
    t0 = time.perf_counter()
    found = ann.search(index, queries, k)
    t_search = time.perf_counter() - t0
    exact = _exact_top(queries, np.asarray(docs), k)
    meta.update(queries=len(queries), retrieval_ms_per_query=1000 * t_search / len(queries),
                recall_at_1=float(np.mean([f[:1] == [int(e[0])] for f, e in zip(found, exact)])),
                recall_at_10=float(np.mean([len(set(f) & set(e.tolist())) / k
                                            for f, e in zip(found, exact)])))
    save()
    return meta


def _exact_top(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    """The k documents of largest cosine per query, by matrix product (torch: the GPU when
    there is one), nearest first."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    d = torch.from_numpy(np.ascontiguousarray(docs)).to(dev)
    out = []
    for i in range(0, len(queries), 100):
        q = torch.from_numpy(np.ascontiguousarray(queries[i:i + 100])).to(dev)
        out.append((q @ d.T).topk(k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def _split(text: str):
    from memlab.config.schema import PlagiarismSection
    from memlab.scoring.plagiarism.text import split_sentences

    return split_sentences(text, PlagiarismSection().min_sentence_words, str)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--methods", nargs="+", default=["pan2014"],
                    choices=["pan2014", "semantic"])
    ap.add_argument("--texts", type=int, default=600, help="texts typed by memlab per size")
    ap.add_argument("--ref-texts", type=int, default=150,
                    help="texts typed by the reference (0: none)")
    ap.add_argument("--dense-sizes", type=int, nargs="*", default=[],
                    help="corpus sizes of the dense-retrieval-only runs")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count() or 1,
                    help="threads building the usearch graphs (memlab's default is 1: "
                         "reproducible graphs; the benchmark's timings are of the search)")
    ap.add_argument("--embedder", default="all-MiniLM-L6-v2", help="name or local folder")
    ap.add_argument("--judge-device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where the typing's judge embeds sentences (auto: the GPU when there "
                         "is one, as memlab's score actor does; both methods alike)")
    ap.add_argument("--work", default=None, help="kept between runs (dense phases)")
    ap.add_argument("--dense-only", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--generate-only", action="store_true",
                    help="generate the dense corpora's sentences under --work and stop (a later "
                         "run, e.g. on a GPU machine, embeds them)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "plagiarism.json"))
    args = ap.parse_args()
    if set(args.sizes) & set(args.dense_sizes):  # (both record retrieval_ms_per_query_<n>)
        ap.error("a size in both --sizes and --dense-sizes: their headline keys would clash")
    if args.generate_only and not args.work:
        ap.error("--generate-only keeps its output under --work: give it")
    import subprocess
    import tempfile

    if args.dense_only is not None:  # (a child process without the one-thread pins)
        meta = run_dense(args.dense_only, args.texts, Path(args.work), args.embedder,
                         args.build_threads, args.generate_only)
        print(json.dumps(meta, indent=1), flush=True)
        return
    if args.generate_only:  # (no model needed)
        for size in args.dense_sizes:
            run_dense(size, args.texts, Path(args.work), args.embedder, args.build_threads, True)
        return
    import torch

    from memlab.scoring.plagiarism.judge import Judge

    gpu = torch.cuda.is_available()
    judge_device = args.judge_device if args.judge_device != "auto" else ("cuda" if gpu else "cpu")
    judge = Judge(args.embedder, device=judge_device)
    build_judge = judge if judge_device == "cuda" or not gpu else Judge(args.embedder, "cuda")
    runs, dense = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for size in args.dense_sizes:
            env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
            subprocess.run([sys.executable, __file__, "--dense-only", str(size), "--work",
                            str(work), "--texts", str(args.texts), "--embedder", args.embedder,
                            "--build-threads", str(args.build_threads)], env=env, check=True)
            dense[size] = json.loads((work / f"dense-{size}" / "meta.json").read_text())
        for size in args.sizes:  # (after the dense runs, which resume when cut)
            runs[size] = run_size(size, args.texts, min(args.ref_texts, args.texts), judge,
                                  Path(tmp), args.methods, build_judge, args.build_threads)
            print(json.dumps({size: runs[size]}, indent=1), flush=True)

    def tag(n: int) -> str:  # 1000000 -> 1m, 100000 -> 100k, 1500 -> 1500
        for unit, div in (("m", 1_000_000), ("k", 1000)):
            if n % div == 0:
                return f"{n // div}{unit}"
        return str(n)

    headline = {}
    for size, r in runs.items():
        for key in ("texts_per_s_per_core", "speedup_vs_reference",
                    "semantic_texts_per_s_per_core", "semantic_over_pan2014"):
            if key in r:
                headline[f"{key}_{tag(size)}"] = round(r[key], 2)
        for key in ("retrieval_ms_per_query", "semantic_dense_ms_per_query"):
            if key in r:
                headline[f"{key}_{tag(size)}"] = round(r[key], 3)
    for size, r in dense.items():
        headline[f"retrieval_ms_per_query_{tag(size)}"] = round(r["retrieval_ms_per_query"], 3)
        headline[f"dense_recall_at_10_{tag(size)}"] = round(r["recall_at_10"], 3)
    first = runs[min(runs)] if runs else {}
    if "label_agreement" in first:
        headline["label_agreement"] = round(first["label_agreement"], 4)
    write_result(args.out, "plagiarism.py", headline, judge_device=judge_device,
                 runs={str(k): v for k, v in runs.items()},
                 dense={str(k): v for k, v in dense.items()})


if __name__ == "__main__":
    main()
