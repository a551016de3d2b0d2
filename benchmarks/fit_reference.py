"""The same model trained by Keras `model.fit` instead of looptrain's loop, for comparison.

    python benchmarks/fit_reference.py --config configs/textcnn.toml --data-dir DIR [--seed 1]
        [--set data.seq_length=256] [--steps N --save PATH]

Same model class (from looptrain's registry), same encoded data (looptrain's loader), same batch
size, optimizer (Adam at `train.learning_rate`) and number of epochs; `EarlyStopping` on val
accuracy, checked once per epoch, with the patience of the config converted from steps to epochs,
and the best epoch's weights restored. Prints one JSON line: val and test accuracy, epochs, seconds.

`--steps N` is a short job instead (what `benchmarks/startup.py` times against `scripts/train.py
--max-steps N`): N steps of `fit`, a validation pass, the weights saved to `--save`. `fit` on
arrays stops at the end of the data when `steps_per_epoch` asks for more ("ran out of data": 200
steps on the embedded corpus's 125 batches ran 125), so the job asks for the epochs that cover N
steps and a callback stops it after N; the script checks that the optimizer took exactly N. (A
`tf.data` pipeline of the arrays instead, shuffled, batched, repeated and prefetched with tf.data's
autotuning, took 85.5 s for the 200 steps of the TextCNN against 67.4 s on the 2-core machine: not
the fairest reference.)
"""

from __future__ import annotations

import argparse
import json
import math
import time

from looptrain import config as config_lib


class _StopAfter:
    """A Keras callback that ends `fit` after `steps` batches and notes the wall-clock time
    (`time.time()`) at the end of batch `mark` as `marked` (made a `keras.callbacks.Callback` in
    `main`, once Keras is imported)."""

    def __new__(cls, steps: int, mark: int):
        import keras

        class StopAfter(keras.callbacks.Callback):
            seen, marked = 0, None

            def on_train_batch_end(self, batch, logs=None):
                self.seen += 1
                if self.seen == mark:
                    self.marked = time.time()
                if self.seen >= steps:
                    self.model.stop_training = True

        return StopAfter()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data-dir", default="", help="default: the config's data (the embedded corpus)")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, help="a short job: N steps, a validation pass, --save")
    p.add_argument("--save", help="--steps: where the weights go (a .weights.h5 file)")
    args = p.parse_args(argv)
    config = config_lib.load_toml(args.config).replace(config_lib.parse_set(args.set))
    if args.seed is not None:
        config = config.replace({"train.seed": args.seed})

    import keras

    from looptrain.data.corpus import load_corpus, resolve_data_dir
    from looptrain.models import build_model, create_model

    t = config.train
    data_dir = resolve_data_dir(args.data_dir or config.data.data_dir, config.data.embedded)
    corpus = load_corpus(data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size)
    keras.utils.set_random_seed(t.seed)
    model = create_model(config.model, vocab_size=corpus.vocab_size,
                         num_classes=len(corpus.labels), data_kind=corpus.kind)
    build_model(model, corpus.example_shape, corpus.dtype)
    model.compile(optimizer=keras.optimizers.Adam(t.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    (x, y), (x_val, y_val), (x_test, y_test) = (corpus.splits[s] for s in ("train", "val", "test"))
    if args.steps:
        # The step at which looptrain logs first (its first line in metrics.jsonl).
        mark = min(t.log_every, args.steps)
        stop = _StopAfter(args.steps, mark)
        began = time.perf_counter()
        model.fit(x, y, batch_size=t.batch_size, epochs=math.ceil(args.steps * t.batch_size / len(y)),
                  verbose=0, callbacks=[stop])
        if int(model.optimizer.iterations) != args.steps:
            raise SystemExit(f"fit_reference.py: fit ran {int(model.optimizer.iterations)} steps, "
                             f"not {args.steps}")
        _, val = model.evaluate(x_val, y_val, batch_size=t.batch_size, verbose=0)
        if args.save:
            model.save_weights(args.save)
        print(json.dumps({"val_accuracy": float(val), "seconds": round(time.perf_counter() - began, 1),
                          "steps": int(model.optimizer.iterations), "first_logged_step": mark,
                          "first_logged_step_time": stop.marked}))
        return
    per_epoch = math.ceil(len(y) / t.batch_size)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                         patience=max(1, math.ceil(t.patience / per_epoch)),
                                         restore_best_weights=True)
    began = time.perf_counter()
    history = model.fit(x, y, batch_size=t.batch_size, epochs=t.num_epochs,
                        validation_data=(x_val, y_val), callbacks=[stop], verbose=0)
    seconds = time.perf_counter() - began
    _, val = model.evaluate(x_val, y_val, batch_size=t.batch_size, verbose=0)
    _, test = model.evaluate(x_test, y_test, batch_size=t.batch_size, verbose=0)
    print(json.dumps({"val_accuracy": float(val), "test_accuracy": float(test),
                      "epochs": len(history.history["loss"]), "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
