"""Benchmark: calibration of the paraphrase judge's window on hand-written sentence pairs.

memlab types a case as paraphrase when a sentence pair's judge score lies in
[paraphrase_low, paraphrase_high] (PLAGIARISM.md section 6). The default 0.5-0.99 window was set
for a RoBERTa-MRPC probability; memlab's offline judge is the cosine of unit-normalised
all-MiniLM-L6-v2 embeddings. This script scores the pairs of bench/data/paraphrase_pairs.jsonl
(true paraphrases, kinds light / heavy / condensed, against same-topic sentences that do not say
the same thing, kinds same_skeleton / related) with the very judge memlab uses
(memlab.scoring.plagiarism.judge.Judge) and reports, per candidate lower threshold t in 0.50..0.95:
recall on paraphrases (cosine in [t, high]), false-positive rate on same-topic pairs (overall and
per kind), ROC AUC, the smallest t whose same-topic FPR is <= --max-fpr, the t maximising
Youden's J, and the same figures when a simple named-entity check (numbers and capitalised words
not at sentence start must agree, METRICS.md section 2) is added to the cosine window.
Writes bench/results/judge_calibration.json and .png.

    python bench/judge_calibration.py
    python bench/judge_calibration.py --cross-encoder PATH_OR_ID   # an HF cross-encoder instead
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # a shared machine: one thread is plenty for 600 sentences
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402

from bench._common import write_result  # noqa: E402

QUANTILES = {"p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}
PARA_KINDS = ("light", "heavy", "condensed")
TOPIC_KINDS = ("same_skeleton", "related")
GRID = [round(x, 2) for x in np.arange(0.50, 0.9501, 0.01)]


# ------------------------------------------------------------------ the entity check
def entity_checks(a: str, b: str) -> dict[str, bool]:
    """contained: memlab's own condition (memlab.scoring.plagiarism.text.facts_agree: every number
    and capitalised non-initial word of each side occurs, in any case and position, in the
    other). equal: the two fact sets are equal. overlap: they share a fact, or both are empty."""
    from memlab.scoring.plagiarism.text import facts, facts_agree

    fa, fb = facts(a)[0], facts(b)[0]
    return {"equal": fa == fb, "contained": facts_agree(a, b),
            "overlap": bool(fa & fb) or (not fa and not fb)}


# ------------------------------------------------------------------ statistics
def distribution(v: np.ndarray) -> dict:
    if len(v) == 0:
        return {"n": 0}
    out = {"n": int(len(v)), "min": float(v.min())}
    out.update({k: float(np.percentile(v, q)) for k, q in QUANTILES.items()})
    out.update({"max": float(v.max()), "mean": float(v.mean())})
    return {k: round(x, 4) if isinstance(x, float) else x for k, x in out.items()}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative), ties count half."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    d = pos[:, None] - neg[None, :]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


def share(mask: np.ndarray) -> float:
    return float(mask.mean()) if len(mask) else float("nan")


def sweep(cos: np.ndarray, label: np.ndarray, kind: np.ndarray, high: float,
          extra: np.ndarray | None = None, groups: dict | None = None) -> list[dict]:
    """One row per t: recall on paraphrases and FPR on same-topic pairs of the window
    [t, high], optionally AND-ed with a per-pair boolean check; `groups`: more FPR subsets."""
    ok = np.ones(len(cos), bool) if extra is None else extra
    para, topic = label == "paraphrase", label == "same_topic"
    rows = []
    for t in GRID:
        hit = (cos >= t) & (cos <= high) & ok
        row = {"t": t, "recall": share(hit[para]), "fpr_same_topic": share(hit[topic])}
        for k in TOPIC_KINDS:
            row[f"fpr_{k}"] = share(hit[topic & (kind == k)])
        for name, m in (groups or {}).items():
            row[f"fpr_{name}"] = share(hit[m])
        for k in PARA_KINDS:
            row[f"recall_{k}"] = share(hit[para & (kind == k)])
        row["youden_j"] = row["recall"] - row["fpr_same_topic"]
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return rows


def pick(rows: list[dict], max_fpr: float) -> tuple[dict | None, dict]:
    """(smallest t with FPR <= max_fpr or None, t maximising Youden's J, the smallest on ties)."""
    suggested = next((r for r in rows if r["fpr_same_topic"] <= max_fpr), None)
    youden = max(rows, key=lambda r: (r["youden_j"], -r["t"]))
    return suggested, youden


def at(rows: list[dict], t: float) -> dict:
    return next(r for r in rows if abs(r["t"] - t) < 1e-9)


# ------------------------------------------------------------------ generator pairs
def generator_pairs(per_template: int = 3) -> list[tuple[str, str]]:
    """Supplementary same-skeleton pairs from memlab's own corpus generator: every template of
    every fact of every genre filled twice, with two documents' constants (other names, numbers,
    places), as a fine-tuned model writes a never-seen document of a genre."""
    import random

    from memlab.components import corpus as C

    tpl = C.default_templates()
    out = []
    for genre in tpl.genres.values():
        for templates in genre.facts + [ts for ts in (genre.first, genre.last) if ts]:
            for t in templates:
                for s in range(per_template):
                    r1, r2 = random.Random(s), random.Random(10_000 + s)
                    out.append((C._fill(t, r1, C._doc_constants(r1, tpl.slots)),
                                C._fill(t, r2, C._doc_constants(r2, tpl.slots))))
    return out


def generator_check(judge, high: float) -> dict:
    pairs = generator_pairs()
    cos = np.array(judge.scores(pairs), dtype=np.float64)
    checks = [entity_checks(a, b) for a, b in pairs]
    eq = np.array([c["equal"] for c in checks])
    ct = np.array([c["contained"] for c in checks])
    rows = []
    for t in GRID:
        hit = (cos >= t) & (cos <= high)
        rows.append({"t": t, "fpr": round(share(hit), 4),
                     "fpr_with_entity_equal": round(share(hit & eq), 4),
                     "fpr_with_entity_contained": round(share(hit & ct), 4)})
    return {"n": len(pairs), "distribution": distribution(cos),
            "n_above_high": int((cos > high).sum()),
            "entity_equal_pass": round(share(eq), 4),
            "entity_contained_pass": round(share(ct), 4),
            "thresholds": rows,
            "highest": [{"cos": round(float(cos[i]), 4), "a": pairs[i][0], "b": pairs[i][1]}
                        for i in np.argsort(-cos)[:8]]}


# ------------------------------------------------------------------ the plot
def plot(cos, label, kind, lines: dict[str, float], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo = min(0.0, float(cos.min()) - 0.02)
    bins = np.linspace(lo, 1.0, 41)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharex=True)
    ax = axes[0]
    for lab, color in (("paraphrase", "tab:blue"), ("same_topic", "tab:red")):
        ax.hist(cos[label == lab], bins=bins, alpha=0.55, color=color,
                label=f"{lab} (n={int((label == lab).sum())})")
    ax.set_title("by label")
    ax = axes[1]
    for k, color in (("light", "tab:cyan"), ("heavy", "tab:blue"), ("condensed", "navy"),
                     ("same_skeleton", "tab:red"), ("related", "tab:orange")):
        ax.hist(cos[kind == k], bins=bins, histtype="step", linewidth=1.8, color=color,
                label=f"{k} (n={int((kind == k).sum())})")
    ax.set_title("by kind")
    for ax in axes:
        for (name, x), style in zip(lines.items(), ("--", "-", "-.", ":")):
            ax.axvline(x, color="black", linestyle=style, linewidth=1, label=f"{name} = {x:.2f}")
        ax.set_xlabel("judge score (cosine)")
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "bench" / "data" / "paraphrase_pairs.jsonl"))
    ap.add_argument("--judge", default="all-MiniLM-L6-v2", help="sentence-embedding judge")
    ap.add_argument("--cross-encoder", metavar="MODEL", default=None,
                    help="score with this HF cross-encoder instead (memlab judge_kind "
                         "cross-encoder); must be available offline")
    ap.add_argument("--high", type=float, default=0.99, help="upper end of the window")
    ap.add_argument("--max-fpr", type=float, default=0.05,
                    help="suggested threshold: smallest t with same-topic FPR <= this")
    ap.add_argument("--out", default=None, help="default bench/results/judge_calibration.json")
    ap.add_argument("--no-generator", action="store_true",
                    help="skip the supplementary same-template pairs of memlab's generator")
    args = ap.parse_args()

    from memlab.scoring.plagiarism.judge import Judge

    stem = "judge_calibration"
    if args.cross_encoder:
        stem += "_" + re.sub(r"[^A-Za-z0-9]+", "_", Path(args.cross_encoder).name).strip("_")
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"{stem}.json"
    png = out.with_suffix(".png")

    rows = [json.loads(line) for line in open(args.data) if line.strip()]
    for i, r in enumerate(rows):
        assert r["label"] in ("paraphrase", "same_topic"), (i, r["label"])
        assert r["kind"] in (PARA_KINDS if r["label"] == "paraphrase" else TOPIC_KINDS), (i, r)
    label = np.array([r["label"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    genre = np.array([r["genre"] for r in rows])

    if args.cross_encoder:
        judge = Judge(args.cross_encoder, "cross-encoder")
    else:
        judge = Judge(args.judge, "embedding")  # memlab's own judge: normalised embeddings
    cos = np.array(judge.scores([(r["a"], r["b"]) for r in rows]), dtype=np.float64)
    ents = [entity_checks(r["a"], r["b"]) for r in rows]
    para, topic = label == "paraphrase", label == "same_topic"
    # same-skeleton pairs whose differing facts are all lower-case words (a drug, a symptom, a
    # material): the entity check cannot see them; the others differ in a name or a number
    shared = np.array([e["contained"] for e in ents])
    skel = kind == "same_skeleton"
    groups = {"same_skeleton_entities_differ": skel & ~shared,
              "same_skeleton_entities_shared": skel & shared}

    # distributions per label and per kind
    dist = {lab: distribution(cos[label == lab]) for lab in ("paraphrase", "same_topic")}
    for k in PARA_KINDS + TOPIC_KINDS:
        dist[k] = distribution(cos[kind == k])
    for name, m in groups.items():
        dist[name] = distribution(cos[m])
    aucs = {"paraphrase_vs_same_topic": auc(cos[para], cos[topic])}
    for k in TOPIC_KINDS:
        aucs[f"paraphrase_vs_{k}"] = auc(cos[para], cos[kind == k])
    for k in PARA_KINDS:
        aucs[f"{k}_vs_same_skeleton"] = auc(cos[kind == k], cos[kind == "same_skeleton"])

    # the cosine window alone
    table = sweep(cos, label, kind, args.high, groups=groups)
    sug, youden = pick(table, args.max_fpr)
    default = at(table, 0.50)
    above_high = int((cos[para] > args.high).sum())

    # the cosine window AND the entity check
    ent_tables, ent_alone = {}, {}
    for v in ("equal", "contained", "overlap"):
        ok = np.array([e[v] for e in ents])
        ent_tables[v] = sweep(cos, label, kind, args.high, ok, groups)
        ent_alone[v] = {
            "pass_paraphrase": round(share(ok[para]), 4),
            "pass_same_topic": round(share(ok[topic]), 4),
            **{f"pass_{k}": round(share(ok[kind == k]), 4) for k in PARA_KINDS + TOPIC_KINDS},
            **{f"pass_{k}": round(share(ok[m]), 4) for k, m in groups.items()},
        }
    ent_pick = {v: pick(tab, args.max_fpr) for v, tab in ent_tables.items()}

    # per genre, at the default 0.5 and at the suggested threshold
    t_sug = sug["t"] if sug else None
    per_genre = {}
    for g in dict.fromkeys(genre):
        m = genre == g
        med = lambda sel: round(float(np.median(cos[sel])), 4)  # noqa: E731
        row = {"n": int(m.sum()), "paraphrase_median": med(m & para),
               "same_skeleton_median": med(m & (kind == "same_skeleton")),
               "related_median": med(m & (kind == "related"))}
        for name, t in (("0.50", 0.50), ("suggested", t_sug)):
            if t is None:
                continue
            hit = (cos >= t) & (cos <= args.high)
            row[f"recall_at_{name}"] = round(share(hit[m & para]), 4)
            row[f"fpr_at_{name}"] = round(share(hit[m & topic]), 4)
        per_genre[g] = row

    # the hardest pairs, for a reader to look at
    order = np.argsort(cos)
    lowest_para = [i for i in order if para[i]][:12]
    highest_topic = [i for i in order[::-1] if topic[i]][:12]
    show = lambda i: {"line": int(i) + 1, "cos": round(float(cos[i]), 4), "kind": kind[i],  # noqa: E731
                      "genre": genre[i], "a": rows[i]["a"], "b": rows[i]["b"],
                      "entity_equal": ents[i]["equal"]}
    pairs = [{"line": i + 1, "label": label[i], "kind": kind[i], "genre": genre[i],
              "cos": round(float(cos[i]), 4), **{f"ent_{k}": v for k, v in ents[i].items()}}
             for i in range(len(rows))]

    judge_name = args.cross_encoder or args.judge
    headline = {
        "judge": judge_name,
        "judge_kind": "cross-encoder" if args.cross_encoder else "embedding",
        "n_paraphrase": int(para.sum()),
        "n_same_topic": int(topic.sum()),
        "n_same_skeleton": int((kind == "same_skeleton").sum()),
        "n_related": int((kind == "related").sum()),
        "n_same_skeleton_entities_shared": int(groups["same_skeleton_entities_shared"].sum()),
        "auc": round(aucs["paraphrase_vs_same_topic"], 4),
        "auc_vs_same_skeleton": round(aucs["paraphrase_vs_same_skeleton"], 4),
        "auc_vs_related": round(aucs["paraphrase_vs_related"], 4),
        "paraphrase_median": dist["paraphrase"]["p50"],
        "same_skeleton_median": dist["same_skeleton"]["p50"],
        "related_median": dist["related"]["p50"],
        "n_paraphrase_above_high": above_high,
        "recall_at_0.50": default["recall"],
        "fpr_same_topic_at_0.50": default["fpr_same_topic"],
        "fpr_same_skeleton_at_0.50": default["fpr_same_skeleton"],
        "fpr_related_at_0.50": default["fpr_related"],
        "max_fpr": args.max_fpr,
        "suggested_low": t_sug,
        "recall_at_suggested": sug["recall"] if sug else None,
        "fpr_same_topic_at_suggested": sug["fpr_same_topic"] if sug else None,
        "fpr_same_skeleton_at_suggested": sug["fpr_same_skeleton"] if sug else None,
        "fpr_related_at_suggested": sug["fpr_related"] if sug else None,
        "youden_low": youden["t"],
        "recall_at_youden": youden["recall"],
        "fpr_same_topic_at_youden": youden["fpr_same_topic"],
        "fpr_same_skeleton_at_youden": youden["fpr_same_skeleton"],
    }
    for v in ("equal", "contained"):
        s, y = ent_pick[v]
        headline[f"entity_{v}_pass_paraphrase"] = ent_alone[v]["pass_paraphrase"]
        headline[f"entity_{v}_pass_same_skeleton"] = ent_alone[v]["pass_same_skeleton"]
        headline[f"entity_{v}_suggested_low"] = s["t"] if s else None
        headline[f"entity_{v}_recall_at_suggested"] = s["recall"] if s else None
        headline[f"entity_{v}_fpr_same_topic_at_suggested"] = s["fpr_same_topic"] if s else None
        headline[f"entity_{v}_fpr_same_skeleton_at_suggested"] = \
            s["fpr_same_skeleton"] if s else None
        headline[f"entity_{v}_fpr_related_at_suggested"] = s["fpr_related"] if s else None
        if t_sug is not None:
            r = at(ent_tables[v], t_sug)
            headline[f"entity_{v}_recall_at_cosine_suggested"] = r["recall"]
            headline[f"entity_{v}_fpr_same_topic_at_cosine_suggested"] = r["fpr_same_topic"]

    gen = None
    if not args.no_generator:
        gen = generator_check(judge, args.high)
        g50 = at(gen["thresholds"], 0.50)
        headline["generator_n_pairs"] = gen["n"]
        headline["generator_fpr_at_0.50"] = g50["fpr"]
        headline["generator_fpr_with_entity_contained_at_0.50"] = g50["fpr_with_entity_contained"]
        if t_sug is not None:
            headline["generator_fpr_at_suggested"] = at(gen["thresholds"], t_sug)["fpr"]
        s = ent_pick["contained"][0]
        if s is not None:
            headline["generator_fpr_with_entity_contained_at_its_suggested"] = \
                at(gen["thresholds"], s["t"])["fpr_with_entity_contained"]

    # console tables
    print(f"judge {judge_name}: {len(rows)} pairs from {args.data}")
    print(f"{'':30s}" + "".join(f"{k:>7s}" for k in ("n", "min", *QUANTILES, "max")))
    for k, d in dist.items():
        print(f"{k:30s}{d['n']:7d}" + "".join(f"{d[q]:7.3f}" for q in ("min", *QUANTILES, "max")))
    print("\ncosine window [t, high] alone, and AND-ed with the entity check (equal / contained)")
    print("   t | recall fpr_all fpr_skel fpr_rel | eq:recall fpr_all | ct:recall fpr_all "
          "fpr_skel fpr_rel fpr_skel_shared")
    for r in table[::5] + ([sug] if sug and sug not in table[::5] else []):
        e, c = at(ent_tables["equal"], r["t"]), at(ent_tables["contained"], r["t"])
        print(f"{r['t']:.2f} | {r['recall']:6.3f} {r['fpr_same_topic']:7.3f} "
              f"{r['fpr_same_skeleton']:8.3f} {r['fpr_related']:7.3f} | {e['recall']:9.3f} "
              f"{e['fpr_same_topic']:7.3f} | {c['recall']:9.3f} {c['fpr_same_topic']:7.3f} "
              f"{c['fpr_same_skeleton']:8.3f} {c['fpr_related']:7.3f} "
              f"{c['fpr_same_skeleton_entities_shared']:15.3f}")
    if gen:
        print(f"\nmemlab generator, same template / fresh slot values: {gen['n']} pairs, "
              f"entity check passes {gen['entity_contained_pass']:.3f} (contained)")
        for r in gen["thresholds"][::5]:
            print(f"  t={r['t']:.2f}  fpr {r['fpr']:.3f}  fpr+entity_contained "
                  f"{r['fpr_with_entity_contained']:.3f}")
    print()

    lines = {"memlab default low": 0.50}
    if t_sug is not None:
        lines[f"FPR<={args.max_fpr:.0%} low"] = t_sug
    if ent_pick["contained"][0] is not None:
        lines[f"FPR<={args.max_fpr:.0%} low, + entity check"] = ent_pick["contained"][0]["t"]
    lines["high"] = args.high
    plot(cos, label, kind, lines,
         f"Paraphrase judge {judge_name}: hand-written pairs ({int(para.sum())} paraphrase, "
         f"{int(topic.sum())} same-topic)", png)

    write_result(
        out, "judge_calibration.py", headline,
        details={
            "data": str(Path(args.data).resolve().relative_to(ROOT)),
            "window_high": args.high,
            "plot": str(png.resolve().relative_to(ROOT)) if png.resolve().is_relative_to(ROOT)
            else str(png),
            "definitions": {
                "recall": "share of paraphrase pairs with t <= score <= high",
                "fpr": "share of same_topic pairs (or of one kind) with t <= score <= high",
                "suggested_low": f"smallest t in 0.50..0.95 with fpr_same_topic <= {args.max_fpr}",
                "youden_low": "t in 0.50..0.95 maximising recall - fpr_same_topic",
                "entities": "numbers, and capitalised words that are not a sentence's first word",
                "entity_equal": "the two entity sets are equal",
                "entity_contained": "every entity of each side occurs as a token (any case, "
                                    "any position) of the other",
                "entity_overlap": "the entity sets intersect, or both are empty",
            },
            "distribution": dist,
            "auc": {k: round(v, 4) for k, v in aucs.items()},
            "thresholds": table,
            "entity_check_alone": ent_alone,
            "thresholds_with_entity_check": ent_tables,
            "per_genre": per_genre,
            "lowest_paraphrases": [show(i) for i in lowest_para],
            "highest_same_topic": [show(i) for i in highest_topic],
            "pairs": pairs,
            "generator_same_template": gen,
        },
    )


if __name__ == "__main__":
    main()
