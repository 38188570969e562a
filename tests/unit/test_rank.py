"""Sample-and-rank extraction (Carlini et al. 2021; METRICS.md section 7;
memlab/scoring/rank.py): precision at k on planted verbatim texts, deduplication, the
direction of each signal, its settings, and the stages end to end on a tiny model."""

import math

import pandas as pd
import pytest

from memlab.config.schema import StudyConfig
from memlab.scoring.rank import distinct, figures, precision_at, ranked
from tests.conftest import SWEEPS

MEMBER = ("the quick brown fox jumps over the lazy dog near the quiet river bank while "
          "seven old sailors sing loudly about distant golden islands")
OTHER = ("a completely different sentence about mountains and weather that shares no long "
         "run of words with anything the model was trained on at all")


class Index:
    """A stand-in for the plagiarism index: every document is a candidate."""

    def __init__(self, docs):
        self.doc_ids, self.texts = list(docs), list(docs.values())

    def retrieve(self, texts):
        return [list(range(len(self.texts))) for _ in texts]


def _row(i, text, nll, base=2.0, zbytes=100):
    return {"rank_idx": i, "seed": i, "prompt_ids": [0], "gen_ids": [1, 2], "prompt_text": "",
            "gen_text": text, "doc_nll": nll, "doc_tokens": 2, "token_logp": [-nll, -nll],
            "token_z": [0.0, 0.0], "doc_zlib_bytes": zbytes, "base_nll": base}


def test_precision_at_k_counts_the_verbatim_among_the_k_highest():
    score = [0.9, 0.1, 0.8, math.nan, 0.7, 0.2]
    verbatim = [True, False, True, True, False, False]
    assert precision_at(score, verbatim, 1) == 100.0
    assert precision_at(score, verbatim, 2) == 100.0
    assert precision_at(score, verbatim, 3) == pytest.approx(200 / 3)
    assert precision_at(score, verbatim, 5) == 40.0  # the NaN ranks last
    assert precision_at(score, verbatim, 100) == 50.0  # fewer than k: all of them
    assert math.isnan(precision_at([], [], 10))


def test_duplicates_and_empty_generations_are_dropped_the_first_draw_kept():
    rows = pd.DataFrame([_row(2, "a  b ", 1.0), _row(0, "a b", 2.0), _row(1, "   ", 1.0),
                         _row(3, "c", 1.0)])
    kept = distinct(rows, "whitespace")
    assert kept.rank_idx.tolist() == [0, 3] and kept.copies.tolist() == [2, 1]
    assert distinct(rows, "exact").rank_idx.tolist() == [0, 2, 3]


def _planted(cfg):
    """Generations of which the planted member copies have the lowest loss (and the lowest
    loss relative to the base model, and per zlib byte), the others not; one copy twice."""
    rows = [_row(0, MEMBER, 0.5, base=3.0), _row(1, OTHER, 3.0), _row(2, MEMBER[:90], 0.6,
            base=3.0), _row(3, OTHER + " indeed", 2.5), _row(4, MEMBER, 0.4, base=3.0),
            _row(5, "short words only here", 2.8), _row(6, OTHER[:60], 0.55, base=0.5)]
    return ranked(pd.DataFrame(rows), cfg, Index({"m1": MEMBER + " and more text"}))


def test_planted_verbatim_texts_rank_first_and_precision_is_exact():
    cfg = StudyConfig()
    cfg.score.rank.at = [1, 2, 3, 6]
    cfg.score.rank.signals = ["loss", "ref", "zlib"]
    rows = _planted(cfg)
    assert len(rows) == 6  # the second copy of MEMBER dropped
    assert rows.set_index("rank_idx").verbatim.to_dict() == {
        0: True, 1: False, 2: True, 3: False, 5: False, 6: False}
    assert rows.loc[rows.verbatim, "source_doc_id"].tolist() == ["m1", "m1"]
    got = figures(rows, drawn=7, cfg=cfg)
    assert got["rank_samples"] == 7 and got["rank_unique"] == 6
    assert got["rank_verbatim_pct"] == pytest.approx(100 * 2 / 6)
    # loss: 0.5 (member), 0.55 (a non-member text the model finds easy), 0.6 (member), ...
    assert [got[f"rank_precision_at_{k}_loss"] for k in (1, 2, 3, 6)] == pytest.approx(
        [100, 50, 200 / 3, 200 / 6])
    # ref (loss / base loss): the easy non-member text is easy for the base model too
    assert [got[f"rank_precision_at_{k}_ref"] for k in (1, 2, 3)] == pytest.approx(
        [100, 100, 200 / 3])
    assert got["rank_precision_at_2"] == got["rank_precision_at_2_zlib"]  # the headline
    # higher = more likely memorised: the lowest loss is first
    assert rows.sort_values("rank_loss").rank_idx.tolist()[:3] == [0, 6, 2]
    assert (rows.rank_ref.to_numpy() >= 1).all() and sorted(rows.rank_ref) == list(range(1, 7))


def test_a_verbatim_match_needs_a_run_longer_than_verbatim_chars():
    cfg = StudyConfig()
    cfg.score.plagiarism.verbatim_chars = 200  # longer than any planted copy
    assert not _planted(cfg).verbatim.any()


def _keys(*sets, study="quickstart.yaml"):
    from memlab.config.expand import load_study

    return [t.keys for t in load_study(SWEEPS / study, list(sets)).trials]


@pytest.mark.parametrize("study", ["quickstart.yaml", "smoke.yaml"])
def test_keys_are_unchanged_while_it_is_off(study):
    plain = _keys(study=study)
    assert _keys("score.rank.at=[5]", "score.rank.headline=ref", "attack.rank.prompt_tokens=0",
                 study=study) == plain
    on = _keys("attack.rank.samples=20", study=study)
    assert [k.train for k in on] == [k.train for k in plain]
    assert all(a.gen != b.gen and a.score != b.score for a, b in zip(on, plain))
    assert [k.base for k in on] == [k.base for k in plain]
    assert all("rank" not in k.named() and "rank_key" not in k.tags() for k in plain)
    scored = _keys("attack.rank.samples=20", "score.rank.at=[5]", study=study)
    assert [(k.gen, k.named()["rank"]) for k in scored] == \
        [(k.gen, k.named()["rank"]) for k in on]  # rescoring only
    assert all(a.score != b.score for a, b in zip(scored, on))


def test_an_evaluation_point_has_its_own_rank_stage():
    from memlab.config.keys import checkpoint_keys

    (keys, *_) = _keys("attack.rank.samples=20")
    at3 = checkpoint_keys(keys, 3)
    assert at3.named()["rank"] != keys.named()["rank"] and at3.base == keys.base
    assert checkpoint_keys(_keys()[0], 3).named().keys() == _keys()[0].named().keys()


@pytest.mark.parametrize("sets", [[], ["attack.rank.samples=20"]])
def test_an_evaluation_points_context_has_the_stages_the_trial_has(sets):
    """TrialContext.at (what the runner asks for each evaluation point): its own folders for
    the per-checkpoint stages the trial has, none for an opt-in stage it lacks (review: a
    trial with points but without sample-and-rank stopped on its missing rank key)."""
    from memlab.config.expand import load_study
    from memlab.stages.work import TrialContext

    t = load_study(SWEEPS / "quickstart.yaml", ["train.eval_at=[0.5, 1.0]", *sets]).trials[0]
    ctx = TrialContext.of(t.config, t.keys)
    at = ctx.at(3)
    assert at.dir("gen") != ctx.dir("gen") and at.dir("score") != ctx.dir("score")
    assert ("rank" in at.dirs) == bool(sets) and ("rank" in at.keys) == bool(sets)
    if sets:
        assert at.dir("rank") != ctx.dir("rank") and at.dir("base") == ctx.dir("base")


def test_the_empty_prompt_is_the_document_separator_where_there_is_one():
    """SmolLM2-Instruct's BOS is a chat turn's opener (<|im_start|>): the empty prompt is the
    <|endoftext|> separator where the vocabulary has it, else BOS, else EOS."""
    from memlab.stages.generate import empty_prompt

    class Tok:
        def __init__(self, vocab, bos, eos):
            self.vocab, self.bos_token_id, self.eos_token_id = vocab, bos, eos

        def get_vocab(self):
            return self.vocab

        def convert_tokens_to_ids(self, t):
            return self.vocab[t]

    assert empty_prompt(Tok({"<|endoftext|>": 0, "<|im_start|>": 1}, 1, 2)) == 0
    assert empty_prompt(Tok({"<s>": 1}, 1, 2)) == 1
    assert empty_prompt(Tok({"</s>": 2}, None, 2)) == 2
    with pytest.raises(RuntimeError, match="empty prompt"):
        empty_prompt(Tok({}, None, None))


@pytest.mark.parametrize("sets,expect", [
    (["attack.rank.samples=-1"], "attack.rank.samples: must be >= 0"),
    (["attack.rank.prompt_tokens=-2"], "attack.rank.prompt_tokens: must be >= 0"),
    (["score.rank.at=[0]"], "score.rank.at: each item must be >= 1"),
    (["attack.rank.samples=5", "score.rank.signals=[loss, perplexity]"],
     "score.rank.signals: unknown perplexity"),
    (["attack.rank.samples=5", "score.rank.headline=ref", "score.rank.signals=[loss]"],
     "score.rank.headline: 'ref' must be one of score.rank.signals"),
    (["attack.rank.samples=5", "attack.rank.prompt_tokens=4"],
     "attack.rank.prompt_tokens: needs data.num_population > 0"),
    (["score.rank.dedupe=lower"], "score.rank.dedupe"),
])
def test_settings_are_checked(sets, expect):
    from memlab.config.load import ConfigError

    with pytest.raises(ConfigError) as e:
        _keys(*sets)
    assert any(expect in line for line in e.value.problems), e.value.problems


# ------------------------------------------------------------------ the stages, end to end
def test_a_tiny_model_fine_tuned_on_its_members_gives_them_back_ranked(tmp_path):
    """data -> train (full, overfit) -> generate (with its draws) -> base -> rank -> score
    through memlab's runner: the draws are spread over the shards, the base model's NLL is
    added, the summary has every precision figure and rank.parquet every distinct draw."""
    import pyarrow.parquet as pq

    from memlab.components.data import read_dataset
    from memlab.components.models import prepare_base_model
    from memlab.io.shards import read_shards
    from memlab.scoring.rank import FILE
    from memlab.stages.data import build_dataset
    from memlab.stages.runner import run_stage
    from memlab.stages.work import TrialContext
    from tests.unit.test_calibrated import InProcess, tiny_trial

    cfg = tiny_trial(tmp_path, members=4, population=4, dup=10, epochs=6)
    cfg.attack.temperature = 0.5
    cfg.attack.rank.samples, cfg.attack.rank.prompt_tokens = 24, 2
    cfg.score.plagiarism.verbatim_chars = 20
    cfg.score.membership.bootstrap = 0
    cfg.score.rank.at = [5, 100]
    dirs = {s: tmp_path / s for s in ("data", "train", "gen", "base", "rank", "score")}
    build_dataset(cfg.data, dirs["data"])
    base = prepare_base_model(cfg.model, [r["text"] for r in read_dataset(dirs["data"])])["path"]
    ctx = TrialContext(cfg, dirs, base_model=base, warm=InProcess())
    for s in ("train", "gen", "base", "rank", "score"):
        run_stage(ctx, s)
    sides = sorted(dirs["gen"].glob("rank-*"))
    assert len(sides) == len(list(dirs["data"].glob("part-*.parquet"))) > 1
    draws = read_shards(dirs["rank"]).to_pandas()
    assert sorted(draws.rank_idx) == list(range(24))
    assert draws.base_nll.notna().all() and draws.doc_nll.notna().all()
    assert (draws.prompt_ids.map(len) == 2).all()
    rows = pq.read_table(dirs["score"] / FILE).to_pandas()
    assert len(rows) == len(set(rows.gen_text.str.split().str.join(" ")))  # distinct
    summary = pq.read_table(dirs["score"] / "summary.parquet").to_pandas()
    got = {r.metric: r.value for r in summary.itertuples() if r.metric.startswith("rank_")}
    assert got["rank_samples"] == 24 and got["rank_unique"] == len(rows)
    for s in cfg.score.rank.signals:
        assert got[f"rank_precision_at_100_{s}"] == pytest.approx(
            100 * rows.verbatim.mean())  # all of them: the share of verbatim
        assert rows[f"mia_{s}"].notna().all(), s
    assert got["rank_precision_at_5"] == got["rank_precision_at_5_zlib"]
    assert rows.verbatim.any()  # an overfit model gives members back from 2 tokens of text


def test_validate_refuses_a_headline_outside_the_signals_in_one_line(memlab_cmd):
    import subprocess

    from tests.conftest import ROOT

    r = subprocess.run([*memlab_cmd, "validate", str(SWEEPS / "smoke.yaml"), "--set",
                        "attack.rank.samples=10", "--set", "score.rank.signals=[loss]"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "score.rank.headline: 'zlib' must be one of" in lines[0], lines


def test_a_copy_names_its_member_and_equal_runs_the_better_candidate():
    from memlab.scoring.rank import verbatim_matches

    index = Index({"m0": OTHER, "m1": MEMBER, "m2": "an unrelated text " + MEMBER})
    (doc, n), (none, zero) = verbatim_matches([MEMBER[:80], "zzz qqq"], index)
    # (the copy's last word is cut: "seve", not "seven"; m2 holds the same run, ranked after)
    assert (doc, n) == ("m1", len("the quick brown fox jumps over the lazy dog near the "
                                  "quiet river bank while"))
    assert (none, zero) == (None, 0)
    assert verbatim_matches([], index) == []


def test_plan_counts_the_draws_among_the_generated_tokens():
    from memlab.sweep.plan import gen_tokens

    cfg = StudyConfig()
    before = gen_tokens(cfg)
    cfg.attack.rank.samples = 1000
    assert gen_tokens(cfg) == before + 1000 * cfg.attack.max_new_tokens
