"""Metric writers: one interface (CLU's `MetricWriter`) over TensorBoard, a JSON-lines file and MLflow.

    write_scalars(step, {"split/name": value})   one record per log or evaluation step
    rewind(step)                                 forget what was written for steps after `step`
    flush(), close()

`engine.summaries.SummaryWriter` is the TensorBoard one (it also writes inside the compiled call);
`JsonlWriter` appends `RUN/metrics.jsonl` for tools that read neither TensorBoard nor MLflow (one
JSON object per line: `step`, `time` (Unix seconds) and every `split/name` value, `null` for a
non-finite one), flushed at every write and rewound on resume exactly as the TensorBoard events
are; `MlflowWriter` logs into an MLflow run (optional: `pip install 'looptrain[mlflow]'`);
`MultiWriter` writes to several.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

from looptrain.errors import ConfigError
from looptrain.files import write_text_atomic

METRICS_FILE = "metrics.jsonl"  # in the run directory


class MetricWriter:
    """The interface: scalars by step; subclasses override what they support."""

    def write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        raise NotImplementedError

    def rewind(self, step: int) -> int:
        """Removes what was written for steps after `step` (a resumed run runs them again);
        returns how many records went. Default: nothing can be removed."""
        return 0

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MultiWriter(MetricWriter):
    """Writes to every writer in `writers`."""

    def __init__(self, writers: Sequence[MetricWriter]):
        self.writers = list(writers)

    def write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for writer in self.writers:
            writer.write_scalars(step, values)

    def rewind(self, step: int) -> int:
        return sum(writer.rewind(step) for writer in self.writers)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class JsonlWriter(MetricWriter):
    """Appends one JSON object per `write_scalars` to `path`, flushed at once (a kill loses at
    most a torn last line, which `rewind` removes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = None

    def write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        record = {"step": int(step), "time": round(time.time(), 3)}
        for key, value in values.items():
            value = float(value)
            record[key] = value if math.isfinite(value) else None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def rewind(self, step: int) -> int:
        self.close()
        return drop_lines_after(self.path, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a metrics file (a torn last line left out)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def drop_lines_after(path: str | Path, step: int) -> int:
    """Removes the records of steps after `step` (and any torn line) from a metrics file,
    rewriting it next to itself and swapping it in with a rename; returns how many lines went."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))
    return len(lines) - len(kept)


class MlflowWriter(MetricWriter):
    """Scalars into one MLflow run per run directory (a resumed run continues the same one).

    The tracking store is `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else a local file store in
    `RUN/mlruns` (MLflow's file store, which MLflow 3 keeps in maintenance mode: looptrain sets
    `MLFLOW_ALLOW_FILE_STORE=true` for it; `mlflow ui --backend-store-uri RUN/mlruns`, or point
    `$MLFLOW_TRACKING_URI` at a server or `sqlite:///...` database); the experiment is
    `$MLFLOW_EXPERIMENT_NAME` or "looptrain"; `RUN/mlflow.json` remembers the run's id. MLflow
    cannot delete logged values: steps run again after a resume appear twice there (TensorBoard and
    metrics.jsonl are rewound). It connects at the first write.

    Raises:
        ConfigError: MLflow is not installed.
    """

    def __init__(self, run_path: str | Path, *, params: Mapping[str, object] | None = None,
                 tracking_uri: str | None = None):
        try:
            from mlflow.tracking import MlflowClient  # noqa: F401
        except ImportError:
            raise ConfigError("train.mlflow = true needs MLflow, which is not installed: pip install "
                              "'looptrain[mlflow]'") from None
        self.run_path = Path(run_path)
        self.params = dict(params or {})
        self.tracking_uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                             or (self.run_path.resolve() / "mlruns").as_uri())
        self.client, self.run_id = None, None

    def _connect(self) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("file:"):
            # MLflow 3 refuses its file store (in maintenance mode) unless this is set; a local
            # directory is still the store that needs no server or database.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        record = self.run_path / "mlflow.json"
        saved = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        if saved.get("tracking_uri") == self.tracking_uri:
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "looptrain")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment
                         else self.client.create_experiment(name))
        self.run_id = self.client.create_run(experiment_id,
                                             run_name=self.run_path.resolve().name).info.run_id
        write_text_atomic(record, json.dumps({"tracking_uri": self.tracking_uri,
                                              "run_id": self.run_id}) + "\n")
        params = [Param(key, str(value)[:6000]) for key, value in self.params.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        if self.client is None:
            self._connect()
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value in values.items()
                   if math.isfinite(float(value))]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def close(self) -> None:
        if self.client is not None:
            self.client.set_terminated(self.run_id)
            self.client = None
