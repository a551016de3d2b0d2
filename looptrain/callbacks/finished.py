"""`Finished`: `RUN/finished.json` while the run has reached its end, for readers that wait for it.

The sidecar evaluator (`looptrain evaluate --watch`) exits once it exists and every checkpoint is
evaluated. It is written when `fit` ends by reaching the run's end (epochs, max_steps, early
stopping, or nothing left to do), not after a signal, the time limit or an error (the run will go
on), and removed when a session starts, since a resume may train further.
"""

from __future__ import annotations

import json
import time

from looptrain.engine.callback import Callback
from looptrain.files import write_text_atomic

FINISHED_FILE = "finished.json"
FINAL_REASONS = ("epochs", "max_steps", "early_stopping", "already_done")


class Finished(Callback):
    """Removes `RUN/finished.json` when training starts; writes it when the run has ended."""

    def on_fit_begin(self, loop) -> None:
        (loop.run_path / FINISHED_FILE).unlink(missing_ok=True)

    def on_fit_end(self, loop, result) -> None:
        if result is None or result.stop_reason not in FINAL_REASONS:
            return
        record = {"step": result.step, "stop_reason": result.stop_reason,
                  "checkpoint": loop.last_checkpoint, "time": round(time.time(), 3)}
        write_text_atomic(loop.run_path / FINISHED_FILE, json.dumps(record, indent=2) + "\n")
