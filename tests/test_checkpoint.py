import pytest

from looptrain.errors import RunDirError
from looptrain.train.checkpoint import DataPosition, EarlyStopping


def test_early_stopping_on_a_scripted_metric_sequence():
    early = EarlyStopping(patience=300)
    script = [(100, 0.5), (200, 0.6), (300, 0.6), (400, 0.55), (500, 0.61), (600, 0.6),
              (700, 0.6), (800, 0.61)]
    seen = [(early.update(step, value), early.should_stop(step)) for step, value in script]
    # Equal is not better: 0.6 at 300 and 0.61 at 800 do not count as improvements.
    assert [improved for improved, _ in seen] == [True, True, False, False, True, False, False,
                                                  False]
    assert [stop for _, stop in seen] == [False] * 7 + [True]  # 800 - 500 >= 300
    assert int(early.best_step.numpy()) == 500 and float(early.best_value.numpy()) == 0.61


def test_data_position_is_recorded_and_checked_against_the_step():
    position = DataPosition()
    position.record(37, 16)
    assert (int(position.epoch.numpy()), int(position.batch.numpy())) == (2, 5)
    position.check(37, 16)
    with pytest.raises(RunDirError, match="epoch 2 batch 5, but the data now has 15 batches per "
                                          "epoch: the training data changed"):
        position.check(37, 15)
