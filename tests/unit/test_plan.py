"""`memlab plan`: per-trial resources, memory per GPU and GPU-hours; impossible grids refused."""

import subprocess
import sys
from pathlib import Path

import pytest

from memlab.config.expand import load_study
from memlab.sweep.plan import estimate, model_shape

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "sweeps" / "paper.yaml"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "memlab.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_plan_of_the_paper_grid_lists_every_trial_and_model_with_estimates():
    out = cli("plan", str(PAPER))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    study = load_study(PAPER, [])
    # GPT-2 small/medium/large/xl, Llama-3.2-1B/3B, Llama-3.1-8B x 2 datasets x 3 x 3 seeds
    assert len(study.trials) == 7 * 2 * 3 * 3
    for t in study.trials:
        assert any(line.startswith(t.key) for line in lines)
    assert {t.config.data.format for t in study.trials} == {"papers", "instruction"}
    assert "train GiB/GPU" in out.stdout and "GPU-h" in out.stdout
    total = float(out.stdout.split("estimated GPU-hours: ")[1].split()[0])
    assert total > 0
    models = out.stdout.split("per model:")[1].splitlines()
    for label in ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "llama-3.2-1b",
                  "llama-3.2-3b", "llama-3.1-8b"):
        (row,) = [line for line in models if line.startswith(label + " ")]
        assert row.count("fits") == 4, row  # full, head, LoRA, generation actor
    (big,) = [line for line in models if line.startswith("llama-3.1-8b")]
    assert "(ZeRO-3 x4)" in big


@pytest.mark.parametrize("cmd", ["plan", "run"])
def test_an_impossible_grid_is_refused_before_launch(cmd):
    out = cli(cmd, str(PAPER), "--set", "resources.gpu_mem_gb=24")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    full = [e for e in errors if "full fine-tuning of llama-3.2-3b" in e]
    assert len(full) == 1 and "and 5 more" in full[0]  # one line for its 6 trials
    assert "resources.gpu_mem_gb" in full[0]
    plan = cli("plan", str(PAPER), "--set", "resources.gpu_mem_gb=24").stdout
    (row,) = [line for line in plan.split("per model:")[1].splitlines()
              if line.startswith("llama-3.2-3b")]
    assert "/24 (torch x1) NO" in row  # one GPU: plain torch (train.full.engine=auto)


def test_memory_estimates_order_and_sharding():
    study = load_study(PAPER, [])
    by = {}
    for t in study.trials:
        c = t.config
        if c.model.name == "gpt2-medium" and c.seed == 0 and c.data.format == "papers":
            by[c.train.strategy] = c
    shape = model_shape(by["full"])
    assert shape.params == pytest.approx(355e6, rel=0.01)  # GPT-2 medium
    mem = {s: estimate(c, shape)["train_mem_gib"] for s, c in by.items()}
    assert mem["full"] > mem["lora"] > mem["head"]
    c = by["full"]  # one GPU: plain torch keeps autocast's 2P bf16 copies on top of ZeRO's 16P
    c.train.full.engine = "deepspeed"
    mem["full"] = estimate(c, shape)["train_mem_gib"]
    c.train.full.engine = "auto"
    assert estimate(c, shape)["train_mem_gib"] - mem["full"] == pytest.approx(
        2 * shape.params / 2**30, rel=1e-6)
    c.train.full.engine = "deepspeed"
    c.train.full.zero_stage = 3
    sharded = estimate(c, shape, workers=4)["train_mem_gib"]
    # ZeRO-3 over 4 GPUs keeps a quarter of the 16 bytes/param of weights, grads, Adam states,
    # and each worker passes a quarter of the batch (activations and logits)
    t = c.train
    per_row = t.seq_len * (34 * shape.hidden * shape.layers + 10 * shape.vocab)
    assert mem["full"] - sharded == pytest.approx(
        (16 * shape.params + per_row * t.batch_size) * 3 / 4 / 2**30, rel=1e-6)
    c.train.micro_batch = 2  # two sequences per pass: an eighth of the batch's
    assert sharded - estimate(c, shape, workers=4)["train_mem_gib"] == pytest.approx(
        per_row * (t.batch_size // 4 - 2) / 2**30, rel=1e-6)


def test_shapes_of_builtin_sources():
    from memlab.config.schema import StudyConfig

    cfg = StudyConfig()  # model.source = smollm2
    assert model_shape(cfg).params == pytest.approx(134.5e6, rel=0.005)
    cfg.model.source, cfg.model.name = "hf", "some-org/unknown-model"
    assert model_shape(cfg) is None


def test_more_zero3_workers_make_a_big_full_trial_fit(tmp_path):
    study = tmp_path / "big.yaml"
    study.write_text("model: {source: hf, name: meta-llama/Llama-3.2-3B}\n"
                     "train: {strategy: full, seq_len: 256}\n"
                     "resources: {full: {gpu: 1}, gpu_mem_gb: 48}\n")
    refused = cli("plan", str(study))
    assert refused.returncode == 2 and "full fine-tuning of meta-llama/Llama-3.2-3B" \
        in refused.stderr
    ok = cli("plan", str(study), "--set", "train.full.zero_stage=3",
             "--set", "resources.full.workers=4")
    assert ok.returncode == 0, ok.stderr
    assert "4x1" in ok.stdout and "(ZeRO-3 x4) fits" in ok.stdout  # 4 workers x 1 GPU each


def test_gpu_shares_sized_by_memory():
    """resources.gpu_share=memory: the GPU study's trials and actors reserve what their
    memory estimates need (x share_margin, in steps of 0.01), never more than configured;
    the stage keys do not change (resources are in no key)."""
    import math

    from memlab.config.keys import stage_keys
    from memlab.sweep.plan import estimate, sized_shares
    from memlab.sweep.run import trial_resources

    study = load_study(ROOT / "sweeps" / "gpu-1.yaml", ["resources.gpu_share=memory"])
    for trial in study.trials:
        c = trial.config
        s = c.train.strategy
        shape = model_shape(c)
        est = estimate(c, shape)
        sized = sized_shares(c, shape)
        res, old = getattr(sized.resources, s), getattr(c.resources, s)
        r = c.resources
        want = math.ceil(est["train_mem_gib"] * r.share_margin / r.gpu_mem_gb * 100) / 100
        assert res.gpu == min(old.gpu, want) and 0 < res.gpu < old.gpu
        assert 0 < sized.attack.actor_gpus <= c.attack.actor_gpus
        assert sized.attack.actor_gpus * r.gpu_mem_gb >= est["gen_mem_gib"]
        assert stage_keys(sized) == stage_keys(c)
        bundles, _ = trial_resources(sized)
        assert bundles[0]["GPU"] == res.gpu  # the trial trains in its process (one GPU)
        assert all(b["GPU"] == sized.attack.actor_gpus for b in bundles[1:])
    # fixed shares, or a shape unknown offline: the configured fractions
    assert sized_shares(c, None) is c
    c.resources.gpu_share = "fixed"
    assert sized_shares(c, shape) is c
