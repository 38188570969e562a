"""What the calibrated membership signals (memlab/scoring/calibrated.py) add to a trial: the
teacher-forced passes they need, timed against the one every trial already makes (the generate
stage's pass over each attacked document's window, `doc_stats`) and against the attack itself
(HF generate of max_new_tokens per document, as the CPU demo runs it).

    python bench/calibrated_cost.py --models tiny            # the tiny test model (seconds)
    python bench/calibrated_cost.py --out bench/results/calibrated_cost.json
                                  # tiny and the demo's SmolLM2-135M (CPU: about 7 minutes)

Workload: the demo's (sweeps/quickstart.yaml): 24 members + 24 non-members, seq_len 64,
prefix / suffix / new tokens 32; the population and ReCaLL's shots as given. Prints one JSON
headline: per model `<model>_attack_s`, `_doc_pass_s`, `_population_pass_s`,
`_recall_pass_s`, `_base_freq_pass_s` (seconds) and `_added_over_attack` (the population and
ReCaLL passes over the attack); --out writes the record."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._common import write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=("tiny", "smollm2"),
                    default=["tiny", "smollm2"])
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    runs = [cost(a, m) for m in a.models]
    headline = {f"{r['model']}_{k}": round(v, 4) for r in runs for k, v in r.items()
                if isinstance(v, float)}
    if a.out:
        write_result(a.out, "calibrated_cost.py", headline, runs=runs, workload=(
            "per trial of the demo's workload: --docs attacked documents, seq_len 64, 32 new "
            "tokens; --population documents, ReCaLL --shots. population_pass_s and "
            "recall_pass_s are the generate stage's additions; base_freq_pass_s the base "
            "stage's, once per base model and dataset (shared by every trial)"))
    else:
        print(headline)


def cost(a, model_name: str) -> dict:
    """One model's passes, timed (seconds)."""
    import torch

    from memlab.components.data import load_documents
    from memlab.components.models import load_causal_lm, load_tokenizer, prepare_base_model
    from memlab.components.passes import doc_stats
    from memlab.config.expand import load_study
    from memlab.stages.base import token_frequencies
    from memlab.stages.generate import generate_rows, population_rows, recall_rows, windows

    torch.set_num_threads(a.threads)
    sets = [f"data.num_population={a.population}"] + (
        ["model.source=tiny"] if model_name == "tiny" else [])
    cfg = load_study(Path(__file__).parents[1] / "sweeps" / "quickstart.yaml",
                     sets).trials[0].config
    cfg.score.membership.recall.shots = a.shots
    docs = load_documents(cfg.data)[:a.docs + a.population]
    rows = [{**d, "split": "member", "dup_count": 1} for d in docs[:a.docs]]
    pop = [{**d, "split": "population", "dup_count": 0} for d in docs[a.docs:]]
    path = prepare_base_model(cfg.model, [d["text"] for d in docs])["path"]
    model, tok = load_causal_lm(path).eval(), load_tokenizer(path)

    def timed(fn, repeat=2):
        fn()  # (warm-up)
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        return (time.perf_counter() - t0) / repeat

    b = cfg.attack.batch_size
    out = {
        "model": model_name, "docs": a.docs, "population": a.population, "shots": a.shots,
        "seq_len": cfg.train.seq_len, "threads": a.threads,
        "doc_pass_s": timed(lambda: doc_stats(model, tok, windows(tok, rows, cfg), b)),
        "attack_s": timed(lambda: generate_rows(model, tok, rows, cfg, "part-00000.parquet"),
                          repeat=1),
        "population_pass_s": timed(lambda: population_rows(model, tok, pop, cfg)),
        "recall_pass_s": timed(lambda: recall_rows(model, tok, rows, pop[:a.shots], cfg)),
        "base_freq_pass_s": timed(lambda: token_frequencies(model, tok, cfg, pop)),
    }
    added = out["population_pass_s"] + out["recall_pass_s"]
    out["added_over_attack"] = added / out["attack_s"]
    return out


if __name__ == "__main__":
    main()
