"""Issue 33 part 2: DP fine-tuning with Opacus (train.dp; memlab/components/privacy.py) on the
tiny models, on CPU: per-sample gradients that are each sequence's own, the noise multiplier
Opacus's accountant gives, an epsilon spent within the target, Poisson-sampled batches, and the
combinations Opacus cannot serve refused by `memlab validate`."""

import json
import math
import statistics
import subprocess

import pytest
import torch

from memlab.components.data import read_dataset
from memlab.components.models import load_causal_lm, load_trained, prepare_base_model
from memlab.config.expand import load_study
from memlab.config.load import ConfigError
from memlab.config.schema import StudyConfig
from memlab.stages.data import build_dataset
from tests.conftest import ROOT, SWEEPS, stage

STREAM = 2 * 1 + 2 * 2  # the tiny study's training stream: 2 members x1, 2 members x2


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """family -> (its tiny base model, the dataset's folder), built once for the module."""
    tmp, out = tmp_path_factory.mktemp("dp"), {}
    for family in ("llama", "gpt2"):
        cfg = _cfg(tmp, family, "lora")
        build_dataset(cfg.data, tmp / f"data-{family}")
        texts = [r["text"] for r in read_dataset(tmp / f"data-{family}")]
        out[family] = (prepare_base_model(cfg.model, texts)["path"], tmp / f"data-{family}")
    return out


def _cfg(tmp, family: str, strategy: str, epsilon: float | None = 8.0) -> StudyConfig:
    cfg = StudyConfig()
    cfg.data.num_docs, cfg.data.num_members, cfg.data.num_nonmembers = 60, 4, 2
    cfg.data.dup_mix = [1, 2]
    cfg.model.source, cfg.model.cache_dir = "tiny", str(tmp / "cache")
    cfg.model.tiny.family = family
    cfg.train.strategy, cfg.train.seq_len, cfg.train.batch_size = strategy, 32, 2
    cfg.train.full.engine = "torch"
    cfg.train.head.lr = cfg.train.lora.lr = cfg.train.full.lr = 1e-2
    cfg.train.dp.epsilon = epsilon
    return cfg


def _private(base: str, cfg: StudyConfig):
    """A PrivateSetup of the tiny model, dropout off (so that gradients can be compared)."""
    from memlab.components.privacy import PrivateSetup
    from memlab.components.training import make_setup

    setup = PrivateSetup(make_setup(cfg, load_causal_lm(base, torch.float32), "cpu",
                                    torch.float32, 3), cfg, STREAM, 3)
    for m in setup.inner.model.modules():  # (GPT-2's, LoRA's)
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return setup


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("strategy", ["head", "lora", "full"])
def test_each_sequence_gets_its_own_gradient(bases, tmp_path, family, strategy):
    """Opacus's per-sample gradient of every trainable parameter equals the gradient of that
    sequence's loss alone: GPT-2's position embedding (full) included, a tied embedding and
    head (the tiny models tie them; full trains it as one parameter) included, and a row
    whose loss starts after a prompt (loss_on=response)."""
    from memlab.components.privacy import sequence_losses

    base, _ = bases[family]
    setup = _private(base, _cfg(tmp_path, family, strategy))
    assert setup.engine == "torch+opacus"
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 500, (3, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 10:] = 0  # right padding
    labels = ids.masked_fill(mask == 0, -100)
    labels[1, :6] = -100  # the loss from the response on
    named = [(n, p) for n, p in setup.inner.model.named_parameters() if p.requires_grad]
    setup.model.disable_hooks()  # the reference: one sequence at a time, plain autograd
    alone = []
    for i in range(3):
        setup.inner.model.zero_grad()
        per_seq, _ = sequence_losses(setup.inner.model(input_ids=ids[i:i + 1],
                                                       attention_mask=mask[i:i + 1]).logits,
                                     labels[i:i + 1])
        per_seq.sum().backward()
        alone.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                      for _, p in named])
    setup.inner.model.zero_grad()
    setup.model.enable_hooks()
    per_seq, _ = sequence_losses(setup._forward(ids, mask), labels)
    per_seq.mean().backward()
    for j, (name, p) in enumerate(named):
        assert p.grad_sample.shape[0] == 3, name
        for i in range(3):
            torch.testing.assert_close(p.grad_sample[i], alone[i][j], atol=1e-5, rtol=1e-3,
                                       msg=f"{name}, sequence {i}")


def test_a_layer_without_per_sample_gradients_stops_the_first_step(bases, tmp_path):
    """GPT-2 looks its position embedding up with one row of positions for the whole batch
    unless given them per row: that embedding then has one gradient for the batch, and the
    first step says so instead of clipping something else than each sequence's gradient."""
    from memlab.components.training import micro_parts

    setup = _private(bases["gpt2"][0], _cfg(tmp_path, "gpt2", "full"))
    setup.per_row = False
    ids = torch.randint(5, 500, (3, 16))
    with pytest.raises(ValueError, match="no per-sample gradient of transformer.wpe.weight"):
        setup.step(micro_parts(ids, torch.ones_like(ids), ids, 1, False), False)


@pytest.mark.parametrize("strategy", ["head", "lora"])
def test_the_noise_is_opacus_and_the_epsilon_spent_stays_within_the_target(bases, tmp_path,
                                                                           strategy):
    """Acceptance 1: the noise multiplier of a DP training is Opacus's `get_noise_multiplier`
    for the same sampling rate, steps and target; the accountant's epsilon after training is
    at most the target; the model trained."""
    from opacus.accountants import PRVAccountant
    from opacus.accountants.utils import get_noise_multiplier

    base, data = bases["llama"]
    cfg = _cfg(tmp_path, "llama", strategy)
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    steps, rate = man["train_steps"], 1 / math.ceil(STREAM / cfg.train.batch_size)
    assert (steps, man["dp_sample_rate"]) == (3, rate) and man["engine"] == "torch+opacus"
    opacus = get_noise_multiplier(target_epsilon=8.0, target_delta=1e-5, sample_rate=rate,
                                  steps=steps, accountant="prv")
    assert man["dp_noise_multiplier"] == opacus
    assert 0 < man["dp_epsilon_spent"] <= man["dp_epsilon_target"] == 8.0
    acc = PRVAccountant()
    acc.history = [(opacus, rate, steps)]  # what those steps spend, counted afresh
    assert man["dp_epsilon_spent"] == pytest.approx(acc.get_epsilon(1e-5))
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())["metrics"]
    assert metrics["dp_epsilon_spent"] == man["dp_epsilon_spent"]  # (-> result.json, MLflow)
    before = load_causal_lm(base).state_dict()
    after = load_trained(tmp_path / "train")[0].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_batches_are_poisson_sampled_as_opacus_samples_them():
    """Opacus's DPDataLoader's sampling rate (1 / the batches of an epoch), the same draws
    for the same seed, about train.batch_size sequences a step."""
    from opacus.data_loader import DPDataLoader
    from torch.utils.data import DataLoader, TensorDataset

    from memlab.components.privacy import poisson_batches
    from memlab.config.privacy import sample_rate

    for n, b in ((336, 8), (6, 4), (13991, 16), (5, 8)):
        loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=b)
        assert sample_rate(n, b) == DPDataLoader.from_data_loader(loader).sample_rate
    draws = poisson_batches(336, 8, 0, 2000)
    assert draws == poisson_batches.__wrapped__(336, 8, 0, 2000)  # (not the cache's copy)
    assert draws != poisson_batches(336, 8, 1, 2000)
    sizes = [len(d) for d in draws]
    assert statistics.fmean(sizes) == pytest.approx(8, abs=0.25)
    assert min(sizes) < 8 < max(sizes)
    assert all(len(set(d)) == len(d) and all(0 <= i < 336 for i in d) for d in draws)


def test_a_dp_step_split_into_micro_batches_is_the_one_pass_step(bases, tmp_path):
    """train.micro_batch under DP: each pass's per-sample gradients are clipped and summed,
    the noise added once: the losses of one pass per step (float32 on CPU, up to rounding).
    The manifest counts the sequences the Poisson batches held."""
    from memlab.components.privacy import poisson_batches

    base, data = bases["llama"]
    cfg = _cfg(tmp_path, "llama", "lora")
    cfg.train.batch_size, cfg.train.epochs, cfg.train.lora.dropout = 4, 4, 0.0
    whole = stage("train", cfg, base=base, data=data, train=tmp_path / "whole").manifest
    cfg.train.micro_batch = 1
    micro = stage("train", cfg, base=base, data=data, train=tmp_path / "micro").manifest
    a, b = (json.loads((tmp_path / f / "metrics.json").read_text())["losses"]
            for f in ("whole", "micro"))
    assert len(a) == len(b) == whole["train_steps"] == 8
    assert b == pytest.approx(a, rel=1e-4, nan_ok=True)
    sa, sb = (load_trained(tmp_path / f)[0].state_dict() for f in ("whole", "micro"))
    base_sd = load_causal_lm(base).state_dict()
    assert any(not torch.equal(sa[k], base_sd[k]) for k in base_sd)  # (it trained)
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], atol=1e-6, rtol=1e-4, msg=k)
    drawn = poisson_batches(STREAM, 4, cfg.seed, 8)
    assert micro["train_sequences"] == whole["train_sequences"] == sum(map(len, drawn))
    assert micro["dp_epsilon_spent"] == whole["dp_epsilon_spent"]


def test_a_resumed_dp_training_matches_an_uninterrupted_one(bases, tmp_path):
    """A crash after a checkpoint: the same Poisson batches, noise and epsilon spent (the
    accountant counts the steps before the checkpoint)."""
    from tests.unit.test_train_resume import Crash, _crash_at

    base, data = bases["llama"]
    cfg = _cfg(tmp_path, "llama", "lora")
    cfg.train.checkpoint_every, cfg.train.epochs = 1, 2
    ref = stage("train", cfg, base=base, data=data, train=tmp_path / "ref").manifest
    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        stage("train", cfg, base=base, data=data, train=out, on_loss=_crash_at(2))
    man = stage("train", cfg, base=base, data=data, train=out).manifest
    assert man["resumed_from_step"] == 2
    assert man["dp_epsilon_spent"] == ref["dp_epsilon_spent"]
    a, b = (json.loads((f / "metrics.json").read_text())["losses"] for f in (tmp_path / "ref",
                                                                               out))
    assert b == pytest.approx(a, nan_ok=True)
    sa, sb = load_trained(tmp_path / "ref")[0].state_dict(), load_trained(out)[0].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _study(tmp_path, text: str):
    (tmp_path / "_defaults.yaml").write_text((SWEEPS / "_defaults.yaml").read_text())
    p = tmp_path / "study.yaml"
    p.write_text("sweep: {name: dp}\n" + text)
    return p


REFUSED = [  # (study, the key its one line names, what it says)
    ("train: {strategy: full, full: {engine: deepspeed}, dp: {epsilon: 8}}",
     "train.dp.epsilon", "full trains through DeepSpeed here (ZeRO-2 x1): set "
     "train.full.engine=torch"),
    ("train: {strategy: full, dp: {epsilon: 8}}\nresources: {full: {workers: 2, gpu: 1}}",
     "train.dp.epsilon", "(ZeRO-2 x2)"),  # auto: DeepSpeed across workers
    ("train: {strategy: full, dp: {epsilon: 8}}", "train.dp.epsilon",
     "(ZeRO-2 x1)"),  # auto on CPU: DeepSpeed
    ("train: {strategy: lora, compile: 'on', dp: {epsilon: 8}}", "train.compile",
     "module hooks"),
    ("train: {strategy: lora, dp: {epsilon: 8, delta: 0.05}}\ndata: {num_members: 24}",
     "train.dp.delta", "0.05 is not below 1 / the training stream's 24 sequences"),
    ("train: {strategy: lora, dp: {epsilon: 0}}", "train.dp.epsilon", "must be > 0"),
    ("train: {strategy: head, dp: {epsilon: 8, max_grad_norm: -1}}", "train.dp.max_grad_norm",
     "must be > 0"),
]


@pytest.mark.parametrize("text, key, says", REFUSED, ids=[k + ":" + s[:12] for _, k, s in REFUSED])
def test_a_dp_combination_opacus_cannot_serve_is_one_line(tmp_path, text, key, says):
    with pytest.raises(ConfigError) as e:
        load_study(_study(tmp_path, text))
    assert len(e.value.problems) == 1, e.value.problems
    assert "study.yaml:" in e.value.problems[0] and f" {key}: " in e.value.problems[0]
    assert says in e.value.problems[0], e.value.problems[0]


def test_full_fine_tuning_of_a_mixture_of_experts_under_dp_is_refused(tmp_path):
    """A local model whose config declares experts: full fine-tuning under DP is refused (a
    tiny Mixtral's expert layer has no per-sample gradient in Opacus); LoRA on its attention
    is not."""
    folder = tmp_path / "moe"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "mixtral",
                                                    "num_local_experts": 8}))
    study = _study(tmp_path, f"model: {{source: hf, name: {folder}}}\n"
                   "train: {strategy: full, full: {engine: torch}, dp: {epsilon: 8}}")
    with pytest.raises(ConfigError, match="mixture-of-experts model \\(8 experts per layer\\)"):
        load_study(study)
    assert load_study(study, ["train.strategy=lora"]).trials


def test_validate_exits_2_with_one_line_for_dp_through_deepspeed(tmp_path, memlab_cmd):
    """Acceptance 2, as a user meets it: `memlab validate` of the demo study with DP on
    refuses its full trial (DeepSpeed on CPU) in one line, exit 2; with full in plain torch
    it validates."""
    quick = str(SWEEPS / "quickstart.yaml")
    r = subprocess.run([*memlab_cmd, "validate", quick, "--set", "train.dp.epsilon=8"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set train.dp.epsilon: DP trains "
                                                   "in plain torch"), r.stderr
    r = subprocess.run([*memlab_cmd, "validate", quick, "--set", "train.dp.epsilon=8",
                        "--set", "train.full.engine=torch"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr


# Acceptance 3: train and trial keys of the studies under sweeps/ as they were before train.dp
# existed (main at 78645cd): DP off, at its default, keeps every key (the whole list of every
# study was compared when DP came; these pin a few of each).
BEFORE = [  # (study, trial, its train key, its trial key)
    ("quickstart.yaml", 0, "b70cf5ed9c05", "9825d5c16378"),
    ("quickstart.yaml", 1, "d615a08d208a", "4884fa82d827"),
    ("quickstart.yaml", 2, "3d722292cc79", "1315e9b11259"),
    ("smoke.yaml", 0, "414b8cc02f7f", "359220030527"),
    ("smoke.yaml", 1, "a03aa1bc2ea6", "2a5a8c931df6"),
    ("smoke.yaml", 2, "7c7239e819b7", "11e57e854555"),
    ("gpu-1.yaml", 0, "62133f07fbee", "5c5f89fe8a37"),
    ("gpu-1.yaml", 8, "7e56ef4c6504", "8fb0e38351a5"),
    ("paper.yaml", 0, "42c11218811d", "83d2a2c96c59"),
    ("paper.yaml", 63, "4cae193cac01", "195ee9c2cf9f"),
    ("paper.yaml", 125, "39190dd8e8f5", "731467b8bcf0"),
    ("arxiver.yaml", 0, "0b4777d503c0", "e634c00eabd1"),
    ("arxiver.yaml", 17, "d64df0576fc9", "c5229bbf7650"),
    ("chatdoctor.yaml", 0, "09a8ba31ab9e", "8f5b12d7cdee"),
    ("chatdoctor.yaml", 8, "3955f37c164c", "7ea6cc80dc5d"),
]


@pytest.mark.parametrize("study", sorted({s for s, *_ in BEFORE}))
def test_dp_off_keeps_the_keys_the_studies_had_before_dp(study):
    trials = load_study(SWEEPS / study).trials
    for name, i, train, trial in (b for b in BEFORE if b[0] == study):
        assert (trials[i].keys.train, trials[i].key) == (train, trial), (name, i)
    # DP's other settings change nothing while it is off
    off = load_study(SWEEPS / study, ["train.dp.delta=1e-7", "train.dp.max_grad_norm=0.1"])
    assert [t.keys for t in off.trials] == [t.keys for t in trials]


def test_dp_on_is_in_the_train_key_and_what_follows_it():
    plain = {t.config.train.strategy: t.keys for t in load_study(SWEEPS / "smoke.yaml").trials}
    dp = {t.config.train.strategy: t.keys for t in load_study(
        SWEEPS / "smoke.yaml", ["train.dp.epsilon=8", "train.full.engine=torch"]).trials}
    for s in ("head", "lora"):
        assert dp[s].data == plain[s].data and dp[s].base == plain[s].base
        assert dp[s].train != plain[s].train and dp[s].trial != plain[s].trial
    eps4 = load_study(SWEEPS / "smoke.yaml", ["train.dp.epsilon=4", "train.full.engine=torch"])
    assert {t.keys.train for t in eps4.trials}.isdisjoint({k.train for k in dp.values()})


def test_the_report_shows_the_privacy_spent_next_to_utility(tmp_path):
    """A DP group's utility row carries `dp_eps` (spent / target) and the noise multiplier; a
    group without DP shows `-`; a study without DP shows neither column."""
    from memlab.report.numbers import aggregate
    from memlab.report.render import render
    from memlab.report.tables import layout, utility_table
    from tests.unit.test_report import HEADS, record

    dp = [record("lora", s, point={"dp": "eps8", "seed": s}) for s in (0, 1)]
    for (res, _), spent in zip(dp, (7.93, 7.95)):
        res["train"].update(dp_epsilon_spent=spent, dp_epsilon_target=8.0,
                            dp_noise_multiplier=0.51)
    plain = [record("lora", s, point={"dp": "off", "seed": s}) for s in (0, 1)]
    groups = aggregate(dp + plain, ["dp"])
    head, body, legend = layout(utility_table(groups, HEADS, ["strategy", "model", "dp"]),
                                ["model"])
    rows = {r[head.index("dp")]: r for r in body}
    assert (rows["eps8"][head.index("dp_eps")], rows["eps8"][head.index("noise")]) == (
        "7.94 / 8", "0.51")
    assert (rows["off"][head.index("dp_eps")], rows["off"][head.index("noise")]) == ("-", "-")
    assert "dp_eps: the epsilon of (epsilon, delta)-DP" in legend
    render("dp", tmp_path, groups, ["dp"], HEADS)
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert {"dp_eps", "dp_eps_target", "noise"} <= set(csv[0].split(","))
    head, _, legend = layout(utility_table(aggregate(plain, ["dp"]), HEADS, ["strategy"]), [])
    assert "dp_eps" not in head and "noise" not in head and "dp_eps" not in legend


def test_plan_counts_the_per_sample_gradients_and_shows_the_dp_settings(memlab_cmd):
    """DP adds trainable parameters x rows x 4 bytes (+ their clipped sum) to a trial's
    training memory, rows being a Poisson draw 3 standard deviations above train.batch_size
    (or train.micro_batch); `memlab plan` shows each trial's DP settings."""
    from memlab.sweep.plan import GIB, dp_rows, estimate, model_shape

    quick = SWEEPS / "quickstart.yaml"
    on = ["train.dp.epsilon=8", "train.full.engine=torch"]
    for over, rows in (([], 8 + 9), (["train.micro_batch=2"], 2)):
        for t in load_study(quick, on + over).trials:
            cfg, shape = t.config, model_shape(t.config)
            assert dp_rows(cfg) == rows
            trains = {"full": shape.params, "head": shape.vocab * shape.hidden,
                      "lora": shape.layers * 4 * 16 * 2 * shape.hidden}[cfg.train.strategy]
            own = cfg.strategy.memory(cfg, shape, rows, 1)  # (weights, Adam, activations)
            assert estimate(cfg, shape)["train_mem_gib"] * GIB == pytest.approx(
                own + 4 * trains * (rows + 1) + GIB), cfg.train.strategy
    r = subprocess.run([*memlab_cmd, "plan", str(quick), *(x for o in on for x in ("--set", o))],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("eps=8 delta=1e-05 C=1 q=1/42") == 3 and "\ndp: " in r.stdout
    r = subprocess.run([*memlab_cmd, "plan", str(quick)], capture_output=True, text=True,
                       cwd=ROOT)
    assert " dp" not in r.stdout.splitlines()[2] and "eps=" not in r.stdout


def test_each_trial_is_tagged_with_its_dp_settings():
    from memlab.tracking.trials import dp_tags

    trials = load_study(SWEEPS / "smoke.yaml", ["train.dp.epsilon=8", "train.dp.delta=1e-6",
                                                "train.full.engine=torch"]).trials
    assert {t.config.train.strategy: dp_tags(t.config) for t in trials}["lora"] == {
        "dp_epsilon": "8", "dp_delta": "1e-06"}
    off = load_study(SWEEPS / "smoke.yaml").trials[0].config
    assert dp_tags(off) == {"dp_epsilon": "off", "dp_delta": "off"}
    run = (ROOT / "memlab" / "sweep" / "run.py").read_text()
    assert "**dp_tags(cfg)" in run  # (a sweep's trials: their tags, live and logged)
