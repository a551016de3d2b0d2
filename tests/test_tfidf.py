"""The tfidf and fasttext_ngrams models: n-grams and IDF from adapt(), training through the loop,
the adapted state in checkpoints and the best copy, exact resume, predict and export on raw strings."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_same_variables, untracked, write_data
from looptrain.app.experiment import make_classifier, train_and_evaluate
from looptrain.app.export import export_run
from looptrain.app.predict import Predictor
from looptrain.config import ModelConfig
from looptrain.data.text import encode_texts, read_examples
from looptrain.models import build_model, create_model
from looptrain.task import use_jit

WORDS = {"sport": "goal match team coach league", "money": "bank stock price market trade",
         "food": "rice soup bread cook taste"}
FILLER = "the a of and to in is it on for with".split()


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


@pytest.mark.parametrize("data", ["english", "chinese"])
def test_tfidf_trains_through_the_loop_and_beats_chance(data, tiny_config, english_dir, corpus_dir,
                                                        tmp_path, quiet_display):
    data_dir = english_dir if data == "english" else corpus_dir
    words = 2 if data == "english" else 0
    run = tmp_path / "run"
    result = train_and_evaluate(tfidf_config(tiny_config, data_dir, **{"model.word_ngram_max": words}),
                                run, display=quiet_display)
    chance = 1 / (3 if data == "english" else 10)
    assert result.best_value > chance + 0.3
    # The adapted state is in the training checkpoint and in the best copy, equal in both.
    best = tf.train.latest_checkpoint(str(run / "best"))
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    for attribute in ("keys", "idf", "separators"):
        key = f"task/model/{attribute}/.ATTRIBUTES/VARIABLE_VALUE"
        np.testing.assert_array_equal(tf.train.load_variable(best, key),
                                      tf.train.load_variable(latest, key))
    assert (tf.train.load_variable(best, "task/model/idf/.ATTRIBUTES/VARIABLE_VALUE") > 0).sum() > 100


@pytest.mark.parametrize("name", ["tfidf", "fasttext_ngrams"])
def test_resume_is_exact(name, tiny_config, english_dir, tmp_path, quiet_display):
    config = tfidf_config(tiny_config, english_dir, **{
        "model.name": name, "model.embedding_dim": 8, "model.bag_hidden_dim": 6,
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


def test_predict_and_export_on_raw_strings_agree(tiny_config, english_dir, tmp_path, quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tfidf_config(tiny_config, english_dir), run, display=quiet_display)
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
