import subprocess
import sys

import pytest
import yaml

from memlab.config.expand import load_study
from memlab.config.keys import stage_keys
from memlab.config.load import ConfigError, to_dict
from memlab.config.schema import StudyConfig
from tests.conftest import ROOT, SWEEPS

QUICK = SWEEPS / "quickstart.yaml"


def _study_file(tmp_path, text: str):
    (tmp_path / "_defaults.yaml").write_text((SWEEPS / "_defaults.yaml").read_text())
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


def test_quickstart_expands_to_three_strategies():
    study = load_study(QUICK)
    assert [t.config.train.strategy for t in study.trials] == ["full", "head", "lora"]
    assert study.base.data.dup_mix == [1, 4, 16]
    # defaults still apply where the study is silent
    assert study.base.score.embedder == "all-MiniLM-L6-v2"


def test_round_trip_through_yaml(tmp_path):
    study = load_study(QUICK)
    for t in study.trials:
        dumped = yaml.safe_dump(to_dict(t.config))
        p = _study_file(tmp_path, dumped)
        again = load_study(p).trials
        assert len(again) == 1
        assert to_dict(again[0].config) == to_dict(t.config)
        assert again[0].key == t.key


def test_stage_keys_are_content_addressed():
    a, b = StudyConfig(), StudyConfig()
    assert stage_keys(a) == stage_keys(b)
    b.sweep.runs_root = "/elsewhere"  # where a trial runs is not what it computes
    b.sweep.name = "another"
    b.resources.full.cpu = 8
    b.attack.actors, b.score.corpus_block = 4, 128
    assert stage_keys(a) == stage_keys(b)
    b.train.full.lr = 1e-6  # a LoRA trial (the default strategy) ignores full's settings
    assert stage_keys(a) == stage_keys(b)
    b.train.lora.lr = 1e-6
    assert stage_keys(a).trial != stage_keys(b).trial
    assert len(stage_keys(a).trial) == 12


ALL = ("data", "train", "gen", "score")


@pytest.mark.parametrize("field, value, same", [
    ("score.sim_thresholds", [0.5, 0.9], ("data", "train", "gen")),  # rescore only
    ("score.plagiarism.enabled", False, ("data", "train", "gen")),
    ("score.headline_threshold", 0.5, ALL),  # which summary column the report shows
    ("model.scale", "135M", ALL),  # a label
    ("attack.actors", 4, ALL),  # where it runs ...
    ("resources.lora.cpu", 8.0, ALL),
    ("resources.lora.gpu", 1.0, ("data",)),  # ... except what changes the numbers: bf16 on GPU
    ("train.precision", "fp32", ALL),  # (auto is fp32 on CPU: the same computation)
    ("attack.actor_gpus", 1.0, ("data", "train")),  # memlab's engine in bf16, not HF on CPU
    ("attack.max_new_tokens", 60, ("data", "train")),  # regenerate and rescore
    ("attack.decoding", "sample", ("data", "train")),
    ("train.lora.r", 8, ("data",)),  # retrain
    ("seed", 3, ("data",)),
    ("model.tiny.hidden", 32, ("data",)),
    ("data.num_members", 40, ()),  # another dataset
    ("data.format", "papers", ()),  # dataset formats (memlab/components/formats.py)
    ("data.columns", {"text": "body"}, ()),
    ("data.hf_config", "en", ()),
    ("data.template", "{instruction}\n{output}", ALL),  # only instruction data reads it
    ("data.paper_body", "markdown", ALL),  # only papers read it
    ("train.loss_on", "response", ALL),  # text: the response is the whole document
    ("attack.prompt_from", "start", ALL),  # (the same)
])
def test_a_field_changes_its_own_stage_and_those_after_it(field, value, same, base=None):
    a = StudyConfig()
    b = StudyConfig()
    for cfg in (a, b):
        for key, v in (base or {}).items():
            _set(cfg, key, v)
    _set(b, field, value)
    ka, kb = stage_keys(a), stage_keys(b)
    for stage in ("data", "train", "gen", "score"):
        assert (getattr(ka, stage) == getattr(kb, stage)) == (stage in same), stage


def _set(cfg, field, value):
    node = cfg
    *path, leaf = field.split(".")
    for part in path:
        node = getattr(node, part)
    setattr(node, leaf, value)


@pytest.mark.parametrize("fmt, field, value, same", [
    ("instruction", "data.template", "### Q:\n{instruction}\n{input}\n### A:\n{output}", ()),
    ("instruction", "data.columns", {"output": "answer"}, ()),
    ("instruction", "train.loss_on", "response", ("data",)),  # retrain
    ("instruction", "attack.prompt_from", "start", ("data", "train")),  # regenerate
    ("instruction", "attack.prompt_from", "response", ALL),  # what auto is
    ("chat", "train.loss_on", "response", ("data",)),
    ("chat", "data.template", "{instruction}\n{output}", ALL),  # chat does not read it
    ("papers", "data.paper_body", "markdown", ()),
    ("papers", "train.loss_on", "response", ALL),  # the whole document
])
def test_a_format_field_changes_its_own_stage_and_those_after_it(fmt, field, value, same):
    test_a_field_changes_its_own_stage_and_those_after_it(field, value, same,
                                                          {"data.format": fmt})


def test_text_data_keeps_the_keys_it_had_before_formats():
    """The settings added with formats are in no key of a text trial at their defaults."""
    from memlab.config.keys import _identity

    new = ("data.format", "data.columns", "data.hf_config", "data.template",
           "data.paper_body", "train.loss_on", "attack.prompt_from")
    assert not [k for k in _identity(StudyConfig()) if k.startswith(new)]


def test_the_fourth_rounds_idea_settings_are_keyed_only_away_from_the_rule_before():
    """score.plagiarism.semantic.idea_number_phrases, idea_added and idea_added_cosine (issue
    35 part 6's fourth round) are in a semantic study's key only where they differ from the
    rule before them (no number phrases, idea_added null, whose cosine then means nothing);
    pan2014's keys leave the semantic section out."""
    from memlab.config.keys import _identity

    new = ("score.plagiarism.semantic.idea_number_phrases",
           "score.plagiarism.semantic.idea_added")
    cfg = StudyConfig()
    assert not [k for k in _identity(cfg) if k.startswith(new)]  # (pan2014)
    cfg.score.plagiarism.method = "semantic"
    sem = cfg.score.plagiarism.semantic
    # (the fifth round's idea_added_scope, whose name starts like idea_added's, at the rule
    # before it: its default moved to text in that round)
    sem.idea_added_scope = "passage"
    sem.idea_number_phrases, sem.idea_added, sem.idea_added_cosine = False, None, 0.3
    assert not [k for k in _identity(cfg) if k.startswith(new)]
    sem.idea_number_phrases, sem.idea_added = True, 0.25
    assert sorted(k for k in _identity(cfg) if k.startswith(new)) == [
        "score.plagiarism.semantic.idea_added", "score.plagiarism.semantic.idea_added_cosine",
        "score.plagiarism.semantic.idea_number_phrases"]


def test_the_fifth_rounds_settings_are_keyed_only_away_from_the_rule_before():
    """score.plagiarism.semantic.idea_added_scope and paraphrase_facts (issue 35 part 6's fifth
    round) are in a semantic study's key only where they differ from the rule before them
    (added material inside the passage, facts per sentence pair): a study keyed before them
    keeps its key."""
    from memlab.config.keys import _identity, config_identity

    new = ("score.plagiarism.semantic.idea_added_scope",
           "score.plagiarism.semantic.paraphrase_facts")
    cfg = StudyConfig()
    cfg.score.plagiarism.method = "semantic"
    sem = cfg.score.plagiarism.semantic
    sem.idea_added_scope, sem.paraphrase_facts = "passage", "pair"
    assert not [k for k in _identity(cfg) if k in new]
    before = config_identity(cfg)
    sem.idea_added_scope = "text"
    assert [k for k in _identity(cfg) if k in new] == [new[0]]
    assert config_identity(cfg) != before
    sem.idea_added_scope, sem.paraphrase_facts = "passage", "case"
    assert [k for k in _identity(cfg) if k in new] == [new[1]]
    sem.paraphrase_facts = "pair"
    assert config_identity(cfg) == before


def test_a_local_dataset_is_keyed_by_its_content_not_its_path_or_mtime(tmp_path):
    import os

    here, moved = tmp_path / "here" / "notes.jsonl", tmp_path / "moved" / "notes.jsonl"
    for p in (here, moved):
        p.parent.mkdir()
        p.write_text('{"text": "a document"}\n')
    a, b = StudyConfig(), StudyConfig()
    a.data.source = b.data.source = "local"
    a.data.path, b.data.path = str(here), os.path.relpath(moved)
    assert stage_keys(a) == stage_keys(b)  # the same content under another path
    os.utime(moved, ns=(1, 1))  # touched, not changed
    assert stage_keys(a) == stage_keys(b)
    moved.write_text('{"text": "an edited document"}\n')
    assert stage_keys(a).data != stage_keys(b).data
    assert stage_keys(a).train != stage_keys(b).train  # and everything after it


def test_set_override_changes_trials():
    study = load_study(QUICK, ["train.epochs=2", "data.dup_factor=3"])
    assert all(t.config.train.epochs == 2 and t.config.data.dup_factor == 3 for t in study.trials)
    assert {t.key for t in study.trials}.isdisjoint({t.key for t in load_study(QUICK).trials})


def test_on_and_off_read_as_settings_not_booleans(tmp_path):
    """YAML reads a bare on / off as a boolean: the on | off settings take them as written."""
    p = _study_file(tmp_path, "train:\n  compile: off\nattack:\n  warm: on\n")
    assert (load_study(p).base.train.compile, load_study(p).base.attack.warm) == ("off", "on")
    got = load_study(QUICK, ["attack.warm=off", "train.compile=on"]).base
    assert (got.attack.warm, got.train.compile) == ("off", "on")
    with pytest.raises(ConfigError, match="train.strategy: expected str, got bool True"):
        load_study(QUICK, ["train.strategy=on"])  # (not an on | off setting)


def test_scientific_notation_reads_as_float(tmp_path):
    p = _study_file(tmp_path, "train:\n  full:\n    lr: 1e-4\n")
    assert load_study(p).base.train.full.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("text,expect", [
    ("train:\n  epochs: 1\n  lrr: 2\n", "study.yaml:3: train.lrr: unknown key"),
    ("train:\n  epochs: two\n", "study.yaml:2: train.epochs: expected int, got str 'two'"),
    ("train:\n  strategy: fine\n", "study.yaml:2: train.strategy: unknown strategy 'fine'"),
    ("data:\n  source: local\n  path: no/such/file.jsonl\n",
     "study.yaml:3: data.path: no such file or folder"),
    ("grid:\n  train.strat: [full]\n", "study.yaml:2: grid.train.strat: unknown key"),
    ("grid:\n  data.dup_factor: [1, x]\n", "grid.data.dup_factor: expected int"),
    ("attack:\n  suffix_tokens: 80\n  max_new_tokens: 40\n", "attack.max_new_tokens: must be >="),
    # configs that would otherwise fail only later, mid-sweep
    ("grid:\n  resources.full.cpu: [1, 2]\n", "cannot be a grid axis"),
    ("train:\n  max_steps: 3\n", "stops before one pass"),
    ("train:\n  log_every: 0\n", "train.log_every: must be >= 1"),
    ("data:\n  num_docs: 10\n", "data.num_docs: the demo corpus needs"),
])
def test_rejections_name_key_file_and_line(tmp_path, text, expect):
    p = _study_file(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert any(expect in line for line in e.value.problems), e.value.problems


def test_unknown_key_suggests_the_close_one(tmp_path):
    p = _study_file(tmp_path, "train:\n  sq_len: 64\n")
    with pytest.raises(ConfigError, match="did you mean 'seq_len'"):
        load_study(p)


@pytest.mark.parametrize("override,key", [
    ("train.bogus=1", "train.bogus: unknown key"),
    ("train.batch_size=big", "train.batch_size: expected int"),
    ("data.source=local", "data.path: required"),
])
def test_validate_cli_exit_code_2_one_line_no_traceback(memlab_cmd, override, key):
    r = subprocess.run([*memlab_cmd, "validate", str(QUICK), "--set", override],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], r.stderr


def test_validate_cli_missing_dataset_path(memlab_cmd):
    r = subprocess.run([*memlab_cmd, "validate", str(QUICK), "--set", "data.source=local",
                        "--set", "data.path=missing/corpus.jsonl"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: --set data.path: no such file or folder: "
                                f"{ROOT}/missing/corpus.jsonl (missing/corpus.jsonl read from "
                                f"the working directory, {ROOT})")


def test_validate_and_plan_do_not_import_heavy_packages():
    code = ("import sys, memlab.cli as c\n"
            f"assert c.main(['validate', {str(QUICK)!r}]) == 0\n"
            f"assert c.main(['plan', {str(QUICK)!r}]) == 0\n"
            "heavy = [m for m in ('torch', 'ray', 'transformers', 'deepspeed', 'mlflow',"
            " 'sentence_transformers', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "full" in r.stdout and "lora" in r.stdout



def test_resources_per_trial_workers_and_labels():
    from memlab.sweep.run import FULL_DRIVER_CPU, trial_resources

    study = load_study(SWEEPS / "smoke.yaml", [
        "resources.full.workers=2", "resources.full.labels={node-type: gpu-full}",
        "resources.lora.labels={node-type: small}", "attack.actors=2"])
    by = {t.config.train.strategy: t.config for t in study.trials}
    assert by["full"].resources.full.labels == {"node-type": "gpu-full"}
    # full: the trial process only; its Ray Train workers and actors reserve when they start
    assert trial_resources(by["full"]) == ([{"CPU": FULL_DRIVER_CPU}],
                                           [{"node-type": "gpu-full"}])
    bundles, labels = trial_resources(by["lora"])
    assert bundles == [{"CPU": 1.0}, {"CPU": 0.5}, {"CPU": 0.5}]  # trial + one per actor
    assert labels == [{"node-type": "small"}] * 3
    assert trial_resources(by["head"])[1] == [{}] * 3
    # actors placed apart from their trial: the trial's bundle, then its actors'
    lora = load_study(SWEEPS / "smoke.yaml", [
        "resources.lora.labels={memlab/role: small}",
        "resources.lora.actor_labels={memlab/role: gen}", "attack.actors=2"]).trials[2].config
    assert trial_resources(lora)[1] == [{"memlab/role": "small"}] + [{"memlab/role": "gen"}] * 2
    # placement is not part of what a trial computes
    plain = {t.config.train.strategy: t.key for t in load_study(SWEEPS / "smoke.yaml").trials}
    assert {t.config.train.strategy: t.key for t in study.trials} == plain


@pytest.mark.parametrize("override, message", [
    (["resources.lora.workers=2"], "only a strategy that trains across workers (full)"),
    (["resources.full.workers=3"], "do not split evenly over resources.full.workers=3"),
    (["resources.full.workers=0"], "must be >= 1"),
    (["resources.full.labels=[a, b]"], "expected mapping of str to str"),
    (["resources.full.labels={memlab/role: a b}"], "label value 'a b' of 'memlab/role'"),
    (["resources.lora.actor_labels={-x: a}"], "label key '-x' is not"),
    (["train.checkpoint_every=-1"], "must be >= 0"),
])
def test_bad_workers_labels_and_checkpoints_are_refused(override, message):
    with pytest.raises(ConfigError) as e:
        load_study(SWEEPS / "smoke.yaml", override)
    assert message in str(e.value)


@pytest.mark.parametrize("selector, labels, ok", [
    ({"memlab/role": "full"}, {"memlab/role": "full"}, True),
    ({"memlab/role": "full"}, {"memlab/role": "small"}, False),
    ({"memlab/role": "full"}, {}, False),
    ({"memlab/role": "!full"}, {}, True),  # a negated term matches a node without the key
    ({"memlab/role": "!full"}, {"memlab/role": "full"}, False),
    ({"memlab/role": "in(full, small)"}, {"memlab/role": "small"}, True),
    ({"memlab/role": "!in(full,small)"}, {"memlab/role": "small"}, False),
    ({}, {"memlab/role": "x"}, True),
    ({"memlab/role": "(full,small)"}, {"memlab/role": "full"}, True),
])
def test_label_selectors_match_as_in_ray(selector, labels, ok):
    from memlab.config.placement import matches, selector_problem

    assert selector_problem(selector) == ""
    assert matches(selector, labels) is ok


@pytest.mark.parametrize("key, value", [
    ("memlab/role", "full"), ("Memlab.IO/role", "full"), ("a_b/role", "x"), ("role", ""),
    ("memlab/role", "in(full, small)"), ("memlab/role", "in( full ,small )"),
    ("memlab/role", "in(full,  small)"), ("memlab/role", "!in(a,b)"), ("memlab/role", "(a,b)"),
    ("memlab/role", "a b"), ("-x", "a"), ("memlab/-role", "a"), ("a..b/role", "x"),
    ("ray.io/accelerator-type", "H100"), ("x" * 64, "a"), ("memlab/role", "x" * 64),
])
def test_selector_syntax_is_rays(key, value):
    """memlab's selector check (no Ray import) agrees with Ray's own validator."""
    from ray._private.label_utils import validate_label_selector

    from memlab.config.placement import selector_problem

    ours = selector_problem({key: value})
    assert (ours == "") == (validate_label_selector({key: value}) is None), ours


def test_other_strategies_settings_do_not_split_trials():
    study = load_study(SWEEPS / "smoke.yaml", ["train.lora.r=4"])
    study2 = load_study(SWEEPS / "smoke.yaml", [])
    by = {t.config.train.strategy: t.key for t in study.trials}
    by2 = {t.config.train.strategy: t.key for t in study2.trials}
    assert by["full"] == by2["full"] and by["head"] == by2["head"]  # lora.r is LoRA's only
    assert by["lora"] != by2["lora"]


def test_a_grid_over_zero_stage_runs_head_and_lora_once(tmp_path):
    p = _study_file(tmp_path, "sweep: {name: z}\nmodel: {source: tiny}\n"
                              "grid: {train.strategy: [full, head, lora], "
                              "train.full.zero_stage: [2, 3]}\n")
    study = load_study(p)
    assert sorted(t.config.train.strategy for t in study.trials) == \
        ["full", "full", "head", "lora"]


@pytest.mark.parametrize("source, name, label", [
    ("gguf", "/models/llama/Llama-3.2-1B-Instruct.Q4_K_M.gguf", "Llama-3.2-1B-Instruct.Q4_K_M"),
    ("hf", "./checkpoints/gpt2-medium/", "gpt2-medium"),
    ("hf", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B"),
    ("smollm2", None, "SmolLM2-135M"),
])
def test_model_labels_are_short_names_not_paths(source, name, label):
    from memlab.config.labels import model_label

    cfg = StudyConfig()
    cfg.model.source, cfg.model.name = source, name
    assert model_label(cfg) == label
    cfg.model.scale = "1B"
    assert model_label(cfg) == "1B"


@pytest.mark.parametrize("override, message", [
    (["data.canaries.template=my pin is {pin}"], "must hold {secret} exactly once"),
    (["data.canaries.alphabet=aab"], "at least 2 distinct characters"),
    (["data.canaries.repeats=[0, 4]"], "each item must be >= 1, got 0"),
    (["data.canaries.repeats=[4, 4]"], "distinct counts >= 1"),
    (["data.canaries.count=-1"], "must be >= 0"),
    (["attack.canary_alternatives=0"], "must be >= 1"),
    (["score.membership.mink_frac=0"], "must be in (0, 1]"),
    (["score.membership.bootstrap=-5"], "must be >= 0"),
])
def test_bad_canary_and_membership_settings_are_refused(override, message):
    with pytest.raises(ConfigError) as e:
        load_study(SWEEPS / "smoke.yaml", override)
    assert message in str(e.value)


def test_membership_and_canary_settings_reach_their_stages_only():
    """k of min-k% rescores; canary alternatives regenerate; canaries themselves rebuild the
    data; turning the membership family off drops the base pass from the score key."""
    plain = load_study(SWEEPS / "smoke.yaml", []).trials[0].keys
    k = load_study(SWEEPS / "smoke.yaml", ["score.membership.mink_frac=0.1"]).trials[0].keys
    assert (k.train, k.gen, k.base) == (plain.train, plain.gen, plain.base)
    assert k.score != plain.score
    alt = load_study(SWEEPS / "smoke.yaml", ["attack.canary_alternatives=31"]).trials[0].keys
    assert alt.train == plain.train and alt.gen != plain.gen
    can = load_study(SWEEPS / "smoke.yaml", ["data.canaries.count=2"]).trials[0].keys
    assert can.data != plain.data and can.base != plain.base
    off = load_study(SWEEPS / "smoke.yaml", ["score.membership.enabled=false"]).trials[0]
    assert off.keys.score != plain.score and off.keys.gen == plain.gen


def test_trial_names_say_the_copies_a_member_gets(tmp_path):
    """Issue 32: the demo (dup_factor 2, dup_mix [1, 4, 16]) trains members 2, 8 and 32 times,
    and its trials were named `x2`; a dup_mix study at dup_factor 1 was `x1`. A plain
    dup_factor study keeps its names (MLflow run names derive from them)."""
    assert [t.name for t in load_study(QUICK).trials] == [
        "full-SmolLM2-135M-x2-8-32-s0", "head-SmolLM2-135M-x2-8-32-s0",
        "lora-SmolLM2-135M-x2-8-32-s0"]
    smoke = load_study(SWEEPS / "smoke.yaml")  # dup_mix [1, 4] at dup_factor 1
    assert {t.name.split("-x")[1] for t in smoke.trials} == {"1-4-s0"}
    plain = load_study(QUICK, ["data.dup_mix=[1]", "data.dup_factor=4"])
    assert [t.name for t in plain.trials][0] == "full-SmolLM2-135M-x4-s0"
    grid = load_study(_study_file(tmp_path, "grid:\n  data.dup_factor: [1, 8]\n"))
    assert [t.name for t in grid.trials] == ["lora-SmolLM2-135M-x1-s0",
                                             "lora-SmolLM2-135M-x8-s0"]
