"""The `looptrain` command: one entry point whose subcommands are the library's mains.

    looptrain train --config configs/tiny.toml --run-dir runs/x     (also: python -m looptrain ...)
    looptrain evaluate | predict | export --run-dir runs/x ...
    looptrain launch --num-workers 2 -- TRAIN_ARGS...
    looptrain bench [ARGS]                                           (a checkout only)

`SUBCOMMANDS` is the table: a new subcommand is one line there. `--help` lists the subcommands, the
registered models and the tasks; it reads the model modules' source instead of importing them, so
it answers before TensorFlow would have started (a test checks the list against the registry).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from looptrain import cli, launch
from looptrain.model_names import registered_models
from looptrain.errors import UserError

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent  # a repository checkout holds benchmarks/ and examples/ beside the package


class Subcommand(NamedTuple):
    main: Callable[..., int]  # main(argv, prog=...) -> exit status
    summary: str


def launch_parser(prog: str = "looptrain launch") -> cli.Parser:
    p = cli.Parser(prog=prog, usage="%(prog)s --num-workers N [--grace-seconds S] -- TRAIN_ARGS...",
                   description="Run `looptrain train` as N workers on localhost, each with its own "
                               "TF_CONFIG, as a cluster launcher would (see docs/distributed.md).")
    p.add_argument("--num-workers", type=int, required=True, metavar="N",
                   help="how many workers (worker 0 is the chief)")
    p.add_argument("--grace-seconds", type=float, default=60, metavar="S",
                   help="seconds stopped workers get to checkpoint before SIGKILL (default 60)")
    return p


def launch_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain launch") -> int:
    """N local workers, each `python -m looptrain train` with the arguments after `--`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    example = f"{prog} --num-workers 2 -- --config configs/tiny.toml --run-dir runs/dist"
    # Split at the first "--" ourselves: argparse's handling of later "--" varies between versions.
    cut = argv.index("--") if "--" in argv else len(argv)
    args, unknown = launch_parser(prog).parse_known_args(argv[:cut])
    if unknown:
        raise UserError(f"unknown arguments {' '.join(unknown)}; give the train arguments after --, "
                        f"e.g. {example}")
    if args.num_workers < 1:
        raise UserError(f"--num-workers must be at least 1, got {args.num_workers}")
    if args.num_workers > launch.MAX_LOCAL_WORKERS:
        raise UserError(f"--num-workers must be at most {launch.MAX_LOCAL_WORKERS}, got "
                        f"{args.num_workers} (each worker is a TensorFlow process on this machine)")
    if args.grace_seconds < 0:
        raise UserError(f"--grace-seconds must be at least 0, got {args.grace_seconds:g}")
    train_args = argv[cut + 1:]
    if not train_args:
        raise UserError(f"give the train arguments after --, e.g. {example}")
    return launch.launch(args.num_workers, launch.worker_command(train_args),
                         grace_seconds=args.grace_seconds)


BENCH_HELP = ("training throughput: looptrain vs model.fit vs a bare compiled loop. Runs "
              "benchmarks/bench.py, so only from a repository checkout (benchmarks/ is not part of the "
              "installed package); its arguments: looptrain bench --help")


def bench_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain bench") -> int:
    """`benchmarks/bench.py` of the checkout this package runs from, with `argv`."""
    script = CHECKOUT / "benchmarks" / "bench.py"
    if not script.is_file():
        raise UserError(f"{prog} needs a checkout of the looptrain repository (benchmarks/ is not "
                        f"installed with the package; {script} does not exist)")
    return subprocess.call([sys.executable, str(script), *(sys.argv[2:] if argv is None else argv)])


def _runs_main(argv: Sequence[str] | None = None, *, prog: str = "looptrain runs") -> int:
    from looptrain.app import runs  # rich's tables: not needed by the other commands' --help

    return runs.main(argv, prog=prog)


SUBCOMMANDS: dict[str, Subcommand] = {
    "train": Subcommand(cli.train_main, "train a model (the built-in classifier or --task yours)"),
    "evaluate": Subcommand(cli.evaluate_main, "classification report of a run on its test split"),
    "predict": Subcommand(cli.predict_main, "labels of texts with a trained run"),
    "export": Subcommand(cli.export_main, "a SavedModel of a run, for serving"),
    "runs": Subcommand(_runs_main, "a table of the runs under a directory (no TensorFlow)"),
    "launch": Subcommand(launch_main, "train on N local workers, each with its own TF_CONFIG"),
    "bench": Subcommand(bench_main, "training throughput (a repository checkout only)"),
}


def example_tasks() -> dict[str, str]:
    """`examples/FILE.py:Class` -> its module docstring's first line, in a checkout; else empty."""
    tasks = {}
    for path in sorted((CHECKOUT / "examples").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            bases = [ast.unparse(base) for base in getattr(node, "bases", [])]
            if isinstance(node, ast.ClassDef) and "lt.Task" in bases:
                doc = (ast.get_docstring(tree) or "").split("\n")[0]
                tasks[f"examples/{path.name}:{node.name}"] = doc
    return tasks


def help_text() -> str:
    rows = [("commands:", {name: sub.summary for name, sub in SUBCOMMANDS.items()}),
            ("models (model.name, --model):", registered_models()),
            ("tasks (--task; a Task of your own is MODULE:CLASS or FILE.py:CLASS):",
             {"(none)": "the built-in text/array classifier, configured by [data] [model] [train]",
              **example_tasks()})]
    lines = ["usage: looptrain COMMAND [ARGS]   (or: python -m looptrain COMMAND [ARGS])",
             "       looptrain COMMAND --help   the command's own flags", ""]
    for heading, table in rows:
        width = max(map(len, table))
        lines += [heading, *(f"  {name:<{width}}  {text}" for name, text in table.items()), ""]
    lines.append("docs: README.md and docs/ in the repository (configuration.md lists every key)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `looptrain COMMAND ARGS...`; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(help_text())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"looptrain: error: unknown command {name!r} (commands: {', '.join(SUBCOMMANDS)}; "
              f"see looptrain --help)", file=sys.stderr)
        return 2
    if name == "bench" and rest in (["-h"], ["--help"]):
        print(f"usage: looptrain bench [ARGS]\n\n{BENCH_HELP}")
        if not (CHECKOUT / "benchmarks" / "bench.py").is_file():
            return 0
    main_of = functools.partial(SUBCOMMANDS[name].main, prog=f"looptrain {name}")
    try:
        return cli.run_main(main_of, rest)
    except SystemExit as exc:  # argparse's --help and one-line usage errors
        return exc.code if isinstance(exc.code, int) else 1


def entry() -> None:
    """Console script `looptrain`."""
    sys.exit(main())
