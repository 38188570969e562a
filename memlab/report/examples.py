"""`memlab examples`: a sweep's most-leaked generations, read back from the local runs folder.

The tables say how often a model gave its training text back; a reader also wants to see it.
With tracking.log_text off (every local or hub dataset) no generation reaches MLflow, so this
reads the stage shards under the runs root only: each finished trial's score shards joined with
its generation shards (memlab/io/shards.py, sample_rows). Leaked most: exact extraction first,
then the share of suffix tokens reproduced at their position, then the embedding similarity to
the true suffix.
"""

from __future__ import annotations

import textwrap

from memlab.config.expand import Study
from memlab.io.paths import stage_dir, trial_dir
from memlab.io.shards import sample_rows

SCORES = ("exact_extracted", "token_match_frac", "sim_to_source", "plag_label", "plag_doc_id")
TEXTS = ("doc_id", "split", "dup_count", "gen_text", "suffix_text")


def most_leaked(study: Study, top: int = 10, split: str = "member") -> tuple[list[dict], int]:
    """The `top` most-leaked samples of `split` (member, nonmember or all) over the study's
    finished trials, each with its trial's name, key and strategy; and how many trials were
    read (0: none finished)."""
    rows, read, seen = [], 0, set()
    for t in study.trials:
        if t.key in seen or not (trial_dir(t.config, t.key) / "result.json").is_file():
            continue
        seen.add(t.key)
        read += 1
        for r in sample_rows(stage_dir(t.config, "gen", t.keys.gen),
                             stage_dir(t.config, "score", t.key), TEXTS, SCORES):
            if split in ("all", r["split"]):
                rows.append({"trial": t.name, "trial_key": t.key,
                             "strategy": t.config.train.strategy, **r})
    rows.sort(key=lambda r: (not r.get("exact_extracted"), -(r.get("token_match_frac") or 0.0),
                             -(r.get("sim_to_source") or 0.0), r["trial"], r["sample_id"]))
    return rows[:top], read


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_examples(rows: list[dict], width: int = 100) -> str:
    """Each sample: one line of its trial and scores, then the generation above the true
    suffix (wrapped, aligned)."""
    out = []
    for i, r in enumerate(rows, 1):
        exact = {True: "yes", False: "no", None: "-"}[r.get("exact_extracted")]
        match = r.get("token_match_frac")
        plag = r.get("plag_label") or "-"
        if r.get("plag_doc_id") and plag != "none":
            plag += f" of {r['plag_doc_id']}"
        out.append(f"#{i} trial {r['trial']} ({r['trial_key']}), strategy {r['strategy']}, "
                   f"{r['split']} {r['doc_id']}, dup {r['dup_count']}: similarity "
                   f"{_num(r.get('sim_to_source'), '.3f')}, exact {exact}, match "
                   f"{_num(None if match is None else 100 * match, '.0f')}%, plagiarism {plag}")
        for label, text in (("generated", r.get("gen_text")), ("true     ", r.get("suffix_text"))):
            body = " ".join(str(text or "").split()) or "(empty)"
            out.append(textwrap.fill(body, width, initial_indent=f"  {label}  ",
                                     subsequent_indent=" " * 13))
        out.append("")
    return "\n".join(out).rstrip("\n")
