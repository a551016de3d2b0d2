"""`train.precision = "auto"` (hardware detection monkeypatched) and every text model in bfloat16."""

import inspect

import keras
import numpy as np
import pytest

from looptrain.config import ModelConfig
from looptrain.models import build_model, create_model, registered_names
from looptrain.tasks import precision


@pytest.fixture()
def host(monkeypatch):
    """A fake host: CPU flags, GPU compute capabilities and a TPU, as the test sets them."""
    state = {"flags": set(), "gpus": [], "tpu": False}
    monkeypatch.setattr(precision, "cpu_flags", lambda: state["flags"])
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: state["gpus"])
    monkeypatch.setattr(precision, "tpu_present", lambda: state["tpu"])
    return state


@pytest.mark.parametrize("flags, gpus, tpu, expected", [
    ({"avx2", "amx_bf16"}, [], False, "mixed_bfloat16"),
    ({"avx512f", "avx512_bf16"}, [], False, "mixed_bfloat16"),
    ({"avx2", "avx512f"}, [], False, "float32"),  # bfloat16 would be emulated: slower
    (set(), [(8, 0)], False, "mixed_bfloat16"),  # Ampere
    ({"avx512_bf16"}, [(7, 5)], False, "float32"),  # the GPU runs the model, and has no bf16
    (set(), [(7, 5), (9, 0)], False, "mixed_bfloat16"),
    (set(), [], True, "mixed_bfloat16"),
])
def test_auto_precision_is_bfloat16_only_on_native_hardware(host, flags, gpus, tpu, expected):
    host.update(flags=flags, gpus=gpus, tpu=tpu)
    assert precision.resolve_precision("auto") == expected
    assert precision.resolve_precision("float32") == "float32"  # explicit choices stand


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_bf16\nbugs\t\t: spectre\n")
    assert {"amx_bf16", "avx512_bf16", "fpu"} <= precision.cpu_flags(str(info))
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


def test_auto_builds_the_classifier_in_bfloat16_on_a_native_host(host, tiny_config):
    from looptrain.app.experiment import make_classifier
    from looptrain.data.corpus import load_corpus

    host["flags"] = {"amx_bf16"}
    c = tiny_config.replace({"train.precision": "auto"})
    corpus = load_corpus(c.data.data_dir, seq_length=c.data.seq_length, vocab_size=c.data.vocab_size)
    task = make_classifier(c, corpus)
    task.build()
    assert task.hparams["precision"] == "auto" and task.precision == "mixed_bfloat16"
    assert {layer.compute_dtype for layer in task.model.layers} >= {"bfloat16"}
    assert all(v.dtype == "float32" for v in task.model.trainable_variables)
    host["flags"] = set()
    assert make_classifier(c, corpus).precision == "float32"


@pytest.mark.parametrize("name", [n for n in registered_names() if n not in ("mlp", "convnet")])
def test_every_text_model_runs_in_mixed_bfloat16(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = create_model(ModelConfig(name=name, embedding_dim=6, hidden_dim=8, num_filters=5,
                                         kernel_size=3, ngram_buckets=40, word_ngram_max=2),
                             vocab_size=30, num_classes=3, data_kind="text")
        x = np.random.default_rng(0).integers(1, 30, size=(6, 12)).astype("int32")
        build_model(model, (12,), "int32")
        if hasattr(model, "adapt"):
            labels = {"labels": np.arange(6) % 3} if "labels" in inspect.signature(
                model.adapt).parameters else {}
            model.adapt(x, vocab=["<pad>", " "] + [chr(97 + i) for i in range(28)], **labels)
        logits = np.asarray(model(x, training=True), np.float32)
    finally:
        keras.config.set_dtype_policy(previous)
    assert logits.shape == (6, 3) and np.isfinite(logits).all()
