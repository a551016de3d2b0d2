"""`benchmarks/fit_reference.py --steps N`: the Keras `fit` job `startup.py` times against
`scripts/train.py --max-steps N` trains N steps, also past the end of an epoch."""

import json
import os
import subprocess
import sys
import time

from conftest import ROOT


def test_a_short_job_runs_exactly_n_steps_across_epochs(tmp_path, corpus_dir):
    # Batches of 100 of the small corpus's 250 training texts: 3 per epoch, so 7 steps cross two
    # epochs' ends; `fit` on arrays with steps_per_epoch = 7 stopped at 3 ("ran out of data").
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    began = time.time()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fit_reference.py"),
                           "--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir", str(corpus_dir),
                           "--set", "train.batch_size=100", "--steps", "7",
                           "--save", str(tmp_path / "fit.weights.h5")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 7
    # tiny.toml logs every 5 steps: the fit script marks the end of step 5, as looptrain logs it.
    assert result["first_logged_step"] == 5 and began < result["first_logged_step_time"] < time.time()
    assert (tmp_path / "fit.weights.h5").is_file()
