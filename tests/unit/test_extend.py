"""Issue 34 part 4, second half: a longer training (more train.epochs, a constant learning rate)
continues the final state of a finished shorter one with otherwise the same settings
(train.extendable), and gives what training from step 0 gives; a schedule that decays over the
total steps, or any other changed setting, trains from step 0."""

import copy
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from memlab.components.training import lr_factor
from memlab.config.keys import stage_keys
from memlab.io.paths import stage_dir
from tests.conftest import stage
from tests.unit.test_train_stage import _setup


def test_lr_factor():
    f = lambda s, sched, warm=2, steps=10: lr_factor(s, warm, sched, steps)  # noqa: E731
    assert [f(s, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert [f(s, "linear") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1 / 8]
    assert f(2, "cosine") == 1.0 and f(9, "cosine") == pytest.approx(
        0.5 * (1 - math.cos(math.pi / 8)))
    # a decay depends on the total steps (a longer training's step 5 is another), constant not
    assert f(5, "linear", steps=10) != f(5, "linear", steps=20)
    assert f(5, "constant", steps=10) == f(5, "constant", steps=20)


def test_the_schedule_is_in_the_train_key_when_it_decays_and_extendable_in_none():
    from memlab.config.schema import StudyConfig

    cfg = StudyConfig()
    keys = stage_keys(cfg)
    cfg.train.extendable = "none"
    assert stage_keys(cfg) == keys
    cfg.train.lr_schedule = "linear"
    assert stage_keys(cfg).train != keys.train and stage_keys(cfg).data == keys.data


def _config(tmp_path, strategy="lora", **train):
    cfg, base, data = _setup(tmp_path, "llama", strategy, **train)
    cfg.sweep.runs_root = str(tmp_path / "runs")  # (the train folders named by their keys)
    return cfg, base, data


def _train(cfg, base, data, root=None, **train):
    """The train stage of `cfg` with `train` settings, in its folder under the runs root (or
    `root`), as a trial runs it."""
    cfg = copy.deepcopy(cfg)
    if root is not None:
        cfg.sweep.runs_root = str(root)  # (not in any key)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    folder = stage_dir(cfg, "train", stage_keys(cfg).train)
    return stage("train", cfg, base=base, data=data, train=folder)


def _weights(model_dir) -> dict:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


def _same_model(a, b):
    """The same weights, bit for bit (CPU, float32: the same operations in the same order)."""
    wa, wb = _weights(a), _weights(b)
    assert wa and wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("strategy,extendable,warmup", [
    ("lora", "adapters", 0), ("head", "all", 5), ("full", "all", 2)])
def test_extending_gives_what_training_from_step_0_gives(tmp_path, capsys, strategy,
                                                         extendable, warmup):
    """1 epoch (3 steps), then 3 epochs: the longer training continues the shorter one's
    final state from step 3 and ends where 3 epochs trained from step 0 end (weights, losses);
    its manifest (and so result.json) says where it started, the log says it; the evaluation
    points before step 3 are the shorter training's exports, the one at step 3 its final
    model. A warm-up counts steps: one that ends after the shorter training's last step
    continues too (the schedule's state is in the final state)."""
    cfg, base, data = _config(tmp_path, strategy, extendable=extendable, eval_every=1,
                              warmup_steps=warmup)
    if strategy == "head":
        cfg.train.head.lr = 1e-2
    short = _train(cfg, base, data, epochs=1)
    assert short.manifest["train_steps"] == 3
    assert json.loads((short.folder / "final_state" / "done.json").read_text())["step"] == 3
    capsys.readouterr()
    longer = _train(cfg, base, data, epochs=3)
    err = capsys.readouterr().err
    assert f"train: extending {short.folder.name} from step 3" in err, err
    assert longer.manifest["extended_from"] == {"key": short.folder.name, "step": 3,
                                                "epochs": 1}
    assert longer.manifest["resumed_from_step"] == 0
    scratch = _train(cfg, base, data, root=tmp_path / "scratch", epochs=3)
    assert scratch.folder.name == longer.folder.name  # (the same key)
    assert "extended_from" not in scratch.manifest
    a, b = (json.loads((o.folder / "metrics.json").read_text()) for o in (longer, scratch))
    assert a["losses"][:3] == json.loads((short.folder / "metrics.json").read_text())["losses"]
    assert a["losses"] == b["losses"]
    assert longer.manifest["train_steps"] == scratch.manifest["train_steps"] == 9
    assert longer.manifest["train_sequences"] == scratch.manifest["train_sequences"]
    _same_model(longer.folder / "model", scratch.folder / "model")
    for step in range(1, 9):  # 1, 2: the shorter training's (hard links); 3: its final model
        _same_model(longer.folder / "at" / str(step) / "model",
                    scratch.folder / "at" / str(step) / "model")
    one = next((longer.folder / "at" / "1" / "model").glob("*.safetensors"))
    src = short.folder / "at" / "1" / "model" / one.name
    assert one.stat().st_ino == src.stat().st_ino
    # the longer training keeps its own final state: a 4-epoch one continues it
    assert (longer.folder / "final_state" / "done.json").is_file()
    assert not (longer.folder / "ckpt").exists()  # (its scratch, gone)


def test_a_decaying_schedule_trains_from_step_0_and_says_why(tmp_path, capsys):
    cfg, base, data = _config(tmp_path, lr_schedule="linear")
    short = _train(cfg, base, data, epochs=1)
    assert not (short.folder / "final_state").exists()  # (it could not be continued)
    capsys.readouterr()
    longer = _train(cfg, base, data, epochs=2)
    lines = [x for x in capsys.readouterr().err.splitlines() if "not extending" in x]
    assert len(lines) == 1 and short.folder.name in lines[0], lines
    assert "train.lr_schedule=linear decays over the trial's total steps" in lines[0]
    assert "extended_from" not in longer.manifest and longer.manifest["train_steps"] == 6


def test_a_crash_during_the_extension_resumes_from_its_own_checkpoint(tmp_path, capsys,
                                                                      monkeypatch):
    from memlab.components.training import TorchSetup

    cfg, base, data = _config(tmp_path, checkpoint_every=2)
    short = _train(cfg, base, data, epochs=1)
    step, calls = TorchSetup.step, []

    def crashing(self, parts, empty):
        calls.append(1)
        if len(calls) == 4:  # steps 4, 5, 6 done (a checkpoint after 4 and 6): a lost node
            raise RuntimeError("node lost")
        return step(self, parts, empty)
    monkeypatch.setattr(TorchSetup, "step", crashing)
    with pytest.raises(RuntimeError, match="node lost"):
        _train(cfg, base, data, epochs=3)
    monkeypatch.setattr(TorchSetup, "step", step)
    capsys.readouterr()
    longer = _train(cfg, base, data, epochs=3)
    err = capsys.readouterr().err
    assert "resuming from the checkpoint of step 6" in err and "extending" not in err, err
    assert longer.manifest["resumed_from_step"] == 6
    assert longer.manifest["extended_from"] == {"key": short.folder.name, "step": 3,
                                                "epochs": 1}
    scratch = _train(cfg, base, data, root=tmp_path / "scratch", epochs=3)
    _same_model(longer.folder / "model", scratch.folder / "model")
    a, b = (json.loads((o.folder / "metrics.json").read_text())["losses"]
            for o in (longer, scratch))
    assert a == b


def test_only_a_training_that_differs_by_its_epochs_is_extended(tmp_path, capsys):
    """The shorter training is found by its key: any other changed setting (the learning
    rate, the data, the seed, the batch) names another training, never extended."""
    from memlab.components.extend import shorter_training
    from memlab.stages.work import TrialContext, upstream_of

    cfg, base, data = _config(tmp_path)
    short = _train(cfg, base, data, epochs=1)

    def found(sets=()):
        c = copy.deepcopy(cfg)
        c.train.epochs = 2
        for dotted, v in dict(sets).items():
            *path, name = dotted.split(".")
            owner = c
            for p in path:
                owner = getattr(owner, p)
            setattr(owner, name, v)
        folder = stage_dir(c, "train", stage_keys(c).train)
        ctx = TrialContext(c, {"data": data, "train": folder}, base_model=base)
        return shorter_training(c, upstream_of(ctx, "train"), folder)

    ext = found()
    assert (ext.key, ext.step, ext.epochs) == (short.folder.name, 3, 1)
    for sets in ({"train.lora.lr": 1e-3}, {"train.weight_decay": 0.1},
                 {"train.batch_size": 3}, {"data.dup_factor": 2}, {"train.seq_len": 16},
                 {"seed": cfg.seed + 1}, {"model.tiny.layers": 3}, {"train.max_steps": 5}):
        assert found(sets) is None, sets
    # not kept: train.extendable=none, or full weights under the default (adapters)
    none = _train(cfg, base, data, epochs=1, extendable="none", lr_schedule="constant",
                  weight_decay=0.01)
    assert not (none.folder / "final_state").exists()
    capsys.readouterr()
    assert found({"train.weight_decay": 0.01}) is None
    assert "kept no final state" in capsys.readouterr().err
