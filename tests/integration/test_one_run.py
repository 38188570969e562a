"""Issue 19, acceptance 5: two `memlab run`s of one sweep started at once: one runs, the other
is refused before it starts anything, with one line naming the running one."""

import subprocess
import time

from tests.conftest import ROOT
from tests.integration.conftest import SMOKE, memlab_exe


def test_a_second_run_of_the_same_sweep_is_refused(tmp_path):
    cmd = memlab_exe() + ["run", str(SMOKE), "--set", f"sweep.runs_root={tmp_path}",
                          "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        deadline = time.time() + 240
        while all(p.poll() is None for p in procs) and time.time() < deadline:
            time.sleep(0.5)
        ended = [p for p in procs if p.poll() is not None]
        assert ended, "neither run ended"
        refused = ended[0]
        out, err = refused.communicate()
        assert refused.returncode == 2, err[-2000:]
        lines = [x for x in err.splitlines() if x.startswith("error:")]
        assert len(lines) == 1 and "is already running" in lines[0] and "pid" in lines[0], err
        assert "Traceback" not in err
        running = [p for p in procs if p is not refused][0]
        assert running.poll() is None  # the first one is still at work
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=60)
