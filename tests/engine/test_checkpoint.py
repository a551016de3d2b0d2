import pytest

from looptrain.callbacks.best import Best, infer_mode
from looptrain.callbacks.early_stopping import EarlyStopping
from looptrain.data.sources import DataPosition
from looptrain.errors import RunDirError


def test_early_stopping_on_a_scripted_metric_sequence():
    best = Best("val/accuracy")
    early = EarlyStopping(best, patience=300)
    script = [(100, 0.5), (200, 0.6), (300, 0.6), (400, 0.55), (500, 0.61), (600, 0.6),
              (700, 0.6), (800, 0.61)]
    seen = [(best.consider(step, {"val/accuracy": value}), early.should_stop(step))
            for step, value in script]
    # Equal is not better: 0.6 at 300 and 0.61 at 800 do not count as improvements.
    assert [improved for improved, _ in seen] == [True, True, False, False, True, False, False,
                                                  False]
    assert [stop for _, stop in seen] == [False] * 7 + [True]  # 800 - 500 >= 300
    assert best.best_step == 500 and best.best_value == 0.61


def test_a_minimised_metric_and_the_inferred_mode():
    best = Best("val/mse", min_delta=0.01)
    assert best.mode == "min"
    assert [best.consider(s, {"val/mse": v}) for s, v in [(1, 1.0), (2, 0.995), (3, 0.5)]] == [
        True, False, True]
    assert best.consider(3, {"val/mse": 9.0}) is True  # one answer per step
    assert best.consider(4, {"train/loss": 0.1}) is None  # not the monitored metric
    assert [infer_mode(m) for m in ("val/accuracy", "val/f1", "train/loss", "val/mse")] == [
        "max", "max", "min", "min"]


def test_data_position_is_recorded_and_checked_against_the_step():
    position = DataPosition(16)
    position.record(37)
    assert (int(position.epoch.numpy()), int(position.batch.numpy())) == (2, 5)
    position.check(37)
    with pytest.raises(RunDirError, match="epoch 2 batch 5, but the data now has 15 batches per "
                                          "epoch: the training data changed"):
        _recorded(position, 15).check(37)


def _recorded(position, steps_per_epoch):
    other = DataPosition(steps_per_epoch)
    other.epoch.assign(position.epoch)
    other.batch.assign(position.batch)
    return other
