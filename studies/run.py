"""Run one study of the paper at a scale: `.venv/bin/python -m studies.run NAME --scale cpu`.

Run it from the repository root, so that ``studies`` is importable as a package.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
import time

import optuna
import torch

from studies._common import SCALES
from studies._common import STUDIES
from studies._common import load_config
from studies._common import write_report


def run_study(name: str, scale: str, out: Path | None = None) -> Path:
    """Run ``studies/<name>/study.py`` at ``scale``; return the path of its report."""
    config = load_config(name, scale)
    # One torch thread per process: the networks are small, and two OpenMP threads on a busy
    # 2-core machine made training about ten times slower (docs/performance.md).
    torch.set_num_threads(1)
    out = STUDIES / name if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"studies.{name}.study")  # name checked by load_config
    start = time.perf_counter()
    body = module.run(config, out)
    return write_report(out, config, body, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", help="the study folder, e.g. selection")
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="default: the study folder")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"Wrote {run_study(args.name, args.scale, args.out)}")


if __name__ == "__main__":
    main()
