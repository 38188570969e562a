"""Issue 34 part 4 (CPU): a longer training continues a shorter one, through real sweeps.

The smoke study on LoRA (tiny Llama, 9 optimizer steps an epoch) with an evaluation point
every 3 steps, run with 1 epoch, then with 2: the second run's train stage continues the first
one's final state from step 9 (the log and result.json say it), takes its points at steps 3
and 6 from it (hard links) and exports step 9 from the state it loaded; the points then get
stages of their own, and the trial its record, as any trial does.
"""

import json

import pytest

from memlab.io.paths import stage_dir
from tests.integration.test_checkpoints_e2e import lora_smoke, run_sweep

pytestmark = pytest.mark.slow


def test_a_sweep_with_more_epochs_extends_the_finished_one(tmp_path_factory):
    path = lora_smoke(tmp_path_factory, "extend")
    runs = tmp_path_factory.mktemp("runs")
    first = run_sweep(path, runs, ["train.epochs=1", "train.eval_every=3"])
    (short,) = first["study"].trials
    second = run_sweep(path, runs, ["train.epochs=2", "train.eval_every=3"])
    (longer,) = second["study"].trials
    log = second["stdout"] + second["stderr"]
    assert f"train: extending {short.keys.train} from step 9" in log, log[-3000:]
    result = json.loads((runs / "extend" / longer.key / "result.json").read_text())
    assert result["extended_from"] == {"key": short.keys.train, "step": 9, "epochs": 1}
    assert result["train"]["train_steps"] == 18
    assert [p["step"] for p in result["checkpoints"]] == [3, 6, 9, 12, 15]
    train = stage_dir(longer.config, "train", longer.keys.train)
    parent = stage_dir(short.config, "train", short.keys.train)
    for step in (3, 6):  # the shorter training's exports
        (f,) = (train / "at" / str(step) / "model").glob("*.safetensors")
        assert f.stat().st_ino == (parent / "at" / str(step) / "model" / f.name).stat().st_ino
    (f,) = (train / "at" / "9" / "model").glob("*.safetensors")  # its final model, exported
    assert f.read_bytes() == (parent / "model" / f.name).read_bytes()  # from the loaded state
    assert (train / "final_state" / "done.json").is_file()
