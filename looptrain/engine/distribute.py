"""tf.distribute for the loop: the strategy, who writes, and how workers agree.

`train.strategy` picks it:
- `default`: no distribution (one device; the fast path with the XLA-compiled update).
- `mirrored`: `MirroredStrategy` over `train.num_devices` local devices: GPUs, or on a CPU-only host
  that many logical CPU devices (so the distributed path runs, and is tested, anywhere).
- `multiworker`: `MultiWorkerMirroredStrategy`, one process per host (or per `looptrain launch`
  worker), configured by the `TF_CONFIG` environment variable; worker 0 is the chief.

The global batch stays `train.batch_size`: each global batch is cut into one slice per replica
(`data.pipeline`), each replica's loss is its examples' losses divided by the global batch size,
and the gradients are summed across replicas, so every update equals the one-device update.

Only the chief writes the run directory; the other workers write checkpoints and summaries into
a temporary directory of their own (TensorFlow's guidance: every worker takes part in saving) and
read the chief's checkpoints on `--resume`, so the run directory must be on storage every host can
read. Decisions that end a run (a stop signal on any worker, early stopping) are taken from values
all workers share (`Agreement`), so every worker stops at the same step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from looptrain.errors import ConfigError


# Logical CPU devices share one host's cores: they exist to run (and test) the distributed path
# anywhere, never to speed it up, and each adds a copy of the graph (64 took 7 minutes to build
# on this project's 2-core machine before they failed on batches smaller than 64).
MAX_LOGICAL_CPUS = 8


@dataclass(frozen=True)
class Role:
    """This process's place in the cluster."""

    worker: int = 0
    num_workers: int = 1

    @property
    def is_chief(self) -> bool:
        return self.worker == 0


def make_strategy(strategy: str, num_devices: int) -> tf.distribute.Strategy | None:
    """The configured strategy (None for `default`). Call before any other TensorFlow op: logical
    devices and multi-worker collectives can only be set up before TensorFlow initialises.

    Raises:
        ConfigError: impossible device counts, or `multiworker` without `TF_CONFIG`.
    """
    if strategy == "default":
        if num_devices > 1:
            raise ConfigError(f"train.num_devices = {num_devices} needs train.strategy = mirrored "
                              f"(--strategy mirrored --num-devices {num_devices})")
        return None
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(local_devices(num_devices))
    if not os.environ.get("TF_CONFIG"):
        raise ConfigError("train.strategy = multiworker needs the TF_CONFIG environment variable "
                          "(cluster and task index); start the workers with looptrain launch or "
                          "set TF_CONFIG on each host")
    if num_devices > 1 and not tf.config.list_physical_devices("GPU"):
        raise ConfigError("train.num_devices > 1 with multiworker needs GPUs: each CPU worker "
                          "computes on one device (start more workers instead)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def local_devices(num_devices: int) -> list[str]:
    """The first `num_devices` GPUs (0 = all), or that many logical CPU devices without GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if num_devices > len(gpus):
            raise ConfigError(f"train.num_devices = {num_devices} but this host has {len(gpus)} GPUs")
        return [f"/gpu:{i}" for i in range(num_devices or len(gpus))]
    count = max(num_devices, 1)
    if count > MAX_LOGICAL_CPUS:
        raise ConfigError(f"train.num_devices = {count}: this host has no GPU, and at most "
                          f"{MAX_LOGICAL_CPUS} logical CPU devices are made (they share the same "
                          f"cores, so they run the distributed path without speeding it up, and each "
                          f"adds a copy of the graph to build)")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow already initialised its devices in this process
        pass
    available = len(tf.config.list_logical_devices("CPU"))
    if available < count:
        raise ConfigError(f"train.num_devices = {count}: TensorFlow already started in this process "
                          f"with {available} CPU device(s); start a new process (looptrain train), "
                          f"or call looptrain.engine.distribute.local_devices({count}) before any "
                          f"other TensorFlow op")
    return [f"/cpu:{i}" for i in range(count)]


def check_replicas(strategy: tf.distribute.Strategy | None, batch_size: int) -> None:
    """Refuses more replicas than examples in a batch: a replica without examples would run the
    model on an empty slice, which TensorFlow's convolutions cannot do.

    Raises:
        ConfigError: naming both numbers.
    """
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if replicas > batch_size:
        raise ConfigError(f"train.batch_size = {batch_size} is smaller than the {replicas} replicas "
                          f"(devices x workers) it is split across; every replica needs examples: "
                          f"raise the batch size or use fewer devices")


def role_of(strategy: tf.distribute.Strategy | None) -> Role:
    """Which worker this process is (from `TF_CONFIG` under `multiworker`)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return Role()
    spec = json.loads(os.environ["TF_CONFIG"])
    workers = spec.get("cluster", {}).get("worker", [])
    return Role(worker=int(spec.get("task", {}).get("index", 0)), num_workers=len(workers))


@dataclass(frozen=True)
class Replicas:
    """The replicas whose slices one input pipeline produces: `local` consecutive replicas from
    `first`, out of `total` in all."""

    first: int
    local: int
    total: int


def distribute_dataset(strategy: tf.distribute.Strategy, make_dataset) -> tf.distribute.DistributedDataset:
    """`make_dataset(replicas)` on every worker, each element one replica's slice of a global batch."""

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        return make_dataset(Replicas(first=context.input_pipeline_id * local, local=local,
                                     total=context.num_replicas_in_sync))

    # From a function, tf.distribute neither rebatches nor shards: the slices are ours, and the
    # elements of a worker's pipeline go to its local replicas in turn.
    return strategy.distribute_datasets_from_function(dataset_fn)


class Agreement:
    """Values every worker agrees on: sums and means over all workers.

    Without a multi-worker strategy these are the local values (one process decides alone).
    """

    def __init__(self, strategy: tf.distribute.Strategy | None, role: Role):
        self.strategy = strategy if role.num_workers > 1 else None
        if self.strategy is not None:
            self._sum = tf.function(lambda v: self._reduce(tf.distribute.ReduceOp.SUM, v), autograph=False)
            self._mean = tf.function(lambda v: self._reduce(tf.distribute.ReduceOp.MEAN, v), autograph=False)

    def _reduce(self, op, values):
        per_replica = self.strategy.run(lambda: tf.identity(values))
        return self.strategy.reduce(op, per_replica, axis=None)

    def signal(self, requested: int | None, signals: tuple[int, ...]) -> int | None:
        """The stop signal any worker received (the first of `signals` that one did), or None."""
        if self.strategy is None:
            return requested
        counts = self._sum(tf.constant([float(requested == s) for s in signals], tf.float64))
        return next((s for s, count in zip(signals, counts.numpy()) if count > 0), None)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the workers (identical on all of them)."""
        if self.strategy is None:
            return values
        means = self._mean(tf.constant(list(values.values()), tf.float64)).numpy()
        return dict(zip(values, (float(m) for m in means)))


@contextlib.contextmanager
def scratch_directory(run_path: Path, worker: int):
    """A temporary directory for a non-chief worker's writes, removed afterwards.

    One killed outright (SIGKILL) cannot remove its own; the next worker with the same index on
    the same run removes it (only one session trains a run at a time: the chief holds its lock).
    """
    run_id = hashlib.sha1(str(run_path.resolve()).encode()).hexdigest()[:10]
    prefix = f"looptrain-{run_id}-worker{worker}-"
    for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        yield scratch
