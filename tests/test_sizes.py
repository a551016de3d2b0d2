"""Sizes are checked before memory is allocated, with the limit and its reason in the message."""

import dataclasses
import re
import types

import numpy as np
import pytest

from looptrain.app.report_image import MAX_PIXELS, confusion_matrix_image
from looptrain.config import ModelConfig
from looptrain.engine import distribute
from looptrain.errors import ConfigError
from looptrain.models import build_model, create_model
from looptrain.models.conv_net import MAX_FILTERS


def _model(**fields):
    config = dataclasses.replace(ModelConfig(), **fields)
    kind = "arrays" if fields.get("name") == "convnet" else "text"
    return create_model(config, vocab_size=50, num_classes=3, data_kind=kind)


@pytest.mark.parametrize("fields, shape, message", [
    ({"name": "textcnn", "kernel_size": 5}, (4,),
     "'model.kernel_size' is 5, wider than 'data.seq_length' 4: the convolution has no position to "
     "slide to; lower model.kernel_size or raise data.seq_length"),
    ({"name": "multicnn", "kernel_sizes": "2,7"}, (6,),
     "'data.seq_length' is 6, shorter than the widest convolution ('model.kernel_sizes' 7); raise it "
     "or narrow the widths"),
    ({"name": "convnet", "num_filters": 16, "num_layers": 40}, (12, 12, 1),
     "model.num_layers = 40 with model.num_filters = 16 gives the last block 8,796,093,022,208 "
     f"filters (they double per block); at most {MAX_FILTERS:,}: use fewer layers or filters"),
])
def test_a_model_that_cannot_run_on_the_data_is_refused_before_any_weight(fields, shape, message):
    model = _model(**fields)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        build_model(model, shape, "float32" if len(shape) == 3 else "int32")
    assert not model.weights


def test_the_widest_model_that_fits_still_builds():
    build_model(_model(name="textcnn", kernel_size=4), (4,))


def test_logical_cpu_devices_and_replicas_have_limits():
    with pytest.raises(ConfigError, match=f"train.num_devices = 9: this host has no GPU, and at most "
                                          f"{distribute.MAX_LOGICAL_CPUS} logical CPU devices"):
        distribute.local_devices(9)
    four = types.SimpleNamespace(num_replicas_in_sync=4)
    distribute.check_replicas(four, 4)
    distribute.check_replicas(None, 1)
    with pytest.raises(ConfigError, match=r"train.batch_size = 3 is smaller than the 4 replicas"):
        distribute.check_replicas(four, 3)


@pytest.mark.parametrize("num_classes", [10, 300, 3000])
def test_a_confusion_image_stays_small_whatever_the_number_of_classes(num_classes):
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 9, (num_classes, num_classes))
    image = confusion_matrix_image(confusion, [f"c{i}" for i in range(num_classes)], title="t")
    assert image.shape[0] * image.shape[1] <= max(MAX_PIXELS, 2200 * 2200), image.shape
    assert image.dtype == np.uint8 and image.shape[2] == 3
