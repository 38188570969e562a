"""What the calibrated membership signals (memlab/scoring/calibrated.py) add to a trial: the
teacher-forced passes they need, timed against the one every trial already makes (the generate
stage's pass over each attacked document's window, `doc_stats`) and against the attack itself
(HF generate of max_new_tokens per document, as the CPU demo runs it).

    python bench/calibrated_cost.py --model tiny      # the tiny test model
    python bench/calibrated_cost.py --model smollm2   # the demo's SmolLM2-135M (CPU: minutes)

Workload: the demo's (sweeps/quickstart.yaml): 24 members + 24 non-members, seq_len 64,
prefix / suffix / new tokens 32; the population and ReCaLL's shots as given. Prints one JSON
line; --out writes it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    import torch

    from memlab.components.data import load_documents
    from memlab.components.models import load_causal_lm, load_tokenizer, prepare_base_model
    from memlab.components.passes import doc_stats
    from memlab.config.expand import load_study
    from memlab.stages.base import token_frequencies
    from memlab.stages.generate import generate_rows, population_rows, recall_rows, windows

    torch.set_num_threads(a.threads)
    sets = [f"data.num_population={a.population}"] + (
        ["model.source=tiny"] if a.model == "tiny" else [])
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
        "model": a.model, "docs": a.docs, "population": a.population, "shots": a.shots,
        "seq_len": cfg.train.seq_len, "threads": a.threads,
        "doc_pass_s": timed(lambda: doc_stats(model, tok, windows(tok, rows, cfg), b)),
        "attack_s": timed(lambda: generate_rows(model, tok, rows, cfg, "part-00000.parquet"),
                          repeat=1),
        "population_pass_s": timed(lambda: population_rows(model, tok, pop, cfg)),
        "recall_pass_s": timed(lambda: recall_rows(model, tok, rows, pop[:a.shots], cfg)),
        "base_freq_pass_s": timed(lambda: token_frequencies(model, tok, cfg, pop)),
    }
    added = out["population_pass_s"] + out["recall_pass_s"]
    out["added_per_trial_over_attack"] = added / out["attack_s"]
    line = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()})
    print(line)
    if a.out:
        a.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
