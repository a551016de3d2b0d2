"""`lt.Task`: the user's model, step and data, which looptrain's loop trains.

A task is a `tf.Module`: every model, optimizer, `tf.random.Generator` and variable assigned to it
is found by `tf.train.Checkpoint`, and the loop also checkpoints the Keras seed-generator states of
its layers (dropout), so a killed run resumes bit-identically. Its constructor arguments are its
hyper-parameters: they are recorded (`hparams`), saved with the run and frozen on resume.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from types import MappingProxyType
from typing import Any, Callable, Mapping

import keras
import tensorflow as tf

from looptrain.errors import TaskError


class Task(tf.Module):
    """Subclass it; override `build`, `train_step` and `eval_step` (and the data methods for the
    command line).

        class Regression(lt.Task):
            def __init__(self, width=32, learning_rate=1e-3):
                super().__init__()
                self.width, self.learning_rate = width, learning_rate

            def build(self):
                self.model = MyMLP(self.width)
                self.optimizer = keras.optimizers.Adam(self.learning_rate)

            def train_step(self, batch):
                x, y = batch
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(self.model(x, training=True)[:, 0] - y))
                grads = tape.gradient(loss, self.model.trainable_variables)
                self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
                return {"loss": loss}

            def eval_step(self, batch):
                x, y = batch
                return {"mse": tf.square(self.model(x, training=False)[:, 0] - y)}

    Class attributes:
        monitor: the metric early stopping and the best copy follow when `lt.fit` is not told
            (None: `val/loss` when there is validation data, else `train/loss`).
        mode: "min" or "max" for `monitor` (None: inferred from its name, as Keras does).
        not_hparams: constructor arguments that are data rather than hyper-parameters (left out
            of `hparams`).
        supports_jit: False when the step cannot be compiled with XLA (`jit_compile = "auto"`
            then keeps it off).
    """

    monitor: str | None = None
    mode: str | None = None
    not_hparams: tuple[str, ...] = ()
    supports_jit: bool = True

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        # The constructor arguments, defaults filled in: the task's hyper-parameters. Set past
        # tf.Module's attribute tracking, which would wrap the mapping into a trackable.
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        values = dict(list(bound.arguments.items())[1:])
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if param.kind is param.VAR_KEYWORD and name in values:
                values.update(values.pop(name))
        for name in cls.not_hparams:
            values.pop(name, None)
        object.__setattr__(instance, "_lt_hparams", MappingProxyType(values))
        return instance

    def __init__(self):
        super().__init__(name=None)

    @property
    def hparams(self) -> Mapping[str, Any]:
        """The constructor's arguments, defaults included (saved with the run, frozen on resume)."""
        return self._lt_hparams

    def build(self) -> None:
        """Creates the models, optimizers and any other state.

        Called once by the loop, under the distribution strategy's scope and after the seed is
        set, before any checkpoint is restored. Models must be built here (called once on an
        example, or `model.build(shape)`): Keras 3 silently skips restoring unbuilt layers.
        """
        raise NotImplementedError(f"{type(self).__name__}.build() must create the models and optimizers")

    def train_step(self, batch) -> Mapping[str, tf.Tensor]:
        """One optimisation step on `batch`; returns named scalars (`{"loss": ...}`).

        Compiled by the loop (many steps per call, inside a `tf.while_loop`): graph-compatible
        code only. The loop averages each returned scalar over the steps between log steps and
        writes it as `train/<name>`; a non-finite one stops the run (or, with the
        `lt.apply_gradients` helper and `on_nan = "skip"`, skips the step).
        """
        raise NotImplementedError(f"{type(self).__name__}.train_step(batch) is not written")

    def eval_step(self, batch) -> Mapping[str, tf.Tensor]:
        """Named per-example values (`[batch, ...]`) or batch means (scalars) of one batch.

        The loop averages each over the examples of the split (a scalar counts as the value of
        every example of its batch); `eval_end` may then derive metrics from the averages.
        """
        raise NotImplementedError(f"{type(self).__name__}.eval_step(batch) is not written")

    def eval_end(self, means: dict[str, Any]) -> dict[str, Any]:
        """Final metrics from the split's averages (e.g. F1 from mean true/false positives).

        Values may be numpy arrays; non-scalar ones are logged element-wise. Default: as they are.
        """
        return means

    # Data for the command line (`looptrain train --task module:attr`); `lt.fit` takes data
    # directly. Each returns what `lt.fit(train=...)` accepts: arrays, a dataset or a source.
    def train_data(self):
        """The training data (arrays, a `tf.data.Dataset` of batches, or a data source)."""
        raise NotImplementedError(f"{type(self).__name__}.train_data() is not written; the command "
                                  f"line needs it (lt.fit takes train= directly)")

    def val_data(self):
        """The validation data, or None for none."""
        return None

    def test_data(self):
        """The test data for `looptrain evaluate`, or None for none."""
        return None

    # Export (`looptrain export`): a SavedModel whose `serving_default` is `serve` on
    # `serving_spec`, and the Keras model `export_model()` as `model.keras`.
    def export_model(self):
        """The Keras model exported as `model.keras` (default: the `model` attribute)."""
        model = getattr(self, "model", None)
        if not isinstance(model, keras.Model):
            raise TaskError(f"{type(self).__name__} has no Keras 'model' attribute to export; "
                            f"define export_model() (and serve() for the SavedModel)")
        return model

    def serving_spec(self, element_spec):
        """The input signature of `serve`, from the training batches' `element_spec`: by default
        the inputs of `(inputs, targets, ...)` batches (the whole element otherwise), any batch
        size."""
        inputs = (element_spec[0] if isinstance(element_spec, (tuple, list)) and len(element_spec) > 1
                  else element_spec)
        return tf.nest.map_structure(lambda s: tf.TensorSpec([None, *s.shape[1:]], s.dtype), inputs)

    def serve(self, inputs):
        """What the exported SavedModel computes from a batch of `serving_spec` inputs: a tensor
        or a dict of named tensors. Default: `export_model()` on them, in inference mode."""
        return self.export_model()(inputs, training=False)

    def identity(self) -> dict[str, Any]:
        """What the weights of a run of this task mean: recorded in every checkpoint, and a
        checkpoint restored by path must carry the same. Default: the class name (not its module:
        a file run as a script and imported is one task) and the hyper-parameters."""
        return {"task": type(self).__qualname__,
                "hparams": {k: repr(v) for k, v in self.hparams.items()}}


def task_variables_untracked(task) -> dict[str, Any]:
    """Variables of the task's Keras layers that `tf.train.Checkpoint` does not reach through the
    task: the dropout seed-generator states (Keras keeps them outside the trackable graph), and
    the weights of layers held where tracking does not look. The loop checkpoints them explicitly,
    each keyed by the path of the innermost layer that holds it and its name (stable from one
    process to the next, unlike Keras' global `seed_generator_<n>` names)."""
    view = tf.train.TrackableView(task)
    reachable = {id(obj) for obj in view.descendants()}
    owners: dict[int, tuple[str, Any]] = {}
    queue, seen = [("", task)], {id(task)}
    while queue:  # breadth first: a layer deeper in the tree overrides its parents' claim
        path, obj = queue.pop(0)
        if isinstance(obj, keras.layers.Layer):
            for variable in obj.variables:
                if id(variable) not in reachable:
                    owners[id(variable)] = (f"{path}/{variable.name}", variable)
        for name, child in view.children(obj).items():
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((f"{path}/{name}" if path else name, child))
    found: dict[str, Any] = {}
    for key, variable in owners.values():
        unique, n = key, 1
        while unique in found:
            n += 1
            unique = f"{key}_{n}"
        found[unique] = variable
    return found


def check_built(task) -> None:
    """Raises TaskError naming the first Keras layer of the task that `build()` left unbuilt.

    Keras 3 silently skips restoring the weights of a layer that is not built yet (and
    `model.build(shape)` on a subclassed model without a `build` method builds none of its
    layers), so a resumed or evaluated run would go on from fresh random weights.
    """
    view = tf.train.TrackableView(task)
    for obj in view.descendants():
        if isinstance(obj, keras.layers.Layer) and not obj.built:
            raise TaskError(f"{type(task).__name__}.build() left the layer '{obj.name}' "
                            f"({type(obj).__name__}) unbuilt: call each model once on an example "
                            f"batch there (e.g. self.model(tf.zeros([1, ...]))) so every weight "
                            f"exists before a checkpoint is restored")


def identity_of(task) -> str:
    """The digest of `task.identity()` that every checkpoint of its runs records."""
    return hashlib.sha256(json.dumps(task.identity(), sort_keys=True, ensure_ascii=False,
                                     default=repr).encode()).hexdigest()


def use_jit(setting: str, task, *, accelerator: bool | None = None) -> bool:
    """Resolves `jit_compile`. "auto" compiles with XLA only on a GPU/TPU host, unless the task
    opts out (`supports_jit = False`): on CPU-only hosts XLA is slower (`make bench`), as Keras'
    own "auto" also assumes."""
    if setting != "auto":
        return setting == "on"
    if accelerator is None:
        accelerator = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    return accelerator and getattr(task, "supports_jit", True)


def build_optimizers(task) -> None:
    """Builds a task's unbuilt Keras optimizer under the strategy's scope (its slots cannot be
    created inside the traced step there). With one optimizer, for all the task's trainable
    weights; several must be built by the task's `build()`, which knows what each updates."""
    unbuilt = [name for name, value in vars(task).items()
               if isinstance(value, keras.optimizers.Optimizer) and not value.built]
    optimizers = [v for v in vars(task).values() if isinstance(v, keras.optimizers.Optimizer)]
    if not unbuilt:
        return
    if len(optimizers) > 1:
        raise TaskError(f"under a tf.distribute strategy {type(task).__name__}.build() must build its "
                        f"optimizers (self.{unbuilt[0]}.build(variables)): looptrain cannot tell "
                        f"which weights each of several optimizers updates")
    optimizers[0].build(trainable_variables(task))


def learning_rates(task) -> dict[str, Callable[[], tf.Tensor]]:
    """The learning rate of each Keras optimizer the task holds (read at log steps): one is
    `learning_rate`, several are `learning_rate/<attribute>`."""
    found = {name: value for name, value in vars(task).items()
             if isinstance(value, keras.optimizers.Optimizer)}
    if len(found) == 1:
        (optimizer,) = found.values()
        return {"learning_rate": lambda: optimizer.learning_rate}
    return {f"learning_rate/{name}": (lambda o=optimizer: o.learning_rate)
            for name, optimizer in found.items()}


def trainable_variables(task) -> list:
    """The trainable variables of every Keras layer the task holds, each once, in model order."""
    seen, out = set(), []
    for obj in tf.train.TrackableView(task).descendants():
        if isinstance(obj, keras.layers.Layer):
            for variable in obj.trainable_variables:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    out.append(variable)
    return out
