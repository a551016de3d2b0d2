"""The subcommands' front ends (`looptrain train` ..., `scripts/*.py`): argument parsing and the
user-error contract; `looptrain.command` dispatches to them.

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

from looptrain import config as config_lib, oserrors  # noqa: E402
from looptrain.app import hints  # noqa: E402
from looptrain.errors import Stopped, TimeLimitReached, UserError  # noqa: E402
from looptrain.model_names import registered_models  # noqa: E402
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
    """Runs a script's `main`, turning user errors and the machine's refusals (a full disk, a
    read-only directory, memory: `oserrors`) into one stderr line and their exit status (2)."""
    try:
        return main(argv)
    except (Stopped, TimeLimitReached) as exc:  # a signal or the time limit, after a checkpoint
        if not getattr(exc, "logged", False):  # the loop's log has shown a signal's stop already
            print(exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `predict.py ... | head -1`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + 13  # as a program killed by SIGPIPE
    except Exception as exc:  # a UserError, or the machine's refusal; anything else is a bug
        error = oserrors.as_user_error(exc)
        if error is None:
            raise
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code


def one_line(message: str) -> str:
    """`message` on one line (a message quoting someone else's text may hold line breaks)."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def train_parser(prog: str = "looptrain train") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description="Train a model with looptrain's custom loop.")
    p.add_argument("--config", help="TOML config file (default: built-in reference TextCNN)")
    p.add_argument("--run-dir", default="runs/default", help="run directory (default: runs/default)")
    p.add_argument("--data-dir", help="directory with train/val/test files (default: embedded corpus)")
    p.add_argument("--task", metavar="MODULE:ATTR",
                   help="train a task of your own (an lt.Task subclass; its module importable, e.g. "
                        "on PYTHONPATH); its arguments: [task] in --config, --set task.KEY=VALUE")
    p.add_argument("--model", help=f"model.name: a registered model ({', '.join(registered_models())}) "
                                   f"or module:Class of your own")
    p.add_argument("--epochs", type=int, help="train.num_epochs")
    p.add_argument("--max-steps", type=int, help="train.max_steps: stop after N steps (N >= 1)")
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
                   help="train.strategy: tf.distribute strategy (multiworker: see looptrain launch)")
    p.add_argument("--num-devices", type=int, metavar="N",
                   help="train.num_devices: devices for --strategy mirrored (logical CPUs without GPUs)")
    p.add_argument("--resume", nargs="?", const="yes", default="no", choices=("yes", "auto"),
                   help="continue the run in --run-dir; --resume=auto: continue it if it exists, "
                        "else start it (one command for a job that may be requeued)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. --set model.dropout=0.3 (repeatable)")
    p.add_argument("--fast-dev-run", action="store_true",
                   help="check the config end to end in seconds (a few steps, an evaluation, a "
                        "checkpoint and a resume in a scratch directory) instead of training")
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


def train_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain train") -> int:
    args = train_parser(prog).parse_args(argv)
    if args.fast_dev_run:
        return fast_dev_run_main(args)
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1, got {args.max_steps} (leave it out for "
                        f"no limit)")
    resume = resume_mode(args)
    config = resolve_train_config(args, resume)
    if not resume:  # in a second, not after TensorFlow's start-up
        RunDir(args.run_dir).check_new(resume_hint=hints.resume(args.run_dir),
                                       other=hints.other_run_dir())
    print(f"{'resuming' if resume else 'starting'} {args.run_dir}: {what_trains(config)}; "
          f"starting TensorFlow...", flush=True)
    import_tensorflow()  # after the checks, which need no TensorFlow and answer at once
    from looptrain.app.experiment import train_and_evaluate

    result = train_and_evaluate(config, args.run_dir, resume=resume)
    if result.stop_reason == "time_limit":
        raise TimeLimitReached(f"run {args.run_dir}: time limit {config.train.time_limit} reached at "
                               f"step {result.step}, checkpoint written; exit status 75: run the "
                               f"same command with --resume=auto to continue")
    from rich.console import Console

    console = Console(highlight=False)
    speed = (f", {result.examples_per_second:.0f} train examples/s" if result.steps_run else "")
    for line in (f"run {args.run_dir}: best copy in {args.run_dir}/best{speed}",
                 f"next: {hints.evaluate(args.run_dir)} (test report), "
                 f"{hints.tensorboard(args.run_dir)} (curves)"):
        console.print(line, soft_wrap=not console.is_terminal)  # wrapped between words on a tty
    return 0


def what_trains(config: config_lib.Config) -> str:
    """`textcnn, 10 epochs` / `examples/x.py:Task, max 100 steps`: the run in a few words."""
    t = config.train
    length = (f"max {t.max_steps} step{'s' * (t.max_steps != 1)}" if t.max_steps else
              f"{t.num_epochs} epoch{'s' * (t.num_epochs != 1)}")
    return f"{config.task_path or config.model.name}, {length}"


def fast_dev_run_main(args: argparse.Namespace) -> int:
    """`looptrain train --fast-dev-run`: the config checked end to end in a scratch run directory."""
    config = resolve_train_config(args, resume=False)  # --run-dir and --resume play no part
    import_tensorflow()
    from looptrain.app.dev_run import fast_dev_run

    lines = fast_dev_run(config)
    print("fast dev run: OK\n" + "\n".join(f"  {line}" for line in lines))
    return 0


def evaluate_parser(prog: str = "looptrain evaluate") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description="Evaluate a trained run on its test split.")
    p.add_argument("--run-dir", required=True, help="run directory written by looptrain train")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), latest, or a checkpoint path prefix")
    p.add_argument("--split", default="test", choices=("test", "val"), help="split to evaluate")
    p.add_argument("--data-dir", help="read the split from here instead of the run's data.data_dir")
    p.add_argument("--watch", action="store_true",
                   help="a sidecar: evaluate each training checkpoint once as it appears, until the "
                        "run has finished (summaries at its step in RUN/logs/<split>)")
    p.add_argument("--poll-seconds", type=float, default=5.0, help="--watch: seconds between looks")
    return p


def evaluate_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain evaluate") -> int:
    args = evaluate_parser(prog).parse_args(argv)
    import_tensorflow()
    from rich.console import Console

    from looptrain.app import evaluation
    from looptrain.app.report import rich_tables, summary_line

    console = Console(highlight=False)
    run = RunDir(args.run_dir)
    run.check_exists()
    if args.watch:
        from looptrain.app.watch import watch_run

        watch_run(args.run_dir, split=args.split, poll_seconds=args.poll_seconds,
                  log=lambda line: console.print(line, soft_wrap=True))
        return 0
    if run.load_config().task_path:  # a task of the user's: its own metrics
        result = evaluation.evaluate_task_run(args.run_dir, checkpoint=args.checkpoint,
                                              split=args.split)
        console.print(evaluation.task_table(result))
        path = evaluation.save_task_report(args.run_dir, result)
        console.print(f"report: {path}", soft_wrap=True)
        return 0
    result = evaluation.evaluate_run(args.run_dir, checkpoint=args.checkpoint, split=args.split,
                                     data_dir=args.data_dir)
    for table in rich_tables(result.report()):  # first: a report that cannot be saved is still seen
        console.print(table)
    console.print(summary_line(result.report()), soft_wrap=True)
    paths = evaluation.save_report(args.run_dir, result)
    console.print(f"report: {paths['json']}, {paths['text']}, {paths['image']}", soft_wrap=True)
    return 0


def predict_parser(prog: str = "looptrain predict") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description="Predict the labels of texts with a trained run.")
    p.add_argument("texts", nargs="*", metavar="TEXT",
                   help="texts to classify; without any, --file or standard input (one per line)")
    p.add_argument("--run-dir", required=True, help="run directory written by looptrain train")
    p.add_argument("--file", help="read texts from this file, one per line ('-' = standard input)")
    p.add_argument("--top-k", type=int, metavar="K", help="also print the K most probable labels")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: text, label, probabilities, characters_used")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), latest, or a checkpoint path prefix")
    return p


def predict_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain predict") -> int:
    args = predict_parser(prog).parse_args(argv)
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


def export_parser(prog: str = "looptrain export") -> argparse.ArgumentParser:
    p = Parser(prog=prog,
                description="Export a trained run as a SavedModel that classifies raw strings.")
    p.add_argument("--run-dir", required=True, help="run directory written by looptrain train")
    p.add_argument("--out", required=True, help="directory to create for the SavedModel")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), latest, or a checkpoint path prefix")
    return p


def export_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain export") -> int:
    args = export_parser(prog).parse_args(argv)
    import_tensorflow()
    from looptrain.app.export import export_run

    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    if (out / "export.json").is_file():  # a user task or arrays: the signature the task declares
        import json

        signature = json.loads((out / "export.json").read_text())["serving_default"]
        print(f"exported {args.run_dir} to {out} ({size / 1e6:.2f} MB): signature serving_default "
              f"takes {signature['inputs']} and returns {signature['outputs']}; Keras model in "
              f"{out / 'model.keras'}")
        return 0
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
