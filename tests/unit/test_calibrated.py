"""Known answers of the calibrated membership signals (METRICS.md section 7: RMIA, ReCaLL,
DC-PDD; memlab/scoring/calibrated.py), the population split they read, and their settings."""

import contextlib
import math

import numpy as np
import pytest
import torch

from memlab.scoring.calibrated import (
    dcpdd_score,
    log_frequencies,
    log_ratio,
    recall_score,
    rmia_scores,
)
from memlab.scoring.membership import roc_metrics
from tests.conftest import SWEEPS


# ------------------------------------------------------------------ RMIA
def test_rmia_equals_a_direct_pairwise_count():
    """Each x against each z, in probability space, as the paper writes it:
    [p(x|t) / p(x|r)] / [p(z|t) / p(z|r)] > gamma, counted by hand."""
    x_t, x_b = [1.0, 2.0, 0.5, 3.0], [2.0, 2.1, 0.4, 2.0]  # mean NLLs: target, base
    z_t, z_b = [1.5, 2.5, 0.9, 1.2, 3.3], [1.6, 2.2, 1.4, 1.0, 3.0]
    # log LR = base - target: x -> 1.0, 0.1, -0.1, -1.0; z -> 0.1, -0.3, 0.5, -0.2, -0.3
    # gamma 1: z below 1.0: all 5; below 0.1: -0.3, -0.2, -0.3 (0.1 itself is no win);
    # below -0.1: -0.3, -0.2, -0.3; below -1.0: none
    got = rmia_scores(log_ratio(x_t, x_b), log_ratio(z_t, z_b), 1.0)
    assert got.tolist() == pytest.approx([5 / 5, 3 / 5, 3 / 5, 0 / 5])
    for gamma in (1.0, 1.3, 0.7):
        for a in (1.0, 0.6):
            def lr(t, b, a=a):
                p_t, p_b = math.exp(-t), math.exp(-b)
                return p_t / (((1 + a) * p_b + (1 - a)) / 2)

            hand = [sum(lr(t, b) / lr(zt, zb) > gamma for zt, zb in zip(z_t, z_b)) / len(z_t)
                    for t, b in zip(x_t, x_b)]
            got = rmia_scores(log_ratio(x_t, x_b, a), log_ratio(z_t, z_b, a), gamma)
            assert got.tolist() == pytest.approx(hand), (gamma, a)


def _toy(seed=0, n1=200, n0=200, npop=300):
    """Mean NLLs of a toy fine-tuning: every document has a difficulty d (the base model's
    NLL, spread widely); the fine-tuned model lowers the NLL of everything a little and of
    members by more. The loss alone is buried under the spread of difficulty; the ratio to
    the base model is not."""
    rng = np.random.default_rng(seed)

    def docs(n, gain):
        base = rng.uniform(1.5, 4.5, n)
        return base - 0.1 - gain - rng.normal(0, 0.05, n), base

    return docs(n1, 0.3), docs(n0, 0.0), docs(npop, 0.0)


def test_rmia_finds_the_members_of_a_toy_fine_tuning_where_the_loss_does_not():
    (mt, mb), (nt, nb), (pt, pb) = _toy()
    pop = log_ratio(pt, pb)
    rmia = roc_metrics(rmia_scores(log_ratio(mt, mb), pop, 1.0),
                       rmia_scores(log_ratio(nt, nb), pop, 1.0), "rmia", resamples=200)
    loss = roc_metrics(-mt, -nt, "loss", resamples=0)
    assert rmia["auc_rmia"] > 0.97 and loss["auc_loss"] < 0.75, (rmia, loss)
    assert rmia["tpr1_rmia"] > 50  # the members above every non-member but 1%
    assert rmia["auc_rmia_lo"] <= rmia["auc_rmia"] <= rmia["auc_rmia_hi"]


# ------------------------------------------------------------------ ReCaLL
def test_recall_is_the_ratio_of_log_likelihoods_and_finds_members():
    assert recall_score(0.9, 0.6) == pytest.approx((-0.9) / (-0.6))  # LL(x|P) / LL(x)
    assert math.isnan(recall_score(None, 0.6))  # no prefixed pass (ReCaLL off)
    # members: the non-member prefix costs them more of their likelihood than non-members
    rng = np.random.default_rng(1)
    m_nll, n_nll = rng.uniform(1, 3, 100), rng.uniform(1, 3, 100)
    m = [recall_score(x * rng.normal(1.15, 0.03), x) for x in m_nll]
    n = [recall_score(x * rng.normal(1.0, 0.03), x) for x in n_nll]
    assert roc_metrics(m, n, "recall", resamples=0)["auc_recall"] > 0.99


def test_recall_pass_equals_a_direct_forward_over_prefix_and_document(tmp_path):
    """The prefixed NLL scores the document's tokens after its first, read after the prefix;
    the prefix itself is not scored."""
    from memlab.config.schema import StudyConfig
    from memlab.stages.generate import recall_rows, windows
    from tests.unit.test_engine import tiny_lm

    docs, model, tok = tiny_lm(tmp_path, 12, seed=2)
    cfg = StudyConfig()
    cfg.train.seq_len, cfg.attack.batch_size = 24, 3
    rows = [{"doc_id": d["doc_id"], "text": d["text"], "split": "member", "dup_count": 1}
            for d in docs[:5]]
    shots = [{"doc_id": d["doc_id"], "text": d["text"], "split": "population",
              "dup_count": 0} for d in docs[5:8]]
    got = recall_rows(model, tok, rows, shots, cfg)
    prefix = [t for w in windows(tok, shots, cfg) for t in w]
    assert len(prefix) == 3 * 24
    for r, w in zip(got, windows(tok, rows, cfg)):
        ids = torch.tensor([prefix + w])
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
        targets = ids[0, 1:]
        per = -lp.gather(-1, targets[:, None])[:, 0]
        want = per[len(prefix):].mean().item()  # tokens 2.. of the document
        assert r["prefixed_nll"] == pytest.approx(want, rel=1e-4)


# ------------------------------------------------------------------ DC-PDD
def test_dcpdd_on_a_hand_made_window():
    log_f = np.log(np.array([0.5, 0.25, 0.125, 0.0625, 0.0625]))
    ids = [4, 1, 2, 1, 3, 2]  # token 4 has no probability (the first); 1 and 2 repeat
    logp = np.log([0.5, 0.2, 0.9, 0.1, 0.4]).tolist()  # of tokens 1, 2, 1, 3, 2
    # first occurrences: 1 (p .5), 2 (p .2), 3 (p .1): alpha = p log(1/f)
    alpha = [0.5 * math.log(4), 0.2 * math.log(8), 0.1 * math.log(16)]
    assert dcpdd_score(ids, logp, log_f, cap=10.0) == pytest.approx(np.mean(alpha))
    assert dcpdd_score(ids, logp, log_f, cap=0.3) == pytest.approx(
        np.mean([min(a, 0.3) for a in alpha]))
    assert dcpdd_score(ids[:3], logp, log_f, cap=10.0) == pytest.approx(np.mean(alpha[:2]))
    assert math.isnan(dcpdd_score(ids[:1], logp, log_f, cap=1.0))


def test_dcpdd_frequencies_and_toy_members():
    freq = {"base": np.array([2.0, 1.0, 1.0, 0.0]), "positions": 4,
            "counts": np.array([3, 0, 1, 0])}
    assert np.exp(log_frequencies(freq, "base"))[:3] == pytest.approx([0.5, 0.25, 0.25])
    assert np.isfinite(log_frequencies(freq, "base")).all()  # (a token never predicted)
    assert np.exp(log_frequencies(freq, "counts")) == pytest.approx(
        np.array([4, 1, 2, 1]) / (4 + 4))  # Laplace
    # members: the fine-tuned model gives their rare tokens more probability
    rng = np.random.default_rng(3)
    vocab = 200
    log_f = np.log(rng.dirichlet(np.ones(vocab)))

    def doc(boost):
        ids = rng.integers(0, vocab, 40).tolist()
        p = np.clip(rng.beta(1, 30, 39) * boost, 1e-6, 1)
        return dcpdd_score(ids, np.log(p).tolist(), log_f, cap=1.0)
    m, n = [doc(2.0) for _ in range(80)], [doc(1.0) for _ in range(80)]
    assert roc_metrics(m, n, "dcpdd", resamples=0)["auc_dcpdd"] > 0.9


def test_mean_next_token_equals_the_softmax_averaged_by_hand(tmp_path):
    from memlab.components.passes import mean_next_token
    from tests.unit.test_engine import tiny_lm

    docs, model, tok = tiny_lm(tmp_path, 6, seed=4)
    lists = [tok(d["text"], add_special_tokens=False)["input_ids"][:n]
             for d, n in zip(docs[:3], (9, 14, 5))]
    mass, positions = mean_next_token(model, tok, lists, batch_size=2)
    assert positions == 8 + 13 + 4
    want = np.zeros_like(mass)
    for ids in lists:
        with torch.no_grad():
            want += torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].double(),
                                  -1).sum(0).numpy()
    assert mass == pytest.approx(want, abs=1e-5)
    assert mass.sum() == pytest.approx(positions)


# ------------------------------------------------------------------ data, keys, settings
def test_the_population_split_is_disjoint_and_leaves_members_and_non_members_as_they_were():
    from memlab.components.data import select
    from memlab.config.schema import DataSection

    docs = [{"doc_id": f"d{i}", "text": f"t{i}"} for i in range(60)]
    plain = select(docs, DataSection(num_members=10, num_nonmembers=8))
    more = select(docs, DataSection(num_members=10, num_nonmembers=8, num_population=12))
    assert more[:18] == plain
    pop = [r for r in more if r["split"] == "population"]
    assert len(pop) == 12 and all(r["dup_count"] == 0 for r in pop)
    assert not {r["doc_id"] for r in pop} & {r["doc_id"] for r in plain}


def _keys(*sets):
    from memlab.config.expand import load_study

    return [t.keys for t in load_study(SWEEPS / "quickstart.yaml", list(sets)).trials]


def test_keys_are_unchanged_while_the_signals_are_off():
    plain = _keys()
    # settings of signals that are off, and a population of 0, are in no key
    assert _keys("score.membership.rmia.gamma=2", "score.membership.recall.shots=2",
                 "score.membership.dcpdd.cap=0.5", "data.num_population=0") == plain
    pop = _keys("data.num_population=8")  # a new split: a new dataset (and all after it)
    assert all(a.data != b.data for a, b in zip(pop, plain))
    rmia = _keys("data.num_population=8", "score.membership.rmia.enabled=true")
    assert [(k.gen, k.base) for k in rmia] == [(k.gen, k.base) for k in pop]
    assert all(a.score != b.score for a, b in zip(rmia, pop))  # rescoring only
    recall = _keys("data.num_population=8", "score.membership.recall.enabled=true")
    assert all(a.gen != b.gen for a, b in zip(recall, pop))  # its pass is the generate stage's
    assert [k.train for k in recall] == [k.train for k in pop]


@pytest.mark.parametrize("sets,expect", [
    (["score.membership.rmia.gamma=0"], "score.membership.rmia.gamma: must be > 0"),
    (["score.membership.rmia.offline_a=1.5"], "score.membership.rmia.offline_a: must be in"),
    (["score.membership.recall.shots=0"], "score.membership.recall.shots: must be >= 1"),
    (["score.membership.dcpdd.cap=0"], "score.membership.dcpdd.cap: must be > 0"),
    (["score.membership.dcpdd.frequency=corpus"], "score.membership.dcpdd.frequency"),
    (["data.num_population=-1"], "data.num_population: must be >= 0"),
    (["score.membership.rmia.enabled=true"], "needs data.num_population >= 1"),
    (["data.num_population=2", "score.membership.recall.enabled=true"],
     "needs data.num_population >= 4"),
    (["data.num_population=4", "score.membership.dcpdd.enabled=true",
      "score.membership.base_pass=false"], "needs score.membership.base_pass"),
    (["data.num_population=4", "score.membership.rmia.enabled=true",
      "score.membership.enabled=false"], "needs score.membership.enabled"),
    (["data.num_population=2400"], "data.num_docs: the demo corpus needs at least"),
])
def test_settings_are_checked(sets, expect):
    from memlab.config.load import ConfigError

    with pytest.raises(ConfigError) as e:
        _keys(*sets)
    assert any(expect in line for line in e.value.problems), e.value.problems


def test_opt_in_signals_add_columns_only_when_on():
    from memlab.config.schema import ScoreSection
    from memlab.scoring import suite

    sec = ScoreSection()
    before = [c.name for c in suite.columns(sec)]
    assert not any(n in before for n in ("mia_rmia", "mia_recall", "mia_dcpdd"))
    sec.membership.recall.enabled = sec.membership.dcpdd.enabled = True
    assert [c.name for c in suite.columns(sec)] == before + ["mia_recall", "mia_dcpdd"]


# ------------------------------------------------------------------ the stages, end to end
class InProcess:
    """A stand-in for the warm pool: a shard stage's jobs in this process, one by one."""

    def map(self, stage, args, jobs, nodes):
        from memlab.stages.work import work_of

        shards = work_of(stage).shards
        state = shards.load(args)
        return sum(shards.run(state, contextlib.nullcontext(), args, str(s), str(d))
                   for s, d in jobs)


def tiny_trial(tmp_path, members: int, population: int, dup: int, epochs: int):
    """A trial of the tiny model fine-tuned in full on few members of the demo corpus (each
    `dup` times, `epochs` passes), 12 non-members, attacked with 16-token prompts; plagiarism
    typing and utility off."""
    from memlab.config.schema import StudyConfig

    cfg = StudyConfig()
    d = cfg.data
    d.num_docs, d.num_members, d.num_nonmembers, d.num_population = 80, members, 12, population
    d.dup_mix = [dup]
    cfg.model.source, cfg.model.cache_dir = "tiny", str(tmp_path / "cache")
    cfg.train.strategy, cfg.train.seq_len, cfg.train.batch_size = "full", 32, 4
    cfg.train.full.lr, cfg.train.epochs = 3e-3, epochs
    cfg.attack.prefix_tokens = cfg.attack.suffix_tokens = cfg.attack.max_new_tokens = 16
    cfg.score.plagiarism.enabled, cfg.score.utility = False, False
    return cfg


def test_a_tiny_model_fine_tuned_on_its_members_is_caught_by_every_new_signal(tmp_path):
    """data (with a population) -> train (full, overfit) -> generate -> base -> score through
    memlab's runner: the side files are made, every new column is filled, and each signal
    separates the members from the non-members."""
    import pyarrow.parquet as pq

    from memlab.components.data import read_dataset
    from memlab.components.models import prepare_base_model
    from memlab.io.shards import read_manifest, read_shards
    from memlab.stages.data import build_dataset
    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext

    cfg = tiny_trial(tmp_path, members=12, population=8, dup=6, epochs=2)
    m = cfg.score.membership
    m.bootstrap = 0
    m.rmia.enabled = m.recall.enabled = m.dcpdd.enabled = True
    m.recall.shots = 2
    dirs = {s: tmp_path / s for s in ("data", "train", "gen", "base", "score")}
    assert build_dataset(cfg.data, dirs["data"])["population"] == 8
    rows = read_dataset(dirs["data"])
    base = prepare_base_model(cfg.model, [r["text"] for r in rows])["path"]
    ctx = TrialContext(cfg, dirs, base_model=base, warm=InProcess())
    for s in ("train", "gen", "base", "score"):
        run_stage(ctx, s)
    assert sorted(p.name for p in dirs["gen"].glob("population-*")) == ["population-part-00001"
                                                                       ".parquet"]
    assert len(list(dirs["gen"].glob("recall-*"))) == 1
    assert read_manifest(dirs["base"])["freq_sha256"]
    scores = read_shards(dirs["score"]).to_pandas()
    assert set(scores.split) == {"member", "nonmember"}  # the population is never scored
    summary = pq.read_table(dirs["score"] / "summary.parquet").to_pandas()
    auc = {r.metric: r.value for r in summary.itertuples()
           if r.split == "member" and r.dup_count == -1 and r.metric.startswith("auc_")}
    for s in ("rmia", "recall", "dcpdd"):
        assert scores[f"mia_{s}"].notna().all(), s
        assert auc[f"auc_{s}"] > 0.7, auc
    # a lost frequency file: scoring refuses to go on without it (no silent NaN column), and
    # a rerun of the base stage makes it again
    from memlab.stages import score as score_stage

    (freq,) = dirs["base"].glob("freq-*.npz")
    freq.unlink()
    with pytest.raises(RuntimeError, match="score.membership.dcpdd: the base stage"):
        score_stage._args(ctx)
    run_stage(ctx, "base")
    assert freq.is_file()
    assert score_stage._args(ctx)["calibration"]["token_freq"]
