"""Crash and resume: the sweep driver killed with SIGKILL mid-sweep, then `memlab run
--resume` finishes the sweep without recomputing anything that had finished, and ends with the
metrics of an uninterrupted run of the same sweep."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import SMOKE, memlab_exe


def _finished_files(root):
    """mtime of every file of a finished stage (a stage folder whose manifest exists), of every
    finished shard, and of every finished trial's result.json."""
    out = {}
    for man in root.rglob("_MANIFEST.json"):
        for p in man.parent.rglob("*"):
            if p.is_file() and p.suffix != ".lock":  # locks are taken, not work redone
                out[p.relative_to(root)] = p.stat().st_mtime_ns
    for p in root.rglob("part-*.parquet"):  # shards are written atomically: present = finished
        out[p.relative_to(root)] = p.stat().st_mtime_ns
    for p in root.glob("*/*/result.json"):  # <runs>/<sweep>/<trial>/
        out[p.relative_to(root)] = p.stat().st_mtime_ns
    return out


@pytest.mark.slow  # three smoke sweeps' worth of work: ~5 min on 2 cores (CI runs it)
def test_driver_sigkill_mid_sweep_then_resume(tmp_path, smoke_sweep):
    runs = tmp_path / "runs"
    cmd = memlab_exe() + ["run", str(SMOKE), "--set", f"sweep.runs_root={runs}"]
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    root = runs / "smoke"
    deadline = time.time() + 900
    # kill once one trial has finished and the next has started its work
    while time.time() < deadline and driver.poll() is None:
        done = list(root.glob("*/result.json"))
        started = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")
                   and not (p / "result.json").exists()] if root.is_dir() else []
        if done and started:
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the sweep ended before it could be interrupted"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # the machine of the driver is gone: so are the local Ray processes it had started
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(2)
    log.close()
    finished = _finished_files(runs)
    trials_done = {p.parent.name for p in root.glob("*/result.json")}
    assert 1 <= len(trials_done) < len(smoke_sweep["study"].trials)

    resume = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=ROOT,
                            timeout=900)
    assert resume.returncode == 0, resume.stdout[-3000:] + resume.stderr[-3000:]
    after = _finished_files(runs)
    rewritten = {p for p, t in finished.items() if after.get(p) != t}
    assert not rewritten, f"finished work was redone: {sorted(map(str, rewritten))[:10]}"

    ref = smoke_sweep["runs"] / "smoke"
    for t in smoke_sweep["study"].trials:
        got = json.loads((root / t.key / "result.json").read_text())["metrics"]
        want = json.loads((ref / t.key / "result.json").read_text())["metrics"]
        timing = {"train_time_s", "train_tokens_per_s"}
        assert {k: v for k, v in got.items() if k not in timing} == \
            {k: v for k, v in want.items() if k not in timing}, t.name
