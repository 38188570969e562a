"""Known answers of the membership, canary and utility metrics (METRICS.md sections 4 and 5)."""

import math
import zlib

import numpy as np
import pytest
import torch

from memlab.engine.engine import token_stats
from memlab.scoring.membership import min_k, roc_metrics, signals
from tests.unit.test_engine import llama, tiny_lm


def _scores(seed=0, n1=120, n0=1000):
    """Member and non-member scores with many ties (rounded to 1 decimal)."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0.6, 1, n1), 1), np.round(rng.normal(0, 1, n0), 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_tpr_at_fpr_equal_scikit_learn(seed):
    from sklearn.metrics import roc_auc_score, roc_curve

    pos, neg = _scores(seed)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[pos, neg]
    got = roc_metrics(pos, neg, "x", resamples=0)
    assert got["auc_x"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for key, alpha in (("tpr1_x", 0.01), ("tpr01_x", 0.001)):
        want = 100 * tpr[fpr <= alpha].max()
        assert got[key] == pytest.approx(want, abs=1e-12), key
    assert "auc_x_lo" not in got  # no resamples: no interval


def test_a_weighted_resample_equals_scikit_learn_on_the_resample_itself():
    """The bootstrap counts multiplicities over the sorted scores: each resample's AUC and TPRs
    equal sklearn's on the resample written out."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from memlab.scoring.membership import _multiplicities, _weighted_roc

    pos, neg = _scores(4, 50, 400)
    pos, neg = np.sort(pos), np.sort(neg)
    d, c = _multiplicities(len(pos), 5, 9), _multiplicities(len(neg), 5, 10)
    assert (d.sum(1) == 50).all() and (c.sum(1) == 400).all()
    got = _weighted_roc(pos, neg, d, c)
    for b in range(5):
        p, n = np.repeat(pos, d[b]), np.repeat(neg, c[b])
        y, s = np.r_[np.ones(len(p)), np.zeros(len(n))], np.r_[p, n]
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        assert got[0, b] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert got[1, b] == pytest.approx(100 * tpr[fpr <= 0.01].max(), abs=1e-12)
        assert got[2, b] == pytest.approx(100 * tpr[fpr <= 0.001].max(), abs=1e-12)


def test_tpr_at_fpr_on_a_hand_made_case():
    # 10 non-members, 1% FPR allows none above the threshold: members above the top non-member
    pos, neg = np.array([5.0, 4.0, 3.0, 0.5]), np.arange(10) / 2.0  # neg max 4.5
    got = roc_metrics(pos, neg, "h", resamples=0)
    assert got["tpr1_h"] == 25.0  # only 5.0 beats 4.5
    # pairs won: 10, 8 + tie, 6 + tie, 1 + tie (a tie counts 1/2)
    assert got["auc_h"] == pytest.approx((10 + 8.5 + 6.5 + 1.5) / 40)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    pos, neg = _scores(3, 60, 200)
    a = roc_metrics(pos, neg, "x", resamples=400)
    b = roc_metrics(pos, neg, "x", resamples=400)
    assert a == b
    for m in ("auc_x", "tpr1_x", "tpr01_x"):
        assert a[f"{m}_lo"] <= a[m] <= a[f"{m}_hi"]
    assert a["auc_x_hi"] - a["auc_x_lo"] > 0.02  # 60 vs 200 documents: not a point
    assert roc_metrics(pos[:0], neg, "x") == {}  # nothing to compare


def _hand_stats(logits: torch.Tensor, targets: torch.Tensor):
    """log p(target) and (log p(target) - mu) / sigma, position by position in plain Python."""
    lps, zs = [], []
    for row, y in zip(logits.tolist(), targets.tolist()):
        top = max(row)
        norm = top + math.log(sum(math.exp(v - top) for v in row))
        logp = [v - norm for v in row]
        mu = sum(math.exp(lp) * lp for lp in logp)
        var = sum(math.exp(lp) * (lp - mu) ** 2 for lp in logp)
        lps.append(logp[y])
        zs.append((logp[y] - mu) / math.sqrt(var))
    return lps, zs


def test_min_k_and_min_k_plus_plus_equal_a_hand_computation():
    model = llama(seed=5)
    ids = torch.tensor([[11, 40, 7, 300, 52, 52, 90, 18, 200, 33, 64]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1].float()
    lp, z = token_stats(logits, ids[:, 1:])
    hand_lp, hand_z = _hand_stats(logits[0], ids[0, 1:])
    assert lp[0].tolist() == pytest.approx(hand_lp, abs=1e-4)
    assert z[0].tolist() == pytest.approx(hand_z, abs=1e-3)
    # k = 20% of 10 tokens: the mean of the 2 lowest; k = 35%: of the 3 lowest
    for frac, n in ((0.2, 2), (0.35, 3), (0.01, 1)):
        row = {"doc_nll": -sum(hand_lp) / 10, "doc_zlib_bytes": 7, "base_nll": None,
               "token_logp": lp[0].tolist(), "token_z": z[0].tolist()}
        got = signals(row, frac)
        assert got["mink"] == pytest.approx(sum(sorted(hand_lp)[:n]) / n, abs=1e-4)
        assert got["minkpp"] == pytest.approx(sum(sorted(hand_z)[:n]) / n, abs=1e-3)
    assert math.isnan(min_k([], 0.2))


def test_zlib_and_reference_signals_exact():
    text = "The ledger of the Halvorsen account lists 41 entries dated 3 March."
    zbytes = len(zlib.compress(text.encode()))
    row = {"doc_nll": 2.5, "doc_zlib_bytes": zbytes, "base_nll": 3.2,
           "token_logp": [-1.0, -4.0], "token_z": [0.5, -2.0]}
    got = signals(row, 0.2)
    assert got["loss"] == -2.5
    assert got["zlib"] == -2.5 / zbytes
    assert got["ref"] == -2.5 / 3.2
    assert math.isnan(signals({**row, "base_nll": None}, 0.2)["ref"])  # no base pass


def test_generation_rows_carry_the_signals_inputs(tmp_path):
    """doc_zlib_bytes is the zlib length of the scored window's text, token_logp its per-token
    log-probabilities (whose mean is -doc_nll), one sample_id per row."""
    from memlab.config.schema import StudyConfig
    from memlab.stages.generate import generate_rows

    docs, model, tok = tiny_lm(tmp_path, 20, seed=3)
    cfg = StudyConfig()
    a = cfg.attack
    a.prefix_tokens, a.suffix_tokens, a.max_new_tokens, a.samples_per_prompt = 8, 8, 8, 2
    a.decoding = "sample"
    cfg.train.seq_len = 30
    rows = [{"doc_id": d["doc_id"], "text": d["text"], "split": "nonmember", "dup_count": 0}
            for d in docs[:4]]
    out = generate_rows(model, tok, rows, cfg, "part-00000.parquet")
    assert len({r["sample_id"] for r in out}) == len(out) == 8
    for r in out:
        window = tok.decode(tok(rows[[x["doc_id"] for x in rows].index(r["doc_id"])]["text"],
                                add_special_tokens=False)["input_ids"][:30])
        assert r["doc_zlib_bytes"] == len(zlib.compress(window.encode()))
        assert len(r["token_logp"]) == len(r["token_z"]) == 29
        assert -sum(r["token_logp"]) / 29 == pytest.approx(r["doc_nll"])
        assert r["sample_id"] == f"{r['doc_id']}#{r['sample_idx']}"


def test_canary_seen_16_times_is_more_exposed_than_once_and_never(tmp_path):
    """A tiny model fine-tuned (full) on a stream holding canaries 16 times, once, and not at
    all: the rank estimate puts the 16-times canaries far above the others."""
    from memlab.components import canaries as cn
    from memlab.components.data import read_dataset
    from memlab.components.models import load_trained, prepare_base_model
    from memlab.config.schema import StudyConfig
    from memlab.stages.data import build_dataset
    from memlab.stages.generate import canary_exposure
    from tests.conftest import stage

    cfg = StudyConfig()
    d = cfg.data
    d.num_docs, d.num_members, d.num_nonmembers, d.dup_mix = 60, 4, 2, [1]
    d.canaries.count, d.canaries.length, d.canaries.repeats = 2, 6, [1, 16]
    cfg.model.source, cfg.model.cache_dir = "tiny", str(tmp_path / "cache")
    cfg.train.strategy, cfg.train.seq_len, cfg.train.batch_size = "full", 32, 2
    cfg.train.full.lr, cfg.train.epochs = 3e-3, 2
    cfg.attack.canary_alternatives = 255
    data = tmp_path / "data"
    man = build_dataset(d, data)
    rows = read_dataset(data)
    canaries = [r for r in rows if r["split"] == "canary"]
    assert man["canaries"] == 6 and sorted(r["dup_count"] for r in canaries) == [0, 0, 1, 1,
                                                                                 16, 16]
    assert man["train_stream_len"] == 4 + 2 * 16 + 2
    base = prepare_base_model(cfg.model, [r["text"] for r in rows])["path"]
    stage("train", cfg, base=base, data=data, train=tmp_path / "train")
    model, tok = load_trained(tmp_path / "train")
    found = canary_exposure(model, tok, canaries, cfg)
    by = {}
    for f in found:
        assert f["space_bits"] == pytest.approx(6 * math.log2(10))
        assert f["exposure"] == pytest.approx(cn.exposure(f["beaten_by"], 255))
        by.setdefault(f["repeats"], []).append(f["exposure"])
    mean = {r: sum(v) / len(v) for r, v in by.items()}
    assert mean[16] > mean[1] + 1 and mean[16] > mean[0] + 1, mean
    assert mean[16] > 6  # at least 64x more likely than a random secret


def test_rouge_l_bleu_and_flesch_equal_the_libraries():
    import sacrebleu
    import textstat
    from rouge_score import rouge_scorer

    from memlab.scoring.utility import bleu, flesch, rouge_l

    gen = "the patient was given ten milligrams of the drug every morning"
    ref = "the patient was given the drug every morning for ten days"
    # ROUGE-L by hand: LCS "the patient was given the drug every morning" = 8 tokens of
    # 11 (gen) and 11 (ref): P = R = 8/11
    assert rouge_l(gen, ref) == pytest.approx(100 * 8 / 11)
    want = rouge_scorer.RougeScorer(["rougeL"]).score(ref, gen)["rougeL"].fmeasure
    assert rouge_l(gen, ref) == pytest.approx(100 * want)
    assert bleu(gen, ref) == pytest.approx(sacrebleu.sentence_bleu(gen, [ref]).score)
    short = "the patient was given the drug"  # hypothesis and reference kept apart: brevity
    assert bleu(short, ref) == pytest.approx(sacrebleu.sentence_bleu(short, [ref]).score)
    assert bleu(short, ref) < bleu(ref, short)
    assert bleu(ref, ref) == pytest.approx(100.0)
    assert flesch(gen) == textstat.flesch_reading_ease(gen)
    assert math.isnan(flesch("  "))


def test_min_k_plus_plus_is_exact_for_flat_predictions_and_finite_with_masked_logits():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(0, 0.02, (1, 6, 300)), dtype=torch.float32)
    targets = torch.tensor([[3, 40, 7, 299, 0, 150]])
    _, z = token_stats(logits, targets)
    lp = torch.log_softmax(logits.double(), -1)
    p = lp.exp()
    mu = (p * lp).sum(-1)
    sd = (p * (lp - mu[..., None]) ** 2).sum(-1).sqrt()
    want = (lp.gather(-1, targets[..., None]).squeeze(-1) - mu) / sd
    assert z.double().numpy() == pytest.approx(want.numpy(), abs=2e-3)
    masked = logits.clone()
    masked[..., :10] = float("-inf")  # e.g. a vocabulary padded with never-chosen rows
    lp2, z2 = token_stats(masked, targets.clamp(min=10))
    assert torch.isfinite(lp2).all() and torch.isfinite(z2).all()


def test_canary_settings_are_in_no_key_without_canaries():
    from memlab.config.expand import load_study
    from tests.conftest import SWEEPS

    plain = load_study(SWEEPS / "quickstart.yaml").trials[0].keys
    other = load_study(SWEEPS / "quickstart.yaml", ["data.canaries.length=4",
                                                    "attack.canary_alternatives=10"]).trials[0].keys
    assert other == plain  # a study from before canaries keeps its data, models and outputs
