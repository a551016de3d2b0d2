"""Step helpers: what a task's `train_step` calls to get the loop's guarantees under any strategy.

A plain GradientTape step (mean loss, `optimizer.apply_gradients`) works as written on one device,
and the loop stops at its first non-finite returned value. A step that uses these helpers also gets
the skip-on-NaN policy and `tf.distribute` with the same update as on one device:

    with tf.GradientTape() as tape:
        loss = lt.batch_mean(per_example_loss) + lt.model_losses(self.model)
    grad_norm = lt.apply_gradients(self.optimizer, tape.gradient(loss, variables), variables)
    return {"loss": loss, "grad_norm": grad_norm}

How the replicas add up (Keras' own rule is a sum of gradients of losses divided by the global
batch size; this one is equivalent and needs no reduction choice from the user): every replica
computes the global batch's objective as if its slice were the whole batch in proportion
(`batch_mean`: its examples' sum times replicas / global batch size), the gradients are averaged
across replicas once (`apply_gradients`), and the loop averages every returned scalar across
replicas. With equal slices that is each replica's plain mean; uneven slices (a partial last batch)
and empty ones are weighted exactly.

The helpers are plain graph code: AutoGraph, which converts the user's step, leaves them as they are
(`do_not_convert`): converting them cost every run's start-up about a second.

The engine runs every `train_step` trace inside a `StepContext` that tells the helpers the global
batch size, the replica count and the non-finite policy, and collects what they report: each
update's gradient norm, which is finite if and only if the update was sound (and applied).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import keras
import tensorflow as tf

from looptrain.errors import ConfigError

_local = threading.local()


@dataclass
class StepContext:
    """What the loop tells the helpers during one trace of `train_step`, and what they report."""

    global_batch_size: tf.Tensor  # examples in the global batch (all replicas), int
    num_replicas: int = 1
    skip_nonfinite: bool = False  # on_nan = "skip": hold back a non-finite update
    # Float scalars, one per update, finite iff its gradients were (under "skip": iff it was
    # applied): the gradient norm itself, so the loop's check costs no op of its own; 0 under
    # loss scaling, whose optimizer skips overflowing updates itself.
    witnesses: list = field(default_factory=list)
    used_apply_gradients: bool = False


@contextlib.contextmanager
def step_context(context: StepContext):
    """Makes `context` the current one while a `train_step` is traced (engine use)."""
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(context)
    try:
        yield context
    finally:
        stack.pop()


@tf.autograph.experimental.do_not_convert
def current_context() -> StepContext | None:
    """The context of the `train_step` being traced by the loop, or None (e.g. in a user test)."""
    stack = getattr(_local, "stack", [])
    return stack[-1] if stack else None


@tf.autograph.experimental.do_not_convert
def batch_mean(values) -> tf.Tensor:
    """The mean over the global batch of per-example `values` (`[batch, ...]`, summed over axis 0).

    Use it for the loss (and for any metric the step returns): on one device it is the batch mean;
    under a strategy it is this replica's share, scaled so that the replicas' average is the global
    batch's mean (see the module docstring). Outside the loop it is `tf.reduce_mean(values, 0)`.
    """
    values = tf.convert_to_tensor(values)
    dtype = values.dtype if values.dtype.is_floating else tf.float32
    total = tf.reduce_sum(tf.cast(values, dtype), axis=0)
    context = current_context()
    if context is None:
        return total / tf.cast(tf.shape(values)[0], dtype)
    if context.num_replicas > 1:
        total *= context.num_replicas
    return total / tf.cast(context.global_batch_size, dtype)  # (one op less per step on one device)


@tf.autograph.experimental.do_not_convert
def model_losses(*models: keras.Model) -> tf.Tensor:
    """The sum of the models' `losses` (regularisation, `add_loss`) as float32, 0 when none.

    Call it after the forward pass, inside the tape. Each replica adds all of it: the loop's
    average across replicas leaves it whole.
    """
    losses = [tf.cast(loss, tf.float32) for model in models for loss in model.losses]
    return tf.add_n(losses) if losses else tf.constant(0.0)


@tf.autograph.experimental.do_not_convert
def dense(gradients):
    """Gradients with every `IndexedSlices` (an embedding's) summed into a dense tensor.

    An embedding's gradient holds one row per occurrence of a token in the batch. Keras 3's Adam
    (its second moment) and global-norm clipping square those rows before repeated ones are added
    up, so a token seen twice got too large an update and the norm came out too small; summing
    the rows first gives the gradient's true value.
    """
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]


@tf.autograph.experimental.do_not_convert
def apply_gradients(optimizer: keras.optimizers.Optimizer, gradients, variables, *,
                    clip_norm: float | None = None) -> tf.Tensor:
    """Applies `gradients` to `variables` with the loop's guarantees; returns the global norm.

    Densifies embedding gradients, averages them across replicas once (the optimizer must not
    reduce them again), computes the global norm (before clipping; unscaled under loss scaling),
    clips by it when `clip_norm` is set, and applies. Under `on_nan = "skip"` (and whenever the
    gradients are not finite there) the update is held back: no weight or optimizer slot changes.
    The norm and the finiteness are reported to the loop, which stops or skips on them.

    Args:
        optimizer: a Keras optimizer (a `LossScaleOptimizer` too: it skips overflowing updates
            itself, so only the loss's finiteness counts then).
        gradients: one per variable (None for an unconnected variable is allowed).
        variables: the variables to update.
        clip_norm: global-norm clipping threshold, or None.
    """
    variables = list(variables)
    gradients = dense(gradients)
    context = current_context()
    replica = tf.distribute.get_replica_context()
    distributed = context is not None and context.num_replicas > 1 or (
        replica is not None and replica.num_replicas_in_sync > 1)
    if distributed:
        _reduce_once(optimizer)
        present = [i for i, g in enumerate(gradients) if g is not None]
        summed = replica.all_reduce(tf.distribute.ReduceOp.MEAN, [gradients[i] for i in present])
        for i, g in zip(present, summed):
            gradients[i] = g
    raw_norm = _global_norm([g for g in gradients if g is not None])
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    scale = tf.cast(optimizer.dynamic_scale, raw_norm.dtype) if scaled else tf.constant(1.0)
    norm = raw_norm / scale if scaled else raw_norm
    if clip_norm:  # on the loss-scaled gradients, which the optimizer unscales afterwards
        gradients, _ = tf.clip_by_global_norm(gradients, clip_norm * scale, use_norm=raw_norm)
    pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
    guarded = context is not None and context.skip_nonfinite
    # Only the guard tests the norm: the loop reads the norm itself (`witnesses`).
    finite = (tf.constant(True) if scaled else tf.math.is_finite(norm)) if guarded else None
    if not guarded:
        optimizer.apply_gradients(pairs)
    elif distributed:
        _guarded_distributed_apply(optimizer, pairs, finite)
    else:  # (a stateful cond: it runs although nothing reads its result)
        tf.cond(finite, lambda: _apply(optimizer, pairs), lambda: tf.constant(False))
    if context is not None:
        context.used_apply_gradients = True
        # An update is held back exactly when `finite` is False, so the norm witnesses both.
        context.witnesses.append(tf.constant(0.0) if scaled else norm)
    return norm


def _global_norm(gradients) -> tf.Tensor:
    """`tf.linalg.global_norm` in one op fewer (an add of the halved squares instead of their
    stack and sum): it runs every step, and each op costs a fast model ~1 us of a ~200 us step."""
    if not gradients:
        return tf.constant(0.0)
    halves = [tf.nn.l2_loss(g) for g in gradients]
    return tf.sqrt(2.0 * (halves[0] if len(halves) == 1 else tf.add_n(halves)))


def _apply(optimizer, pairs):
    optimizer.apply_gradients(pairs)
    return tf.constant(True)


def _guarded_distributed_apply(optimizer, pairs, finite):
    """The skip guard under a strategy: the optimizer's update uses merge_call, which a cond in
    replica context cannot hold, so the cond runs in cross-replica context on the (identical)
    decision of the first replica."""
    def in_cross_replica_context(strategy, finite, pairs):
        def apply():
            strategy.extended.call_for_each_replica(
                lambda p: optimizer.apply_gradients(p), args=(pairs,))
            return tf.constant(True)

        return tf.cond(strategy.experimental_local_results(finite)[0], apply,
                       lambda: tf.constant(False))

    tf.distribute.get_replica_context().merge_call(in_cross_replica_context, args=(finite, pairs))


def _reduce_once(optimizer) -> None:
    """Stops a Keras optimizer from summing the replicas' gradients a second time.

    Keras 3's TensorFlow optimizer all-reduces (sums) gradients in `apply_gradients` and clips
    before that; `apply_gradients` above averages them once itself, before the norm, the
    finiteness check and the clipping, so the optimizer must apply them as they are. Keras offers
    no public switch for this: `tests/engine/test_distribute.py` pins the hook's existence, and the
    distributed-equals-one-device tests pin the result.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    for opt in {id(optimizer): optimizer, id(inner): inner}.values():
        if not hasattr(opt, "_all_reduce_sum_gradients"):
            raise ConfigError(f"this Keras version ({keras.__version__}) changed how optimizers reduce "
                              f"gradients across replicas; looptrain's distributed step needs a Keras "
                              f"3 release with Optimizer._all_reduce_sum_gradients")
        opt._all_reduce_sum_gradients = list
