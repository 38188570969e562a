"""A train stage that crashes mid-run continues from its last checkpoint with the loss
trajectory and final weights of an uninterrupted run (CPU, float32: exactly)."""

import json

import pytest
import torch

from memlab.components.models import load_trained
from memlab.components.training import CKPT
from tests.conftest import stage
from tests.unit.test_train_stage import _setup


class Crash(RuntimeError):
    pass


def _crash_at(step_to_fail: int):
    def on_loss(step, loss):
        if step == step_to_fail:
            raise Crash(f"simulated crash after step {step}")
    return on_loss


@pytest.mark.parametrize("strategy", ["head", "lora", "full"])
def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path, strategy):
    cfg, base, data = _setup(tmp_path, "llama", strategy, checkpoint_every=1, epochs=2)
    cfg.train.lora.dropout = 0.3  # resumed dropout masks must match too (RNG state restored)
    ref = stage("train", cfg, base=base, data=data, train=tmp_path / "ref")
    assert ref.manifest["resumed_from_step"] == 0
    ref_losses = json.loads((tmp_path / "ref" / "metrics.json").read_text())["losses"]
    assert len(ref_losses) == 6 and not (tmp_path / "ref" / CKPT).exists()

    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        stage("train", cfg, base=base, data=data, train=out, on_loss=_crash_at(3))
    assert (out / CKPT).is_dir() and not (out / "_MANIFEST.json").exists()

    seen = []
    man = stage("train", cfg, base=base, data=data, train=out,
                on_loss=lambda s, v: seen.append(s)).manifest
    assert man["resumed_from_step"] == 3 and seen == [3, 4, 5]
    losses = json.loads((out / "metrics.json").read_text())["losses"]
    assert losses == ref_losses
    assert not (out / CKPT).exists()  # removed once the stage finished
    a, _ = load_trained(tmp_path / "ref")
    b, _ = load_trained(out)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
