"""Issue 19, acceptance 1: every numeric setting has its range, every name that becomes a path
is a plain name; a bad setting is refused before anything starts, one line naming its key."""

import subprocess
import types
from typing import Union, get_args, get_origin

import pytest

from memlab.config.expand import load_study
from memlab.config.load import ConfigError, flatten, leaf_type, to_dict
from memlab.config.ranges import is_number, rule
from memlab.config.schema import StudyConfig
from tests.conftest import ROOT, SWEEPS

QUICK = SWEEPS / "quickstart.yaml"

BAD = [  # (override, the key the error names)
    ("train.full.lr=-1", "train.full.lr"),
    ("train.lora.lr=nan", "train.lora.lr"),
    ("train.head.lr=0", "train.head.lr"),
    ("train.full.lr=inf", "train.full.lr"),
    ("resources.lora.gpu=-1", "resources.lora.gpu"),
    ("resources.full.cpu=-0.5", "resources.full.cpu"),
    ("resources.head.workers=0", "resources.head.workers"),
    ("resources.gpu_mem_gb=0", "resources.gpu_mem_gb"),
    ("resources.share_margin=0.5", "resources.share_margin"),
    ("sweep.name=../../etc", "sweep.name"),
    ("sweep.name=a/b", "sweep.name"),
    ("sweep.name=..", "sweep.name"),
    ("sweep.max_failures=-2", "sweep.max_failures"),
    ("sweep.max_concurrent_trials=-2", "sweep.max_concurrent_trials"),
    ("seed=-1", "seed"),
    ("data.seed=-3", "data.seed"),
    ("data.num_members=0", "data.num_members"),
    ("data.num_nonmembers=0", "data.num_nonmembers"),
    ("data.dup_factor=0", "data.dup_factor"),
    ("data.dup_mix=[1, 0]", "data.dup_mix"),
    ("data.shard_rows=0", "data.shard_rows"),
    ("data.min_words=-1", "data.min_words"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.epochs=0", "train.epochs"),
    ("train.seq_len=1", "train.seq_len"),
    ("train.weight_decay=-0.1", "train.weight_decay"),
    ("train.lora.dropout=1.0", "train.lora.dropout"),
    ("train.lora.alpha=0", "train.lora.alpha"),
    ("train.lora.r=0", "train.lora.r"),
    ("train.full.zero_stage=4", "train.full.zero_stage"),
    ("train.micro_batch=-1", "train.micro_batch"),
    ("attack.temperature=0", "attack.temperature"),
    ("attack.temperature=nan", "attack.temperature"),
    ("attack.top_p=0", "attack.top_p"),
    ("attack.top_p=1.5", "attack.top_p"),
    ("attack.top_k=-1", "attack.top_k"),
    ("attack.actor_gpus=-0.1", "attack.actor_gpus"),
    ("attack.actor_cpus=-1", "attack.actor_cpus"),
    ("score.sim_thresholds=[0.5, 1.5]", "score.sim_thresholds"),
    ("score.plagiarism.bm25_b=2", "score.plagiarism.bm25_b"),
    ("score.plagiarism.seed_cosine=-0.1", "score.plagiarism.seed_cosine"),
    ("score.plagiarism.n_candidates=0", "score.plagiarism.n_candidates"),
    ("score.plagiarism.semantic.seed=1.2", "score.plagiarism.semantic.seed"),
    ("score.plagiarism.paraphrase_low=inf", "score.plagiarism.paraphrase_low"),
    ("score.plagiarism.paraphrase_low=0.995", "score.plagiarism.paraphrase_low"),  # (> high:
    ("score.plagiarism.paraphrase_high=0.5", "score.plagiarism.paraphrase_high"),  # empty)
    ("score.membership.mink_frac=0", "score.membership.mink_frac"),
    ("score.corpus_ann_candidates=0", "score.corpus_ann_candidates"),
    ("score.corpus_passage_words=0", "score.corpus_passage_words"),
    ("score.corpus_passage_stride=33", "score.corpus_passage_stride"),  # (> the 32 words)
    ("score.corpus_align=-1", "score.corpus_align"),
    ("tracking.retry_s=-1", "tracking.retry_s"),
    ("train.batch_size=2.5", "train.batch_size"),  # (types)
    ("attack.top_p=high", "attack.top_p"),
    ("train.strategy=everything", "train.strategy"),
    ("score.plagiarism.method=semantic", "score.plagiarism.method"),  # (a combination:
]                                            # needs judge_kind=embedding, set below)


def _numeric(tp) -> bool:
    """int or float, optional (`float | None`) or a list of them."""
    args = [a for a in get_args(tp) if a is not type(None)]
    return tp in (int, float) or (get_origin(tp) in (list, Union, types.UnionType)
                                  and bool(args) and all(map(_numeric, args)))


def test_every_numeric_field_has_a_range():
    """By value, and by type: a field whose default is null (paraphrase_low) is numeric too."""
    missing = [k for k, v in flatten(to_dict(StudyConfig())).items()
               if (is_number(v) or (isinstance(v, list) and v and all(map(is_number, v)))
                   or _numeric(leaf_type(k))) and rule(k) is None]
    assert not missing, f"numeric settings without a range in memlab/config/ranges.py: {missing}"


@pytest.mark.parametrize("override, key", BAD, ids=[o for o, _ in BAD])
def test_a_bad_setting_is_refused_naming_its_key(override, key):
    combo = key == "score.plagiarism.method"
    extra = ["score.plagiarism.judge_kind=cross-encoder"] if combo else []
    with pytest.raises(ConfigError) as e:
        load_study(QUICK, [override, *extra])
    assert any(line.split(": ")[0].endswith(key) or f" {key}:" in line
               for line in e.value.problems), e.value.problems


def test_limits_that_mean_something_stay_valid():
    load_study(QUICK, ["sweep.max_failures=-1", "attack.top_k=0", "score.corpus_ann_above=0",
                       "train.weight_decay=0", "attack.top_p=1"])  # (-1: Ray retries on)


def test_at_least_thirty_bad_settings():
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", sorted(p for p in SWEEPS.glob("*.yaml")
                                        if not p.name.startswith("_")), ids=lambda p: p.name)
def test_every_study_file_is_still_valid(path):
    load_study(path)


@pytest.mark.parametrize("command", ["validate", "plan", "run", "submit"])
def test_every_command_refuses_before_anything_starts(memlab_cmd, command, tmp_path):
    address = ["--address", "http://127.0.0.1:9"] if command == "submit" else []  # (nothing
    r = subprocess.run([*memlab_cmd, command, str(QUICK), "--set", "train.lora.lr=nan",  # there)
                        "--set", f"sweep.runs_root={tmp_path}", *address],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.lora.lr" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())  # nothing written
