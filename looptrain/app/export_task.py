"""Export of any task's run: a SavedModel with the serving signature the task declares, and a Keras
`.keras` file.

    OUT/saved_model.pb, variables/   `serving_default`: the task's `serve` on its `serving_spec`
                                     (default: its model's call on the training inputs, any batch
                                     size; the built-in classifier on arrays: label and
                                     probabilities); loads with `tf.saved_model.load`, no looptrain
    OUT/model.keras                  `export_model()` (default: the task's `model`)
    OUT/export.json                  the checkpoint, the signature's inputs and outputs, and how
                                     the .keras file was written

The `.keras` file: Keras stores a model as its layers' configs and class names, so a subclassed
model loads only where its class can be imported. When the model's `call` is built from layers
(as a functional model would be), it is rebuilt as a functional model over the same layers and
weights, checked to give the same outputs on a training batch, and saved that way: only Keras is
needed to load it. Otherwise the model is saved as it is, and loading needs its code
(`export.json` says which: "functional" or "subclassed").
Weights are those of the checkpoint (`best` by default), EMA averages included.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from looptrain.app.experiment import make_classifier, make_user_task
from looptrain.data.corpus import load_corpus
from looptrain.data.sources import as_source
from looptrain.engine.checkpoint import find_checkpoint, model_view, restore_for_evaluation
from looptrain.files import write_text_atomic
from looptrain.run import RunDir
from looptrain.task import check_built
from looptrain.task import identity_of


def export_task_run(run_dir: str | Path, out: Path, *, checkpoint: str = "best") -> dict:
    """Exports a run of a user task (`task.path`) or of the built-in classifier on array data.

    Raises:
        UserError: the run or checkpoint is missing, damaged or of another run.
    """
    run = RunDir(run_dir)
    run.check_exists()
    config = run.load_config()
    find_checkpoint(run, checkpoint)  # fail fast, before reading any data
    if config.task_path:
        task = make_user_task(config)
        batch = as_source(task.train_data()).first_batch(config.train.batch_size)
    else:  # the classifier on arrays: the shapes and a batch from the test split
        corpus = load_corpus(config.data.data_dir, seq_length=config.data.seq_length,
                             vocab_size=config.data.vocab_size, vocab=None,
                             labels=run.load_labels(), splits=("test",))
        task = make_classifier(config, corpus)
        batch = as_source(corpus.splits["test"]).first_batch(config.train.batch_size)
    task.build()
    check_built(task)
    path = restore_for_evaluation(task, run, checkpoint, identity_of(task))
    return export_task(task, out, sample_batch=batch, checkpoint=path)


def export_task(task, out: Path, *, sample_batch, checkpoint: str) -> dict:
    """Writes the SavedModel, `model.keras` and `export.json` of a built, restored `task` into
    `out`; `sample_batch` is a training batch (its spec gives the inputs'). Returns export.json."""
    model = task.export_model()  # before anything is written: a task without one is told so
    element_spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, sample_batch)
    spec = task.serving_spec(element_spec)
    sample = _inputs_of(sample_batch, element_spec, task)

    def serve(inputs):
        outputs = task.serve(inputs)
        return outputs if isinstance(outputs, dict) else {"outputs": outputs}

    module = tf.Module()
    module.state = model_view(task)  # the variables `serve` reads
    module.serve = tf.function(serve, input_signature=[spec])
    signature = module.serve.get_concrete_function()
    tf.saved_model.save(module, str(out), signatures={"serving_default": signature})
    info = {"checkpoint": checkpoint,
            "serving_default": {"inputs": _describe(spec),
                                "outputs": _describe(signature.structured_outputs)},
            "keras": save_keras(model, out / "model.keras", spec, sample)}
    write_text_atomic(out / "export.json", json.dumps(info, indent=2) + "\n")
    return info


def _inputs_of(batch, element_spec, task):
    """The part of a training batch `serving_spec` describes: its first element or all of it."""
    spec = task.serving_spec(element_spec)
    if isinstance(batch, (tuple, list)) and len(batch) > 1:
        try:
            tf.nest.assert_same_structure(spec, batch[0])
            return batch[0]
        except (ValueError, TypeError):
            pass
    return batch


def save_keras(model: keras.Model, path: Path, spec, sample) -> str:
    """Saves `model` to `path` as a functional model over its own layers when that computes the
    same outputs on `sample` ("functional"), else as it is ("subclassed"); a model Keras cannot
    serialise gets no file ("not saved: why")."""
    try:
        functional = _functional(model, spec)
        expected = tf.nest.flatten(model(sample, training=False))
        got = tf.nest.flatten(functional(sample, training=False))
        if len(got) != len(expected) or not all(
                np.allclose(g, e, rtol=1e-5, atol=1e-6) for g, e in zip(got, expected)):
            raise ValueError("the functional rebuild computes other outputs")
    except Exception:  # any model whose call is not a graph of layers: save it as it is
        try:
            model.save(path)
        except Exception as exc:  # Keras cannot serialise it (e.g. adapted state in __init__
            path.unlink(missing_ok=True)  # arguments): the SavedModel is the export, say why
            return f"not saved: {type(exc).__name__} ({' '.join(str(exc).split())[:160]})"
        return "subclassed"
    functional.save(path)
    return "functional"


def _functional(model: keras.Model, spec) -> keras.Model:
    """The model's `call` applied to symbolic inputs: a functional model of the same layers."""
    if not isinstance(model, keras.Model) or type(model) in (keras.Model, keras.Sequential):
        return model  # functional or sequential already
    inputs = tf.nest.map_structure(
        lambda s: keras.Input(shape=tuple(s.shape[1:]), dtype=s.dtype.name), spec)
    try:
        outputs = model.call(inputs, training=False)
    except TypeError:
        outputs = model.call(inputs)
    return keras.Model(inputs, outputs, name=model.name)


def _describe(structure) -> dict | list:
    """`{name: "float32 [None, 8]"}` of a spec or output structure."""
    def one(s):
        return f"{s.dtype.name} {s.shape.as_list()}"

    if isinstance(structure, dict):
        return {name: one(s) for name, s in structure.items()}
    return [one(s) for s in tf.nest.flatten(structure)]
