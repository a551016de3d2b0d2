import re

import numpy as np
import pytest

from conftest import write_data
from looptrain.data import text
from looptrain.data.corpus import load_corpus
from looptrain.errors import DataError
from looptrain.files import read_lines, write_lines


def _file(tmp_path, content: bytes):
    path = tmp_path / "train.txt"
    path.write_bytes(content)
    return path


def test_reads_label_tab_text_with_bom_crlf_and_tabs_in_text(tmp_path):
    path = _file(tmp_path, "\ufeff体育\t比赛\r\n财经\t股票\t市场\n".encode())
    ex = text.read_examples(path)
    assert ex.labels == ["体育", "财经"] and ex.texts == ["比赛", "股票\t市场"]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_convention_gives_one_example_per_line(tmp_path, ending):
    lines = ["体育\t比赛", "财经\t股票", "科技\t芯片"]
    ex = text.read_examples(_file(tmp_path, ending.join(line.encode() for line in lines) + ending))
    assert ex.labels == ["体育", "财经", "科技"] and ex.texts == ["比赛", "股票", "芯片"]


def test_a_named_pipe_is_refused_instead_of_read_forever(tmp_path):
    import os

    os.mkfifo(tmp_path / "cnews.train.txt")
    with pytest.raises(DataError, match="cnews.train.txt is not a regular file"):
        text.read_examples(text.find_split_file(tmp_path, "train"))


@pytest.mark.parametrize("content, message", [
    ("体育\t比赛\n\ufeff财经\t股票\n".encode(), "train.txt:2: a byte-order mark \\(U\\+FEFF\\) inside"),
    ("体育\t比赛\n财经\t股\ufeff票\n".encode(), "train.txt:2: a byte-order mark"),
    ("体育\t比赛\n财经 股票\n".encode(), "train.txt:2: line has no tab"),
    ("体育\t比赛\n\n财经\t股票\n".encode(), "train.txt:2: line is empty"),
    ("体育\t比赛\n财经\t  \n".encode(), "train.txt:2: empty text after label '财经'"),
    ("\t比赛\n".encode(), "train.txt:1: empty label"),
    ("体育\t比赛\n".encode() + b"\xe8\xb4\xa2\xff\t\xe8\xb4\n", "train.txt:2: not valid UTF-8"),
    (b"", "train.txt is empty"),
])
def test_malformed_lines_name_file_and_line(tmp_path, content, message):
    with pytest.raises(DataError) as err:
        text.read_examples(_file(tmp_path, content))
    assert re.search(message, str(err.value))
    assert "\n" not in str(err.value)


def test_finds_plain_and_cnews_style_names(tmp_path):
    (tmp_path / "cnews.train.txt").write_text("a\tb\n")
    (tmp_path / "val.txt").write_text("a\tb\n")
    assert text.find_split_file(tmp_path, "train").name == "cnews.train.txt"
    assert text.find_split_file(tmp_path, "val").name == "val.txt"
    with pytest.raises(DataError, match="no test.txt"):
        text.find_split_file(tmp_path, "test")
    (tmp_path / "other.train.txt").write_text("a\tb\n")
    with pytest.raises(DataError, match="several train files"):
        text.find_split_file(tmp_path, "train")
    with pytest.raises(DataError, match="does not exist"):
        text.find_split_file(tmp_path / "nope", "train")


def test_vocab_is_pad_then_most_frequent_with_codepoint_ties():
    vocab = text.build_vocab(["cccbba", "dcb"], vocab_size=4)
    assert vocab == ["<PAD>", "c", "b", "a"]  # c:4, b:3, then a and d tie at 1: 'a' < 'd'
    assert len(text.build_vocab(["abc"], vocab_size=100)) == 4


def test_encoding_post_pads_truncates_tail_and_drops_unknown():
    vocab = ["<PAD>", "a", "b", "c"]
    x = text.encode_texts(["ab", "abcabc", "xaxb", "zzz"], vocab, seq_length=4)
    assert x.dtype == np.int32
    np.testing.assert_array_equal(x, [[1, 2, 0, 0], [1, 2, 3, 1], [1, 2, 0, 0], [0, 0, 0, 0]])


def test_labels_come_from_training_data_and_unknown_labels_name_the_line(tmp_path):
    assert text.build_labels(["财经", "体育", "财经"]) == ["体育", "财经"]
    path = tmp_path / "val.txt"
    path.write_text("体育\ta\n时政\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"val.txt:2: label '时政' does not occur in the training split"):
        text.encode_labels(text.read_examples(path), ["体育", "财经"])


def test_line_files_round_trip_whitespace_tokens(tmp_path):
    tokens = ["<PAD>", " ", "\r", "\u3000", "\u2028", "字"]
    write_lines(tmp_path / "vocab.txt", tokens)
    assert read_lines(tmp_path / "vocab.txt") == tokens


def test_a_single_label_training_split_is_an_error(tmp_path):
    data = write_data(tmp_path / "d", "体育\t比赛\n体育\t球\n")
    with pytest.raises(DataError, match="every example has the label '体育'; a classifier needs"):
        load_corpus(data, seq_length=3, vocab_size=10)


def test_load_corpus_encodes_splits_with_given_or_built_vocab(tmp_path):
    data = write_data(tmp_path / "d", "体育\t球球赛\n财经\t股市\n", val="财经\t股球\n")
    corpus = load_corpus(data, seq_length=3, vocab_size=10)
    assert corpus.labels == ["体育", "财经"] and corpus.vocab[:2] == ["<PAD>", "球"]
    x_val, y_val = corpus.splits["val"]
    assert x_val.shape == (1, 3) and y_val.tolist() == [1]
    again = load_corpus(data, seq_length=3, vocab_size=10, vocab=corpus.vocab, labels=corpus.labels,
                        splits=("test",))
    assert list(again.splits) == ["test"]


def test_chunked_encoding_and_counting_match_a_single_pass(monkeypatch):
    texts = ["abcab", "x", "cccc", "ba", "zzb", "a"]
    vocab, x = text.build_vocab(texts, 4), text.encode_texts(texts, ["<PAD>", "a", "b", "c"], 3)
    monkeypatch.setattr(text, "_CHUNK", 4)  # rows 0-3 and 4-5: a boundary inside the list
    assert text.build_vocab(texts, 4) == vocab == ["<PAD>", "c", "a", "b"]  # c:5, a:4 = b:4
    np.testing.assert_array_equal(text.encode_texts(texts, ["<PAD>", "a", "b", "c"], 3), x)
    np.testing.assert_array_equal(x, [[1, 2, 3], [0, 0, 0], [3, 3, 3], [2, 1, 0], [2, 0, 0],
                                      [1, 0, 0]])
