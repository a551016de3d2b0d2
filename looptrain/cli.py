"""Command-line front ends shared by `scripts/*.py`: argument parsing and the user-error contract.

A `UserError` anywhere below becomes one line on stderr and exit status 2 (no traceback); Ctrl-C
exits 130. Logic lives in the library; this module only maps flags to config keys.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

# Quiet TensorFlow's C++ start-up banner for CLI users (the environment still wins).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from looptrain import config as config_lib  # noqa: E402
from looptrain.errors import Stopped, UserError  # noqa: E402
from looptrain.quiet import import_tensorflow  # noqa: E402
from looptrain.run import RunDir  # noqa: E402

# Script flag -> config key. Flags sit between the config file and --set in precedence.
TRAIN_FLAGS = {
    "data_dir": "data.data_dir", "model": "model.name", "epochs": "train.num_epochs",
    "max_steps": "train.max_steps", "batch_size": "train.batch_size",
    "learning_rate": "train.learning_rate", "seed": "train.seed", "eval_every": "train.eval_every",
    "checkpoint_every": "train.checkpoint_every", "patience": "train.patience",
    "on_nan": "train.on_nan", "deterministic": "train.deterministic",
    "strategy": "train.strategy", "num_devices": "train.num_devices", "task": "task.path",
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit status 2), like every user error."""

    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Runs a script's `main`, turning user errors into one stderr line and their exit status (2)."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:  # SIGINT/SIGTERM, after the checkpoint was written
        print(exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def train_parser() -> argparse.ArgumentParser:
    p = Parser(prog="train.py", description="Train a model with looptrain's custom loop.")
    p.add_argument("--config", help="TOML config file (default: built-in reference TextCNN)")
    p.add_argument("--run-dir", default="runs/default", help="run directory (default: runs/default)")
    p.add_argument("--data-dir", help="directory with train/val/test files (default: embedded corpus)")
    p.add_argument("--task", metavar="MODULE:ATTR",
                   help="train a task of your own (an lt.Task subclass; its module importable, e.g. "
                        "on PYTHONPATH); its arguments: [task] in --config, --set task.KEY=VALUE")
    p.add_argument("--model", help="model.name: a registered model (see README: Models) or "
                                   "module:Class")
    p.add_argument("--epochs", type=int, help="train.num_epochs")
    p.add_argument("--max-steps", type=int, help="train.max_steps (0 = no limit)")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--learning-rate", type=float, help="train.learning_rate")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--eval-every", type=int, help="train.eval_every (steps)")
    p.add_argument("--checkpoint-every", type=int, help="train.checkpoint_every (steps)")
    p.add_argument("--patience", type=int, help="train.patience (steps without improvement)")
    p.add_argument("--on-nan", choices=("stop", "skip"),
                   help="train.on_nan: stop on a non-finite loss/gradient (default) or skip the batch")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction,
                   help="train.deterministic: TensorFlow op determinism (default on)")
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                   help="train.strategy: tf.distribute strategy (multiworker: see launch_local.py)")
    p.add_argument("--num-devices", type=int, metavar="N",
                   help="train.num_devices: devices for --strategy mirrored (logical CPUs without GPUs)")
    p.add_argument("--resume", nargs="?", const="yes", default="no", choices=("yes", "auto"),
                   help="continue the run in --run-dir; --resume=auto: continue it if it exists, "
                        "else start it (one command for a job that may be requeued)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. --set model.dropout=0.3 (repeatable)")
    return p


def resume_mode(args: argparse.Namespace) -> bool:
    """Whether this command continues a run: `--resume`, or `--resume=auto` on a directory that
    holds one."""
    if args.resume == "auto":
        return RunDir(args.run_dir).has_run()
    return args.resume == "yes"


def resolve_train_config(args: argparse.Namespace, resume: bool | None = None) -> config_lib.Config:
    """Builds the run's config: defaults < --config file < flags < --set; when resuming, the saved
    config, with the same sources applied on top: a value equal to the saved one is accepted,
    only a real change of a fixed key is refused (naming it)."""
    flags = {f"--{name.replace('_', '-')}": (key, getattr(args, name))
             for name, key in TRAIN_FLAGS.items() if getattr(args, name) is not None}
    sets = config_lib.parse_set(args.set)
    if resume is None:
        resume = resume_mode(args)
    if resume:
        run = RunDir(args.run_dir)
        run.check_resumable()
        if not run.config_file.is_file():
            raise UserError(f"{run.path} has no config.json (its start was interrupted before it was "
                            f"written); remove the directory and start again, or use another --run-dir")
        config = run.load_config()
        # What the same command would configure, by precedence (file < flags < --set), each key
        # with the source that set it last: a value equal to the saved one is accepted.
        given: dict[str, tuple[str, object]] = {}
        if args.config:
            given.update({key: (args.config, value) for key, value in
                          config_lib.flatten(config_lib.read_toml(args.config)).items()})
        given.update({key: (flag, value) for flag, (key, value) in flags.items()})
        given.update({key: ("--set", value) for key, value in sets.items()})
        for key, (source, value) in given.items():
            config = config_lib.resume_config(config, {key: value}, source=source)
        return config
    config = config_lib.load_toml(args.config) if args.config else config_lib.Config()
    for flag, (key, value) in flags.items():
        config = config.replace({key: value}, source=flag)
    return config.replace(sets, source="--set")


def train_main(argv: Sequence[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    resume = resume_mode(args)
    config = resolve_train_config(args, resume)
    if not resume:
        RunDir(args.run_dir).check_new()  # in a second, not after TensorFlow's start-up
    import_tensorflow()  # after the checks, which need no TensorFlow and answer at once
    from looptrain.app.experiment import train_and_evaluate

    result = train_and_evaluate(config, args.run_dir, resume=resume)
    print(f"run {args.run_dir}: step {result.step}, best {result.monitor} {result.best_value:.4f} at "
          f"step {result.best_step}, {result.examples_per_second:.0f} train examples/s")
    return 0


def evaluate_parser() -> argparse.ArgumentParser:
    p = Parser(prog="evaluate.py", description="Evaluate a trained run on its test split.")
    p.add_argument("--run-dir", required=True, help="run directory written by train.py")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), latest, or a checkpoint path prefix")
    p.add_argument("--split", default="test", choices=("test", "val"), help="split to evaluate")
    p.add_argument("--data-dir", help="read the split from here instead of the run's data.data_dir")
    return p


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    args = evaluate_parser().parse_args(argv)
    import_tensorflow()
    from rich.console import Console

    from looptrain.app import evaluation
    from looptrain.app.report import rich_tables, summary_line

    console = Console(highlight=False)
    run = RunDir(args.run_dir)
    run.check_exists()
    if run.load_config().task_path:  # a task of the user's: its own metrics
        result = evaluation.evaluate_task_run(args.run_dir, checkpoint=args.checkpoint,
                                              split=args.split)
        path = evaluation.save_task_report(args.run_dir, result)
        console.print(evaluation.task_table(result))
        console.print(f"report: {path}", soft_wrap=True)
        return 0
    result = evaluation.evaluate_run(args.run_dir, checkpoint=args.checkpoint, split=args.split,
                                     data_dir=args.data_dir)
    paths = evaluation.save_report(args.run_dir, result)
    for table in rich_tables(result.report()):
        console.print(table)
    console.print(summary_line(result.report()), soft_wrap=True)
    console.print(f"report: {paths['json']}, {paths['text']}, {paths['image']}", soft_wrap=True)
    return 0


def predict_parser() -> argparse.ArgumentParser:
    p = Parser(prog="predict.py", description="Predict the labels of texts with a trained run.")
    p.add_argument("texts", nargs="*", metavar="TEXT",
                   help="texts to classify; without any, --file or standard input (one per line)")
    p.add_argument("--run-dir", required=True, help="run directory written by train.py")
    p.add_argument("--file", help="read texts from this file, one per line ('-' = standard input)")
    p.add_argument("--top-k", type=int, metavar="K", help="also print the K most probable labels")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: text, label, probabilities, characters_used")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), latest, or a checkpoint path prefix")
    return p


def predict_main(argv: Sequence[str] | None = None) -> int:
    args = predict_parser().parse_args(argv)
    if args.texts and args.file:
        raise UserError("give texts as arguments or with --file, not both")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    import_tensorflow()
    from looptrain.app import predict

    if args.texts:
        texts = predict.texts_from_arguments(args.texts)
    elif args.file and args.file != "-":
        texts = predict.texts_from_file(args.file)
    else:
        if sys.stdin.isatty():
            print("reading texts from standard input, one per line; end with Ctrl-D", file=sys.stderr)
        texts = predict.texts_from_bytes(sys.stdin.buffer.read(), "<stdin>")
    predictor = predict.Predictor.from_run(args.run_dir, checkpoint=args.checkpoint)
    if args.top_k is not None and args.top_k > len(predictor.labels):
        raise UserError(f"--top-k {args.top_k}: this run has only {len(predictor.labels)} labels")
    top_k = args.top_k if args.top_k or not args.json else None  # JSON without --top-k: all labels
    for text, origin, prediction in zip(texts.texts, texts.origins,
                                        predictor.predict(texts.texts, top_k=top_k)):
        if prediction.characters_used == 0:
            print(f"note: {origin}: no character of this text is in the vocabulary; its label is the "
                  f"model's answer for an empty text", file=sys.stderr)
        print(predict.format_prediction(text, prediction, top_k=args.top_k, as_json=args.json))
    return 0


def export_parser() -> argparse.ArgumentParser:
    p = Parser(prog="export.py",
                description="Export a trained run as a SavedModel that classifies raw strings.")
    p.add_argument("--run-dir", required=True, help="run directory written by train.py")
    p.add_argument("--out", required=True, help="directory to create for the SavedModel")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), latest, or a checkpoint path prefix")
    return p


def export_main(argv: Sequence[str] | None = None) -> int:
    args = export_parser().parse_args(argv)
    import_tensorflow()
    from looptrain.app.export import export_run

    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"exported {args.run_dir} to {out} ({size / 1e6:.2f} MB): signature serving_default takes "
          f"texts (tf.string [None]) and returns label and probabilities")
    return 0


def train_entry() -> None:
    """Console script `looptrain-train`."""
    sys.exit(run_main(train_main))


def evaluate_entry() -> None:
    """Console script `looptrain-evaluate`."""
    sys.exit(run_main(evaluate_main))


def predict_entry() -> None:
    """Console script `looptrain-predict`."""
    sys.exit(run_main(predict_main))


def export_entry() -> None:
    """Console script `looptrain-export`."""
    sys.exit(run_main(export_main))
