"""`TrainCall`: many steps of a task's `train_step` in one compiled call, and the log step's writes.

A call runs up to the loop's next event in one `tf.function` (a `tf.while_loop` that pulls each
batch from the iterator inside the graph), so Python runs once per call, not once per step. The
step's returned scalars are summed through the loop (no metric object updated per step: that
costs a fast model a tenth of its speed) and added to running sums once per call. When the call
ends on a log step, the same compiled call turns the sums into means, writes them (the in-call
hooks: scalar summaries, histograms) and resets them: every separate call or read costs Python a
few hundred microseconds, which a fast model notices.

Non-finite steps. By default (`skip_nonfinite` False) a call ends right after the first step
whose returned values (or gradients reported by `lt.apply_gradients`) are not finite; that step's
update has been applied (holding every update back costs a fast model a fifth of its speed), and
the loop outside stops the run without saving anything after it, so nothing non-finite ever
reaches a checkpoint. With `skip_nonfinite` the step's update is held back by
`lt.apply_gradients` and the call goes on. Either way the step is counted in `nonfinite_steps`
(checkpointed) with its non-finite values, and left out of the means (under "stop", the whole call
that it cut short is: the run ends there).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import tensorflow as tf

from looptrain.engine.autograph import user_call
from looptrain.engine.steps import StepContext, step_context
from looptrain.errors import TaskError

# The steps are counted in float32 (one loop variable carries them with the step's values): exact
# up to 2 ** 24.
_MAX_STEPS = 2 ** 24


@dataclass(frozen=True)
class CallResult:
    """What one `TrainCall` did."""

    steps: int  # steps run: as asked, or fewer when a non-finite step stopped the call
    step: int  # the global step after the call
    examples: int  # examples in the steps run
    nonfinite_steps: int  # the run's count of non-finite steps so far
    logs: dict[str, float] | None  # at a log step: `train/<name>` means and log values, else None


class InCallHook:
    """Work traced into the compiled call, run at the end of the calls where it is due (e.g.
    scalar summaries at log steps, histograms every N steps)."""

    def due(self, step: int, total: int) -> bool:
        """Whether it runs at the end of a call that ends at `step` (`total`: the last step)."""
        return False

    def in_call(self, step: tf.Tensor, logs: dict[str, tf.Tensor]) -> None:
        """Runs inside the trace; `logs` are the log step's `train/...` tensors (zeros when the
        call does not end on a log step)."""
        return None  # (a body of its own: AutoGraph cannot convert a docstring alone)

    def after_step(self, step: tf.Tensor, sound: tf.Tensor) -> None:
        """Runs inside the compiled loop after every step (only if overridden: nothing is traced
        otherwise): `step` is the global step it reached (int64), `sound` whether its values were
        finite and its update applied."""


class TrainCall:
    """Compiled calls of a task's `train_step`.

    Args:
        task: its `train_step(batch)` returns named scalars.
        iterator: the training iterator (its first trace discovers the returned names).
        step: the checkpointed global step, advanced by every step run.
        strategy: the `tf.distribute` strategy, or None.
        sized: elements are `(batch, global_batch_size)` (from `data.pipeline`; distributed:
            `(replica_batch, global_batch_size)`); otherwise the step measures its batch (one
            device) or sums the replicas' batch sizes.
        skip_nonfinite: `on_nan = "skip"`: non-finite steps' updates are held back and the call
            goes on (needs `lt.apply_gradients` in the step).
        jit_compile: compile each update (not the iterator) with XLA.
        log_values: extra tensors read at log steps (e.g. learning rates), by name.
        hooks: in-call hooks; `__call__` says for each whether it is due.
    """

    def __init__(self, task, iterator, *, step: tf.Variable, strategy=None, sized: bool = False,
                 skip_nonfinite: bool = False, jit_compile: bool = False,
                 log_values: dict[str, Callable[[], tf.Tensor]] | None = None,
                 hooks: Sequence[InCallHook] = ()):
        self.task, self.step, self.strategy, self.sized = task, step, strategy, sized
        self.skip_nonfinite = skip_nonfinite
        self.log_values = dict(log_values or {})
        self.hooks = list(hooks)
        self._per_step = [h for h in self.hooks if type(h).after_step is not InCallHook.after_step]
        self.names: list[str] | None = None  # set by the first trace of the step
        self._update = tf.function(self._update_fn, jit_compile=jit_compile, autograph=False) if (
            jit_compile and strategy is None) else self._update_fn
        # Discover what the step returns (a trace, nothing runs); optimizer slots a step creates
        # are created here, under the strategy's scope, before any checkpoint restore. The
        # compiled call's loop calls this same function, so the step is traced once, not twice
        # (a nested function is inlined into the loop: no cost per step).
        self._next_step = tf.function(lambda it: self._one(next(it)), autograph=False)
        with strategy.scope() if strategy else contextlib.nullcontext():
            self._next_step.get_concrete_function(iterator)
        count = len(self.names)
        self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_steps")
        self.last_nonfinite = {"step": tf.Variable(0, dtype=tf.int64, trainable=False),
                               "values": tf.Variable(tf.zeros([count]), trainable=False)}
        # Sums since the last log step (not checkpointed: a log interval never spans a restart).
        self._sums = tf.Variable(tf.zeros([count]), trainable=False)
        self._count = tf.Variable(0.0, trainable=False)
        self.function = tf.function(self._call, autograph=False)
        self._args: dict[tuple, tuple] = {}  # (num_steps, log, *due) -> the call's arguments
        self._iterator = self._concrete = None  # the last iterator called on, its function

    # ---------------------------------------------------------------- one step
    def _update_fn(self, batch, global_batch_size, num_replicas):
        """The task's step in its context; returns float32 `[1, *values, examples, witness]`: the
        step counts itself, `witness` is the sum of the gradient norms `lt.apply_gradients`
        reported (0 without any), non-finite if one was (or an update was held back), so the
        step was sound if and only if the vector is finite."""
        context = StepContext(global_batch_size=global_batch_size, num_replicas=num_replicas,
                              skip_nonfinite=self.skip_nonfinite)
        with step_context(context):
            outputs = user_call(self.task.train_step, batch)
        if self.skip_nonfinite and not context.used_apply_gradients:
            raise TaskError(f"on_nan = 'skip' holds back a non-finite update, which needs "
                            f"{type(self.task).__name__}.train_step to apply its gradients with "
                            f"lt.apply_gradients; use on_nan = 'stop' or that helper")
        if num_replicas > 1 and not context.used_apply_gradients:
            raise TaskError(f"under a tf.distribute strategy {type(self.task).__name__}.train_step "
                            f"must apply its gradients with lt.apply_gradients (and average its "
                            f"loss with lt.batch_mean), or the replicas' updates do not add up")
        # The norms themselves, not a test of them: the sums through the loop test the whole
        # vector anyway, and a finiteness test per norm with its stack, all and select made the
        # classifier's compiled call on the mlp bench 1.21x the bare loop's time, against 1.14x
        # without. (A sum of norms beyond float32's range, 3.4e38 within one call, counts as
        # non-finite: gradients that large have diverged already.)
        witnesses = context.witnesses
        witness = (witnesses[0] if len(witnesses) == 1 else tf.add_n(witnesses)) if witnesses else 0.0
        return self._stack(outputs, global_batch_size, witness)

    def _stack(self, outputs, size, witness) -> tf.Tensor:
        if not isinstance(outputs, dict) or not outputs:
            raise TaskError(f"{type(self.task).__name__}.train_step must return a non-empty dict "
                            f"of named scalars, e.g. {{'loss': loss}}; got {type(outputs).__name__}")
        names = list(outputs)
        if self.names is None:
            self.names = names
        elif names != self.names:
            raise TaskError(f"{type(self.task).__name__}.train_step returned {names} after {self.names}; "
                            f"return the same names every step")
        values = []
        for name, value in outputs.items():
            value = tf.convert_to_tensor(value)
            if value.shape.rank != 0:
                raise TaskError(f"{type(self.task).__name__}.train_step returned '{name}' of shape "
                                f"{value.shape}; return scalars (e.g. a batch mean)")
            values.append(tf.cast(value, tf.float32))
        return tf.stack([1.0, *values, tf.cast(size, tf.float32), tf.cast(witness, tf.float32)])

    def _one(self, element):
        """One step on one iterator element: `[1, *values, examples, witness]` (`_update_fn`)."""
        if self.strategy is None:
            batch, size = element if self.sized else (element, None)
            if size is None:
                size = tf.shape(tf.nest.flatten(batch)[0])[0]
            return self._update(batch, size, 1)
        replicas = self.strategy.num_replicas_in_sync

        def replica_fn(batch, size=None):
            if size is None:  # a dataset the strategy split itself: count the global batch
                local = tf.shape(tf.nest.flatten(batch)[0])[0]
                size = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)
            return self._update_fn(batch, size, replicas)

        args = tuple(element) if self.sized else (element,)
        # The mean of the replicas' equal global batch sizes (and counts) is that size, exact in
        # float32; a non-finite value on any replica leaves the mean non-finite.
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN,
                                    self.strategy.run(replica_fn, args=args), axis=None)

    # ---------------------------------------------------------------- the loops
    def _until_nonfinite(self, iterator, num_steps):
        """Steps until `num_steps` or the first unsound one (which ends the loop).

        One loop variable, the sums of the steps' vectors (`_update_fn`, the first entry counting
        the steps), and one test per step: each loop variable and op costs the compiled loop a few
        microseconds per step, which a fast model notices (docs/performance-bench.md; a second
        variable keeping the last step's vector made the task bench's calls 1.045x the bare
        loop's time, against 1.028x without). An unsound step leaves the sums non-finite:
        `|sums| < bounds` then fails and ends the loop, as the step count reaching `num_steps`
        does. Its non-finite values are the sums' non-finite entries (the steps before it were
        finite); its finite ones are lost in the sums, and not recorded.
        """
        zeros = tf.zeros([len(self.names) + 3])
        bounds = tf.concat([[tf.cast(num_steps, tf.float32)], tf.fill([len(self.names) + 2],
                                                                      tf.float32.max)], 0)

        def body(sums):
            values = self._next_step(iterator)
            if self._per_step:
                self._after_step(sums[0], tf.reduce_all(tf.math.is_finite(values)))
            return (sums + values,)

        (sums,) = tf.while_loop(lambda sums: tf.reduce_all(tf.abs(sums) < bounds), body, (zeros,))
        bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(sums)))
        steps = tf.cast(sums[0], num_steps.dtype)
        self._count_nonfinite(tf.cast(bad, tf.int64), steps, sums[1:-2], bad)
        # A call cut short by an unsound step ends the run: it adds nothing to the means.
        kept = tf.where(bad, zeros, sums)
        return steps, kept[1:-2], kept[0], sums[-2], tf.logical_not(bad)

    def _skipping(self, iterator, num_steps):
        """All `num_steps` steps; unsound ones (their updates held back) left out of the sums."""
        zeros = tf.zeros([len(self.names)])

        def body(i, sums, counted, examples, bad, last, last_at):
            values = self._next_step(iterator)
            sound = tf.reduce_all(tf.math.is_finite(values))
            values, size = values[1:-2], values[-2]
            self._after_step(i, sound)
            return (i + 1, sums + tf.where(sound, values, zeros), counted + tf.cast(sound, tf.float32),
                    examples + size, bad + tf.cast(tf.logical_not(sound), tf.int64),
                    tf.where(sound, last, values), tf.where(sound, last_at, i + 1))

        i, sums, counted, examples, bad, last, last_at = tf.while_loop(
            lambda i, *_: i < num_steps, body,
            (tf.constant(0, num_steps.dtype), zeros, tf.constant(0.0), tf.constant(0.0),
             tf.constant(0, tf.int64), zeros, tf.constant(0, num_steps.dtype)))
        self._count_nonfinite(bad, last_at, last, bad > 0)
        return i, sums, counted, examples, tf.constant(True)

    def _after_step(self, i, sound):
        """The per-step hooks, after the step `i` steps into the call."""
        if self._per_step:
            step = self.step + tf.cast(i, tf.int64) + 1
            for hook in self._per_step:
                user_call(hook.after_step, step, sound)

    def _count_nonfinite(self, count, at, values, any_bad):
        """Adds `count` non-finite steps; the last one was `at` steps into the call, with `values`
        (only its non-finite entries mean anything: `last_nonfinite_values` reads those)."""
        step = self.step + tf.cast(at, tf.int64)
        self.nonfinite_steps.assign_add(count)
        last = self.last_nonfinite
        last["step"].assign(tf.where(any_bad, step, last["step"]))
        last["values"].assign(tf.where(any_bad, values, last["values"]))

    def _call(self, iterator, num_steps, flags):
        loop = self._skipping if self.skip_nonfinite else self._until_nonfinite
        steps, sums, counted, examples, whole = loop(iterator, num_steps)
        step = self.step.assign_add(tf.cast(steps, tf.int64))
        self._sums.assign_add(sums)
        self._count.assign_add(counted)
        # A call a non-finite step cut short (or ended: `whole` False) did not reach its event:
        # it writes nothing.
        complete = tf.equal(steps, num_steps) & whole
        logged = flags[0] & complete

        def read_and_reset():
            # NaN when every step of the interval was skipped (on_nan = "skip"): no step
            # measured anything, and a mean of 0 would read as a perfect loss.
            means = self._sums / self._count
            logs = {f"train/{name}": means[i] for i, name in enumerate(self.names)}
            logs.update({f"train/{name}": tf.cast(read(), tf.float32)
                         for name, read in self.log_values.items()})
            logs["train/nonfinite_steps"] = tf.cast(self.nonfinite_steps, tf.float32)
            self._sums.assign(tf.zeros_like(self._sums))
            self._count.assign(0.0)
            return logs

        empty = {key: tf.constant(0.0) for key in self.log_keys}
        logs = tf.cond(logged, read_and_reset, lambda: empty)
        for hook, due in zip(self.hooks, tf.unstack(flags[1:], num=len(self.hooks))):
            def run(hook=hook):
                user_call(hook.in_call, step, logs)
                return tf.constant(True)

            tf.cond(due & complete, run, lambda: tf.constant(False))
        # One vector out (float64: exact for steps and counts up to 2 ** 53): each output tensor
        # read costs Python tens of microseconds.
        head = [tf.cast(steps, tf.float64), tf.cast(step, tf.float64), tf.cast(examples, tf.float64),
                tf.cast(self.nonfinite_steps, tf.float64), tf.cast(logged, tf.float64)]
        return tf.concat([head, tf.cast(tf.stack(list(logs.values())), tf.float64)], 0)

    @property
    def log_keys(self) -> list[str]:
        """The keys of a log step's `logs`, in order."""
        return ([f"train/{n}" for n in self.names] + [f"train/{n}" for n in self.log_values]
                + ["train/nonfinite_steps"])

    def __call__(self, iterator, num_steps: int, *, log: bool, due: Sequence[bool] = ()) -> CallResult:
        """Runs `num_steps` steps; `log` says whether their end is a log step and `due`, for each
        hook, whether it runs at their end (both ignored if a non-finite step cuts the call short)."""
        if len(due) != len(self.hooks):
            raise ValueError(f"TrainCall: {len(due)} due flags for {len(self.hooks)} hooks")
        if num_steps > _MAX_STEPS:
            raise ValueError(f"TrainCall: {num_steps} steps in one call; at most {_MAX_STEPS}")
        # Python's share of a call is a fast model's loss (a call of 100 MLP steps is ~17 ms on a
        # 2-core VM): the arguments are made once per distinct call, and the concrete function is
        # called directly (a tf.function's dispatch, binding and matching the arguments' types,
        # cost ~0.2 ms a call there).
        key = (num_steps, log, *due)
        args = self._args.get(key)
        if args is None:
            if len(self._args) >= 64:  # a run has few distinct call lengths; bound them anyway
                self._args.clear()
            args = self._args[key] = (tf.constant(num_steps), tf.constant([log, *due]))
        if iterator is not self._iterator:
            self._iterator = iterator
            self._concrete = self.function.get_concrete_function(iterator, *args)
        out = self._concrete(iterator, *args).numpy().tolist()
        steps, step, examples, nonfinite, logged = (int(v) for v in out[:5])
        values = dict(zip(self.log_keys, out[5:])) if logged else None
        return CallResult(steps, step, examples, nonfinite, values)

    def last_nonfinite_values(self) -> dict[str, float]:
        """The non-finite returned values of the last non-finite step, by name (none when only
        its gradients were)."""
        values = zip(self.names, self.last_nonfinite["values"].numpy().tolist())
        return {name: value for name, value in values if not math.isfinite(value)}

