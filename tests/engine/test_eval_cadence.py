"""At least one evaluation per epoch (train.eval_per_epoch): eval_every is capped at the steps per
epoch on small data sets, and unchanged when an epoch is longer (the reference TextCNN on cnews)."""

import re

import pytest

from conftest import ROOT
from looptrain import config as config_lib
from looptrain.app.experiment import train_and_evaluate


def evaluated_steps(run):
    log = (run / "train.log").read_text(encoding="utf-8")
    return [int(s) for s in re.findall(r"step +(\d+) +(?:epoch|ep) \d+/\d+ \|", log)]


@pytest.mark.parametrize("eval_every, per_epoch_rule, expected", [
    (1000, True, [16, 32, 40]),   # 250 examples / batch 16 = 16 steps per epoch: once per epoch
    (1000, False, [40]),          # the rule switched off: only at the end
    (5, True, [5, 10, 15, 20, 25, 30, 35, 40]),  # more often than once per epoch: unchanged
])
def test_evaluation_happens_at_least_once_per_epoch(eval_every, per_epoch_rule, expected, tiny_config,
                                                    tmp_path, quiet_display):
    config = tiny_config.replace({"train.max_steps": 40, "train.eval_every": eval_every,
                                  "train.checkpoint_every": 1000, "train.eval_per_epoch": per_epoch_rule})
    train_and_evaluate(config, tmp_path / "run", display=quiet_display)
    assert evaluated_steps(tmp_path / "run") == expected


def test_the_reference_textcnn_keeps_its_cadence_and_patience():
    train = config_lib.load_toml(ROOT / "configs" / "textcnn.toml").train
    assert (train.eval_every, train.patience, train.eval_per_epoch) == (100, 1000, True)
    # On cnews (50000 training texts, batch 64: 782 steps per epoch) the cap changes nothing.
    assert min(train.eval_every, -(-50000 // train.batch_size)) == 100
