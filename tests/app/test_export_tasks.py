"""export.py for every task: a user task and the built-in classifier on arrays get a SavedModel
with the signature the task declares and a model.keras, both loaded and run in a process that
cannot import looptrain; the weights are the best copy's (EMA averages when on)."""

import json
import os
import subprocess
import sys
import sysconfig

import numpy as np
import tensorflow as tf
from conftest import ROOT
from user_tasks import regression_file

from looptrain.cli import export_main, run_main, train_main

# Runs in `python -I -S` with only site-packages on the path: TensorFlow and Keras import, looptrain
# (an editable install, found through a .pth file that -S skips) does not.
CLEAN = """
import json, sys
sys.path.append({site!r})
try:
    import looptrain
    sys.exit("looptrain is importable")
except ImportError:
    pass
import numpy as np, tensorflow as tf, keras
x = np.load({inputs!r})
serve = tf.saved_model.load({out!r}).signatures["serving_default"]
(name,) = serve.structured_input_signature[1]
served = {{k: v.numpy().tolist() if v.dtype != tf.string else [b.decode() for b in v.numpy()]
          for k, v in serve(**{{name: tf.constant(x)}}).items()}}
model = keras.saving.load_model({out!r} + "/model.keras")
print(json.dumps({{"served": served, "keras": np.asarray(model(x)).tolist()}}))
"""


def load_elsewhere(out, inputs, tmp_path) -> dict:
    np.save(tmp_path / "inputs.npy", inputs)
    code = CLEAN.format(site=sysconfig.get_paths()["purelib"], inputs=str(tmp_path / "inputs.npy"),
                        out=str(out))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_user_task_exports_its_best_averaged_model_loadable_without_looptrain(tmp_path, capsys):
    task, run = f"{regression_file(tmp_path / 'mine')}:Regression", tmp_path / "run"
    assert run_main(train_main, ["--task", task, "--run-dir", str(run), "--max-steps", "60",
                                 "--eval-every", "20", "--set", "task.width=8",
                                 "--set", "train.ema_decay=0.9"]) == 0
    out = tmp_path / "export"
    assert run_main(export_main, ["--run-dir", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "signature serving_default takes ['float32 [None, 8]']" in printed
    info = json.loads((out / "export.json").read_text())
    assert info["keras"] == "functional" and info["checkpoint"].endswith(
        f"best-{json.loads((run / 'best' / 'best.json').read_text())['step']}")
    # The reference: the task's own model with the best (averaged) weights, in this process.
    from looptrain.app.experiment import make_user_task
    from looptrain.engine.checkpoint import restore_for_evaluation
    from looptrain.run import RunDir
    from looptrain.task import identity_of

    config = RunDir(run).load_config()
    mine = make_user_task(config)
    mine.build()
    restore_for_evaluation(mine, RunDir(run), "best", identity_of(mine))
    x = mine.test_data()[0][:16]
    expected = mine.model(x, training=False).numpy()
    got = load_elsewhere(out, x, tmp_path)
    np.testing.assert_allclose(got["served"]["outputs"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["keras"], expected, rtol=1e-5, atol=1e-6)


def test_the_builtin_classifier_on_arrays_exports_label_and_probabilities(image_dir, tmp_path):
    run = tmp_path / "run"
    assert run_main(train_main, ["--config", str(ROOT / "configs" / "mlp.toml"), "--data-dir",
                                 str(image_dir), "--run-dir", str(run), "--max-steps", "20",
                                 "--eval-every", "10", "--set", "model.hidden_dim=16"]) == 0
    out = tmp_path / "export"
    assert run_main(export_main, ["--run-dir", str(run), "--out", str(out)]) == 0
    x = np.load(image_dir / "test.npz")["x"][:8]
    got = load_elsewhere(out, x, tmp_path)
    labels = (run / "labels.txt").read_text().split()
    probabilities = np.asarray(got["served"]["probabilities"])
    assert probabilities.shape == (8, len(labels))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert got["served"]["label"] == [labels[i] for i in probabilities.argmax(axis=1)]
    np.testing.assert_allclose(tf.nn.softmax(np.asarray(got["keras"])).numpy(), probabilities,
                               rtol=1e-5, atol=1e-6)
    assert json.loads((out / "export.json").read_text())["keras"] == "functional"


def test_a_task_without_a_model_attribute_is_told_what_to_define_and_nothing_is_written(
        tmp_path, capsys):
    run = tmp_path / "run"
    task = f"{ROOT / 'examples' / 'gan.py'}:GAN"
    assert run_main(train_main, ["--task", task, "--run-dir", str(run), "--max-steps", "4",
                                 "--set", "task.width=8"]) == 0
    assert run_main(export_main, ["--run-dir", str(run), "--out", str(tmp_path / "x")]) == 2
    assert "GAN has no Keras 'model' attribute to export; define export_model()" in \
        capsys.readouterr().err
    assert not (tmp_path / "x").exists()
