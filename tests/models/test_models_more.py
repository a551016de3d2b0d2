"""The MLP, ConvNet, BiRNN, MultiCNN and fastText models: shapes, closed-form parameter counts,
masking, batch-norm statistics, the custom layer, and exact resume through the training loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from looptrain.config import ModelConfig
from looptrain.data.pipeline import make_eval_dataset, make_train_dataset
from looptrain.errors import ConfigError
from looptrain.models import build_model, create_model, registered_names
from looptrain.models.layers import CharNgramBag, masked_max_over_time
from conftest import given_task, make_call, untracked
from looptrain.app.experiment import train_and_evaluate
from looptrain.engine.evaluation import Evaluator
from looptrain.tasks.classification import make_optimizer

V, C, L = 50, 4, 12
SMALL = dict(embedding_dim=6, hidden_dim=8, num_filters=5, kernel_size=3, ngram_buckets=40)
# name -> (data kind, example shape, dtype)
INPUTS = {"mlp": ("arrays", (7,), "float32"), "convnet": ("arrays", (9, 9, 2), "float32"),
          "birnn": ("text", L, "int32"), "multicnn": ("text", L, "int32"),
          "fasttext": ("text", L, "int32")}


def make(name, **fields):
    kind, shape, dtype = INPUTS[name]
    cfg = ModelConfig(name=name, **{**SMALL, **fields})
    return build_model(create_model(cfg, vocab_size=V, num_classes=C, data_kind=kind), shape, dtype)


def test_the_new_models_are_registered():
    assert set(INPUTS) <= set(registered_names())


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_model_gives_logits_and_is_fully_checkpointed(name):
    model = make(name, spatial_dropout=0.2)
    _, shape, dtype = INPUTS[name]
    shape = (shape,) if isinstance(shape, int) else shape
    x = np.ones((3, *shape), dtype)
    assert model(x, training=False).shape == (3, C)
    # tf.train.Checkpoint reaches every weight, and every dropout layer's random state goes into
    # the checkpoint explicitly (exact resume needs it).
    extra = untracked(model)
    assert extra and all(key.endswith("seed_generator_state") for key in extra)


@pytest.mark.parametrize("cell, per_direction", [
    ("lstm", lambda i, u: 4 * (u * (u + i) + u)),
    ("gru", lambda i, u: 3 * (u * (u + i) + 2 * u)),  # Keras 3 default reset_after=True: 2 biases
])
def test_bidirectional_rnn_parameter_counts_match_closed_forms(cell, per_direction):
    E, H = 6, 8
    model = make("birnn", rnn_cell=cell, num_layers=2)
    assert model.rnn_0.count_params() == 2 * per_direction(E, H)
    assert model.rnn_1.count_params() == 2 * per_direction(2 * H, H)  # input: both directions
    assert model.count_params() == (V * E + 2 * per_direction(E, H) + 2 * per_direction(2 * H, H)
                                    + (2 * H * H + H) + (H * C + C))


def test_conv_parameter_counts_match_closed_forms():
    E, F = 6, 5
    multi = make("multicnn", kernel_sizes="2,3,5")
    widths = (2, 3, 5)
    for i, k in enumerate(widths):  # Conv1D: k * inputs * filters + filters
        assert getattr(multi, f"conv_{i}").count_params() == k * E * F + F
    assert multi.count_params() == V * E + sum(k * E * F + F for k in widths) + (3 * F * C + C)

    k, c_in, H = 3, 2, 8
    conv = make("convnet", num_layers=2)
    # Conv2D without bias (batch norm follows): k * k * in_channels * filters.
    assert conv.conv_0.count_params() == k * k * c_in * F
    assert conv.conv_1.count_params() == k * k * F * (2 * F)
    assert conv.norm_0.count_params() == 4 * F and len(conv.norm_0.trainable_weights) == 2
    flat = 3 * 3 * 2 * F  # 9x9 -> 5x5 -> 3x3 ("same" pooling), 2F channels
    assert conv.count_params() == (k * k * c_in * F + 4 * F + k * k * F * 2 * F + 4 * 2 * F
                                   + (flat * H + H) + (H * C + C))


def test_mlp_and_fasttext_parameter_counts():
    assert make("mlp", num_layers=2).count_params() == (7 * 8 + 8) + (8 * 8 + 8) + (8 * C + C)
    E, B = 6, 40
    assert make("fasttext", ngram_max=3).count_params() == V * E + B * E + (E * C + C)
    assert make("fasttext", ngram_max=1).count_params() == V * E + (E * C + C)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_output_does_not_depend_on_padding(cell):
    model = make("birnn", rnn_cell=cell, num_layers=2, spatial_dropout=0.3)
    tokens = [5, 9, 3, 7]
    out = model(np.array([tokens + [0] * 2], np.int32)).numpy()
    for padded in ([tokens], [tokens + [0] * 20], [tokens + [0] * 60]):
        np.testing.assert_allclose(model(np.array(padded, np.int32)).numpy(), out, rtol=1e-5, atol=1e-6)
    # The backward direction sees the text too: reversing it changes the output.
    assert not np.allclose(model(np.array([tokens[::-1] + [0] * 2], np.int32)).numpy(), out, atol=1e-4)


def test_masked_max_over_time_ignores_padding_steps():
    h = tf.constant([[[-3.0, 1.0], [-2.0, 0.5], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = tf.constant([[True, True, False], [False, False, False]])
    # The padding step's zeros would win over -2; an all-padding text pools to zeros, not -inf.
    np.testing.assert_array_equal(masked_max_over_time(h, mask).numpy(), [[-2.0, 1.0], [0.0, 0.0]])


def test_char_ngram_bag_ignores_padding_and_ngrams_carry_order():
    bag = CharNgramBag(vocab_size=V, num_buckets=97, dim=4, ngram_max=3)
    text = [5, 9, 3, 7, 9]
    short, long = np.array([text + [0] * 3], np.int32), np.array([text + [0] * 30], np.int32)
    np.testing.assert_allclose(bag(short).numpy(), bag(long).numpy(), rtol=1e-6)
    assert not np.allclose(bag(np.array([text[::-1] + [0] * 3], np.int32)).numpy(), bag(short).numpy())
    unigrams = CharNgramBag(vocab_size=V, num_buckets=97, dim=4, ngram_max=1)
    # Characters alone are a bag: the order of the text does not matter.
    np.testing.assert_allclose(unigrams(np.array([text[::-1] + [0] * 3], np.int32)).numpy(),
                               unigrams(short).numpy(), rtol=1e-6)
    # An all-padding text averages nothing: zeros, not NaN.
    np.testing.assert_array_equal(bag(np.zeros((1, 8), np.int32)).numpy(), np.zeros((1, 4)))


def test_char_ngram_bag_hashes_within_the_text_and_round_trips_its_config():
    bag = CharNgramBag(vocab_size=V, num_buckets=13, dim=4, ngram_max=2,
                       regularizer=keras.regularizers.L2(0.1))
    ids = tf.constant([[4, 8, 8, 0, 0], [4, 8, 1, 2, 6]])
    buckets, inside = bag.hash_ngrams(ids, 2)
    assert buckets.shape == (2, 4) and np.all((buckets.numpy() >= 0) & (buckets.numpy() < 13))
    np.testing.assert_array_equal(inside.numpy(), [[1, 1, 0, 0], [1, 1, 1, 1]])
    assert buckets[0, 0] == buckets[1, 0]  # the same bigram (4, 8) -> the same bucket
    bag(ids)
    penalty = 0.1 * sum(float(tf.reduce_sum(tf.square(w))) for w in bag.weights)
    assert float(tf.add_n(bag.losses)) == pytest.approx(penalty, rel=1e-5)  # both tables
    clone = CharNgramBag.from_config(bag.get_config())
    assert clone.get_config() == bag.get_config()
    assert (clone.num_buckets, clone.ngram_max, clone.dim) == (13, 2, 4)
    assert clone.regularizer.get_config() == {"l2": pytest.approx(0.1)}


def test_batch_norm_statistics_change_in_training_steps_only(image_dir):
    from looptrain.data.arrays import load_arrays

    _, splits = load_arrays(image_dir)
    model = build_model(create_model(ModelConfig(name="convnet", num_filters=4, kernel_size=3,
                                                 num_layers=1, hidden_dim=8),
                                     vocab_size=0, num_classes=8, data_kind="arrays"), (12, 12, 1), "float32")
    stats = [model.norm_0.moving_mean, model.norm_0.moving_variance]
    before = [v.numpy().copy() for v in stats]
    task = given_task(model, make_optimizer(learning_rate=1e-3, clip_norm=0.0))
    dataset = make_eval_dataset(splits["val"], batch_size=16)
    Evaluator(task, dataset.element_spec)(dataset)
    model(splits["test"][0], training=False)
    for value, old in zip(stats, before):
        np.testing.assert_array_equal(value.numpy(), old)
    call, iterator = make_call(task, make_train_dataset(splits["train"], batch_size=16, seed=1,
                                                        num_epochs=1))
    call(iterator, 1, log=False)
    for value, old in zip(stats, before):
        assert not np.allclose(value.numpy(), old)


def test_model_and_data_kinds_must_match():
    with pytest.raises(ConfigError, match=r"'model.name' is 'textcnn', a model for text .* but the data "
                                          r"is arrays \(.npz files\); models for it: convnet, mlp"):
        create_model(ModelConfig(name="textcnn"), vocab_size=0, num_classes=C, data_kind="arrays")
    with pytest.raises(ConfigError, match=r"models for it: birnn, fasttext, fasttext_ngrams, multicnn, "
                                          r"textcnn, textrnn, tfidf"):
        create_model(ModelConfig(name="mlp"), vocab_size=V, num_classes=C, data_kind="text")
    convnet = create_model(ModelConfig(name="convnet"), vocab_size=0, num_classes=C, data_kind="arrays")
    with pytest.raises(ConfigError, match=r"expects examples of rank 3 \(\[height, width, channels\]\), "
                                          r"but the data's examples have shape \[20\]"):
        build_model(convnet, (20,), "float32")


def test_multicnn_refuses_sequences_shorter_than_its_widest_filter():
    with pytest.raises(ConfigError, match="'data.seq_length' is 4, shorter than the widest convolution"):
        build_model(create_model(ModelConfig(name="multicnn", kernel_sizes="3,5"), vocab_size=V,
                                 num_classes=C), 4)


# Tiny runs of every new model, each with some of the training tools on, so that resuming is shown
# to be exact for all of them together (schedules, accumulation, smoothing, weights, penalties).
RESUME_CASES = {
    "mlp": {"model.hidden_dim": 8, "model.num_layers": 2, "model.l2": 1e-3,
            "train.lr_schedule": "cosine", "train.warmup_steps": 3, "train.lr_decay_steps": 10},
    "convnet": {"model.num_filters": 4, "model.kernel_size": 3, "model.num_layers": 2,
                "model.hidden_dim": 8, "train.num_micro_batches": 2, "train.clip_norm": 1.0},
    "birnn": {"model.hidden_dim": 6, "model.num_layers": 1, "model.spatial_dropout": 0.2,
              "data.seq_length": 24, "train.label_smoothing": 0.1, "train.class_weights": "balanced"},
    "multicnn": {"model.num_filters": 6, "model.kernel_sizes": "2,3", "model.l1": 1e-4,
                 "train.lr_schedule": "exponential", "train.lr_decay_steps": 4},
    "fasttext": {"model.ngram_buckets": 64, "model.ngram_max": 3, "model.dropout": 0.3,
                 "train.num_micro_batches": 3},
}


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_every_model_resumes_exactly(name, tiny_config, image_dir, tmp_path, quiet_display):
    config = tiny_config.replace({
        "model.name": name, "data.seq_length": 32, "train.eval_every": 5, "train.checkpoint_every": 5,
        "train.log_every": 5, **RESUME_CASES[name]})
    if INPUTS[name][0] == "arrays":
        config = config.replace({"data.data_dir": str(image_dir)})
    split, straight = tmp_path / "split", tmp_path / "straight"
    # 5 steps stop mid-epoch (16 batches per epoch of text, 8 of images); 12 cross an epoch (images).
    train_and_evaluate(config.replace({"train.max_steps": 5}), split, display=quiet_display)
    resumed = train_and_evaluate(config.replace({"train.max_steps": 12}), split, resume=True,
                                 display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (12, 7)
    train_and_evaluate(config.replace({"train.max_steps": 12}), straight, display=quiet_display)
    got = tf.train.latest_checkpoint(str(split / "checkpoints"))
    ref = tf.train.latest_checkpoint(str(straight / "checkpoints"))
    names = [n for n, _ in tf.train.list_variables(ref)
             if n.endswith("VARIABLE_VALUE") and not n.startswith("save_counter")]
    assert any(n.startswith("untracked/") and "seed_generator_state" in n for n in names)
    assert any(n.startswith("task/model/") for n in names)
    for var in names:
        np.testing.assert_array_equal(tf.train.load_variable(got, var), tf.train.load_variable(ref, var),
                                      err_msg=var)


def test_keras_layer_names_are_unique_per_model():
    # Duplicate widths would otherwise give two layers one name (Keras refuses that on saving).
    model = make("multicnn", kernel_sizes="3,3")
    assert len({layer.name for layer in model.layers}) == len(model.layers)
