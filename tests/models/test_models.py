import keras
import numpy as np
import pytest

from looptrain.config import ModelConfig
from looptrain.errors import ConfigError
from looptrain.models import build_model, create_model, registered_names
from conftest import untracked

V, C, L = 50, 4, 12


def test_both_reference_models_are_registered():
    assert {"textcnn", "textrnn"} <= set(registered_names())


def test_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'model.name' is 'bert', which is not a registered model "
                                          r"\(registered: birnn, convnet, fasttext, fasttext_ngrams, mlp, "
                                          r"multicnn, textcnn, textrnn, tfidf\)"):
        create_model(ModelConfig(name="bert"), vocab_size=V, num_classes=C)


def test_textcnn_shape_and_closed_form_parameter_count():
    cfg = ModelConfig(embedding_dim=6, num_filters=7, kernel_size=3, hidden_dim=5)
    model = build_model(create_model(cfg, vocab_size=V, num_classes=C), L)
    assert model(np.ones((2, L), np.int32)).shape == (2, C)
    E, F, k, H = 6, 7, 3, 5
    assert model.count_params() == V * E + (k * E * F + F) + (F * H + H) + (H * C + C)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_textrnn_shape_and_padding_is_masked(cell):
    cfg = ModelConfig(name="textrnn", embedding_dim=6, hidden_dim=8, rnn_cell=cell, num_layers=2)
    model = build_model(create_model(cfg, vocab_size=V, num_classes=C), L)
    tokens = [5, 9, 3, 7]
    short = np.array([tokens + [0] * 2], np.int32)
    long = np.array([tokens + [0] * 20], np.int32)
    bare = np.array([tokens], np.int32)
    out = model(short).numpy()
    assert out.shape == (1, C)
    np.testing.assert_allclose(model(long).numpy(), out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model(bare).numpy(), out, rtol=1e-6, atol=1e-6)
    # ...while the text itself matters (the mask does not hide everything).
    assert not np.allclose(model(np.array([[7, 3, 9, 5, 0, 0]], np.int32)).numpy(), out)


def test_lstm_parameter_count_matches_closed_form():
    E, H = 6, 8
    cfg = ModelConfig(name="textrnn", embedding_dim=E, hidden_dim=H, num_layers=2)
    model = build_model(create_model(cfg, vocab_size=V, num_classes=C), L)
    lstm = lambda n, m: 4 * ((n + m) * m + m)  # noqa: E731  4((n+m)m+m), n inputs, m units
    assert model.count_params() == V * E + lstm(E, H) + lstm(H, H) + (H * H + H) + (H * C + C)


class _ListModel(keras.Model):
    """Holds its layers in a plain list: Keras trains them, tf.train.Checkpoint cannot see them."""

    def __init__(self):
        super().__init__()
        self.stack = [keras.layers.Dense(3), keras.layers.Dense(2)]

    def call(self, x, training=False):
        for layer in self.stack:
            x = layer(x)
        return x


@pytest.mark.parametrize("name", ["textcnn", "textrnn"])
def test_every_model_variable_is_checkpointed(name):
    model = build_model(create_model(ModelConfig(name=name, embedding_dim=4, hidden_dim=4,
                                                 num_filters=4, kernel_size=2),
                                     vocab_size=V, num_classes=C), L)
    # tf.train.Checkpoint reaches every weight; only the dropout seeds need the explicit save.
    assert all(key.endswith("seed_generator_state") for key in untracked(model))


def test_a_model_whose_layers_tracking_misses_is_still_checkpointed_whole(tmp_path):
    import tensorflow as tf

    model = _ListModel()
    model(np.ones((1, 4), np.float32))
    extra = untracked(model)
    # Keyed by the innermost layer tracking reaches (here the model) and the variable's name.
    assert sorted(extra) == ["model/bias", "model/bias_2", "model/kernel", "model/kernel_2"]
    saved = [v.numpy().copy() for v in model.variables]
    path = tf.train.Checkpoint(model=model, untracked=extra).save(str(tmp_path / "ckpt"))
    for v in model.variables:
        v.assign(tf.zeros_like(v))
    tf.train.Checkpoint(model=model, untracked=extra).restore(path).assert_existing_objects_matched()
    for v, old in zip(model.variables, saved):
        np.testing.assert_array_equal(v.numpy(), old)
