"""The tfidf and fasttext_ngrams models: n-grams, IDF and NB log-count ratios from adapt(), the
character and word blocks normalised apart, training through the loop, the adapted state in
checkpoints and the best copy, exact resume, predict and export on raw strings."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_same_variables, untracked, write_data
from looptrain.app.experiment import make_classifier, train_and_evaluate
from looptrain.app.export import export_run
from looptrain.app.predict import Predictor
from looptrain.config import ModelConfig
from looptrain.data.corpus import Corpus
from looptrain.data.text import encode_texts, read_examples
from looptrain.errors import ConfigError
from looptrain.models import build_model, create_model
from looptrain.models.tfidf import log_count_ratios
from looptrain.task import use_jit

WORDS = {"sport": "goal match team coach league", "money": "bank stock price market trade",
         "food": "rice soup bread cook taste"}
FILLER = "the a of and to in is it on for with".split()
# What configs/tfidf.toml ships: NB-scaled weights over character and word blocks normalised apart.
SHIPPED = {"model.nb_ratio": True, "model.norm_per_kind": True}


def english_lines(rng, count):
    """Short texts of filler words and one or two topic words: a label<TAB>text block."""
    lines = []
    for _ in range(count):
        label = rng.choice(sorted(WORDS))
        words = list(rng.choice(FILLER, size=rng.integers(4, 9)))
        for word in rng.choice(WORDS[label].split(), size=rng.integers(1, 3)):
            words.insert(rng.integers(0, len(words) + 1), word)
        lines.append(f"{label}\t{' '.join(words)}\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def english_dir(tmp_path_factory):
    rng = np.random.default_rng(3)
    return write_data(tmp_path_factory.mktemp("data") / "english", english_lines(rng, 240),
                      english_lines(rng, 60), english_lines(rng, 60))


def tfidf_config(tiny_config, data_dir, **overrides):
    return tiny_config.replace({
        "data.data_dir": str(data_dir), "data.seq_length": 64, "model.name": "tfidf",
        "model.char_ngram_max": 3, "model.word_ngram_max": 2, "model.max_features": 3000,
        "model.min_df": 2, "model.dropout": 0.2, "model.l2": 1e-5, "train.learning_rate": 0.05,
        "train.max_steps": 40, "train.eval_every": 10, "train.checkpoint_every": 10, **overrides})


def test_adapt_learns_the_vocabulary_and_idf_and_the_bag_is_tfidf():
    vocab = ["<PAD>", "a", "b", " ", "c"]
    texts = ["ab ab", "ab c", "c"]
    x = encode_texts(texts, vocab, 8)
    cfg = ModelConfig(name="tfidf", char_ngram_max=2, word_ngram_max=1, max_features=50, min_df=1)
    model = build_model(create_model(cfg, vocab_size=len(vocab), num_classes=2), 8)
    model.adapt(x, vocab=vocab)
    np.testing.assert_array_equal(model.separators.numpy(), [0, 0, 0, 1, 0])
    used = model.keys.numpy() < np.iinfo(np.int64).max
    # a b " " c ab "b " " a" " c" = 8 character n-grams, words "ab" "c": 10 features.
    assert used.sum() == 10 and np.all(np.diff(model.keys.numpy()[used]) > 0)
    rows, index, weight, _ = model._bag(tf.constant(x), training=False)
    vectors = np.zeros((3, 50))
    vectors[rows.numpy(), index.numpy()] = weight.numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    # "c" is in 2 of 3 texts: idf ln(4/3) + 1; both of the last text's features ("c" character
    # and "c" word) have that idf and tf 1, so each weighs 1/sqrt(2).
    np.testing.assert_allclose(sorted(vectors[2][vectors[2] > 0]), [2 ** -0.5] * 2, rtol=1e-6)
    assert np.isclose(model.idf.numpy()[used].min(), np.log(4 / 3) + 1)


def test_min_df_and_max_features_bound_the_vocabulary():
    vocab = ["<PAD>", "a", "b", "c"]
    x = encode_texts(["aab", "ab", "c"], vocab, 6)
    cfg = ModelConfig(name="tfidf", char_ngram_max=2, word_ngram_max=0, max_features=2, min_df=2)
    model = build_model(create_model(cfg, vocab_size=len(vocab), num_classes=2), 6)
    model.adapt(x)  # no words: no vocabulary needed
    # In 2 texts: "a", "b", "ab"; the 2 most frequent kept.
    assert (model.keys.numpy() < np.iinfo(np.int64).max).sum() == 2
    rows, _, _, _ = model._bag(tf.constant(x), training=False)
    assert 2 not in rows.numpy()  # the last text has no known n-gram: a zero vector


def test_norm_per_kind_makes_the_character_and_the_word_block_unit_vectors():
    vocab = ["<PAD>", "a", "b", " ", "c"]
    x = encode_texts(["ab ab", "ab c", "c"], vocab, 8)
    cfg = ModelConfig(name="tfidf", char_ngram_max=2, word_ngram_max=1, max_features=50, min_df=1,
                      norm_per_kind=True)
    model = build_model(create_model(cfg, vocab_size=len(vocab), num_classes=2), 8)
    model.adapt(x, vocab=vocab)
    rows, index, weight, _ = model._bag(tf.constant(x), training=False)
    vectors = np.zeros((3, 50))
    vectors[rows.numpy(), index.numpy()] = weight.numpy()
    # Each text has characters and words: two unit blocks, squared norm 2 (jointly it would be 1).
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 2 ** 0.5, rtol=1e-6)
    # "c" alone: the character "c" and the word "c" each fill their block.
    np.testing.assert_allclose(sorted(vectors[2][vectors[2] > 0]), [1.0, 1.0], rtol=1e-6)


def test_log_count_ratios_are_one_vs_rest_and_antisymmetric_for_two_classes():
    counts = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # texts per class with each n-gram
    ratio = log_count_ratios(counts)
    # Class 0: p = [3, 2, 1] / 6, q (the other class) = [1, 2, 1] / 4.
    np.testing.assert_allclose(ratio[:, 0], np.log([2.0, 2 / 3, 2 / 3]))
    np.testing.assert_allclose(ratio[:, 1], -ratio[:, 0])
    three = log_count_ratios(np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    assert three[0, 0] > 0 > three[0, 1] and three[0, 1] == three[0, 2]


def test_adapt_learns_nb_ratios_from_the_labels():
    vocab = ["<PAD>", "a", "b", " "]
    x = encode_texts(["a a", "a", "b", "b b"], vocab, 6)
    cfg = ModelConfig(name="tfidf", char_ngram_max=1, word_ngram_max=0, max_features=5, min_df=1,
                      nb_ratio=True)
    model = build_model(create_model(cfg, vocab_size=len(vocab), num_classes=2), 6)
    with pytest.raises(ValueError, match="labels"):
        model.adapt(x)
    model.adapt(x, labels=np.array([0, 0, 1, 1]))
    rows, index, _, _ = model._bag(tf.constant(encode_texts(["a", "b"], vocab, 6)), training=False)
    ratio = model.ratio.numpy()
    feature_a, feature_b = index.numpy()[rows.numpy() == 0][0], index.numpy()[rows.numpy() == 1][0]
    assert ratio[feature_a, 0] > 0 > ratio[feature_a, 1] and ratio[feature_b, 1] > 0
    np.testing.assert_array_equal(ratio[3:], 0.0)  # " " in 2 texts: slots 0-2 used, the rest 0
    # Logits: each class's weight of an n-gram times its ratio.
    model.kernel.assign(np.ones((5, 2), np.float32))
    logits = model(encode_texts(["a"], vocab, 6)).numpy()[0]
    np.testing.assert_allclose(logits, ratio[feature_a], rtol=1e-6)


def test_nb_ratio_needs_the_linear_model():
    cfg = ModelConfig(name="tfidf", nb_ratio=True, bag_hidden_dim=8)
    with pytest.raises(ConfigError, match="model.nb_ratio .* model.bag_hidden_dim = 0"):
        create_model(cfg, vocab_size=10, num_classes=2)


def test_the_classifier_gives_adapt_the_labels_when_it_takes_them(tiny_config, tmp_path):
    (tmp_path / "adapting.py").write_text(
        "import keras\n"
        "class Recording(keras.Model):\n"
        "    seen = {}\n"
        "    def __init__(self, num_classes, **kwargs):\n"
        "        super().__init__()\n"
        "        self.dense = keras.layers.Dense(num_classes)\n"
        "    def call(self, x, training=False):\n"
        "        return self.dense(keras.ops.cast(x, 'float32'))\n"
        "class WithLabels(Recording):\n"
        "    def adapt(self, x, vocab=None, labels=None):\n"
        "        Recording.seen['with'] = labels\n"
        "class WithoutLabels(Recording):\n"
        "    def adapt(self, x, vocab=None):\n"
        "        Recording.seen['without'] = len(x)\n", encoding="utf-8")
    x, y = np.ones((6, 4), np.int32), np.array([0, 1, 2, 0, 1, 2])
    corpus = Corpus(vocab=["<PAD>", "a"], labels=["x", "y", "z"], splits={"train": (x, y)},
                    shape=(4,))
    seen = {}
    for name in ("WithLabels", "WithoutLabels"):
        config = tiny_config.replace({"model.name": f"{tmp_path / 'adapting.py'}:{name}"})
        task = make_classifier(config, corpus)
        task.build()
        seen = type(task.model).seen
    np.testing.assert_array_equal(seen["with"], y)
    assert seen["without"] == 6


@pytest.mark.parametrize("name", ["tfidf", "fasttext_ngrams"])
def test_models_are_fully_checkpointed_and_give_logits(name):
    cfg = ModelConfig(name=name, char_ngram_max=3, word_ngram_max=1, max_features=100,
                      embedding_dim=8, bag_hidden_dim=4, dropout=0.3)
    model = build_model(create_model(cfg, vocab_size=20, num_classes=3), 10)
    model.adapt(np.random.default_rng(0).integers(0, 20, (30, 10)).astype(np.int32),
                vocab=["<PAD>", " "] + list("abcdefghijklmnopqr"))
    assert model(np.ones((4, 10), np.int32), training=True).shape == (4, 3)
    extra = untracked(model)  # tracking reaches every weight; only dropout seeds are saved apart
    assert extra and all(key.endswith("seed_generator_state") for key in extra)
    assert model(np.zeros((2, 10), np.int32)).shape == (2, 3)  # all padding: still logits


@pytest.mark.parametrize("data,options", [("english", {}), ("chinese", {}), ("english", SHIPPED),
                                          ("chinese", SHIPPED)])
def test_tfidf_trains_through_the_loop_and_beats_chance(data, options, tiny_config, english_dir,
                                                        corpus_dir, tmp_path, quiet_display):
    data_dir = english_dir if data == "english" else corpus_dir
    words = 2 if data == "english" else 0
    run = tmp_path / "run"
    config = tfidf_config(tiny_config, data_dir, **{"model.word_ngram_max": words, **options})
    result = train_and_evaluate(config, run, display=quiet_display)
    chance = 1 / (3 if data == "english" else 10)
    assert result.best_value > chance + 0.3
    # The adapted state is in the training checkpoint and in the best copy, equal in both.
    best = tf.train.latest_checkpoint(str(run / "best"))
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    adapted = ("keys", "idf", "separators") + (("ratio",) if options else ())
    for attribute in adapted:
        key = f"task/model/{attribute}/.ATTRIBUTES/VARIABLE_VALUE"
        np.testing.assert_array_equal(tf.train.load_variable(best, key),
                                      tf.train.load_variable(latest, key))
    assert (tf.train.load_variable(best, "task/model/idf/.ATTRIBUTES/VARIABLE_VALUE") > 0).sum() > 100
    if options:  # the ratios were learned (the labels reached adapt), one column per class
        ratio = tf.train.load_variable(best, "task/model/ratio/.ATTRIBUTES/VARIABLE_VALUE")
        assert ratio.shape == (3000, 3 if data == "english" else 10) and np.abs(ratio).max() > 1


@pytest.mark.parametrize("name,options", [("tfidf", {}), ("fasttext_ngrams", {}),
                                          ("tfidf", SHIPPED)])
def test_resume_is_exact(name, options, tiny_config, english_dir, tmp_path, quiet_display):
    config = tfidf_config(tiny_config, english_dir, **{
        "model.name": name, "model.embedding_dim": 8,
        "model.bag_hidden_dim": 0 if options else 6, **options,
        "train.eval_every": 5, "train.checkpoint_every": 5, "train.log_every": 5})
    split, straight = tmp_path / "split", tmp_path / "straight"
    train_and_evaluate(config.replace({"train.max_steps": 7}), split, display=quiet_display)
    resumed = train_and_evaluate(config.replace({"train.max_steps": 20}), split, resume=True,
                                 display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (20, 13)
    train_and_evaluate(config.replace({"train.max_steps": 20}), straight, display=quiet_display)
    names = assert_same_variables(tf.train.latest_checkpoint(str(split / "checkpoints")),
                                  tf.train.latest_checkpoint(str(straight / "checkpoints")))
    assert any("idf" in n for n in names) and any(n.startswith("untracked/") for n in names)
    assert any("/ratio/" in n for n in names) == bool(options)


FASTTEXT_NGRAMS = {"model.name": "fasttext_ngrams", "model.embedding_dim": 8,
                   "model.bag_hidden_dim": 6}


@pytest.mark.parametrize("options", [{}, SHIPPED, FASTTEXT_NGRAMS])
def test_predict_and_export_on_raw_strings_agree(options, tiny_config, english_dir, tmp_path,
                                                 quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tfidf_config(tiny_config, english_dir, **options), run, display=quiet_display)
    texts = read_examples(english_dir / "test.txt").texts + ["", "unknown ¿ words", "goal goal"]
    predictions = Predictor.from_run(run).predict([t for t in texts if t])
    assert len(predictions) == len(texts) - 1
    assert all(p.label in ("food", "money", "sport") for p in predictions)
    serve = tf.saved_model.load(str(export_run(run, tmp_path / "export"))).signatures[
        "serving_default"]
    outputs = serve(texts=tf.constant([t for t in texts if t]))
    labels = (run / "labels.txt").read_text(encoding="utf-8").split()
    expected = np.array([[p.probabilities[label] for label in labels] for p in predictions])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert [label.decode() for label in outputs["label"].numpy()] == [p.label for p in predictions]


def test_xla_stays_off_by_default_even_with_an_accelerator(tiny_config, english_dir):
    from looptrain.data.corpus import Corpus

    config = tfidf_config(tiny_config, english_dir, **{"train.jit_compile": "auto"})
    corpus = Corpus(vocab=["<PAD>"] + list("abc "), labels=["x", "y", "z"], splits={}, shape=(20,))
    task = make_classifier(config, corpus)
    task.model = task.create_model()
    assert not use_jit("auto", task, accelerator=True)  # string ops have no XLA kernels
