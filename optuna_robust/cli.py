"""The ``optuna-robust`` command line: simulate, select, compare and report on any storage."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import sys

import optuna

DEFAULT_STORAGE = "sqlite:///robust.db"


def _demo(args: argparse.Namespace) -> int:
    from optuna_robust._demo import run_synthetic_demo

    run_synthetic_demo(storage=args.storage, study_name=args.study, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-robust",
        description="Select robust models with Optuna: successive halving over instances.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the main job behind `make demo`")
    demo.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    demo.add_argument("--study", default="demo", help="study name prefix")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
