"""The ``optuna-robust`` command line: simulate, select, compare and report on any storage."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import concurrent.futures
import contextlib
import os
import signal
import sys
from typing import Any

import optuna

from optuna_robust import RobustPruner
from optuna_robust import robustness_report

DEFAULT_STORAGE = "sqlite:///robust.db"
# CaloData holds a whole file in memory, 900 bytes per event: 10 million events are 9 GB.
MAX_EVENTS = 10_000_000
WORKERS_PER_CPU = 4  # training processes per CPU; more only adds memory and switching
MAX_WORKERS = WORKERS_PER_CPU * (os.cpu_count() or 1)


def _ranged(
    kind: Callable[[str], Any], low: float, high: float | None = None, why: str = ""
) -> Any:
    """An argparse type that refuses values out of ``[low, high]``; ``why`` explains ``high``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        if high is not None and value > high:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"must be <= {high}{reason}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


COUNT = _ranged(int, 1)
SEED = _ranged(int, 0)
FRACTION = _ranged(float, 0.0)
EVENTS = _ranged(
    int, 1, MAX_EVENTS, f"a file is loaded whole, 900 bytes per event, {MAX_EVENTS * 9e-7:g} GB"
)
WORKERS = _ranged(
    int, 1, MAX_WORKERS, f"{WORKERS_PER_CPU} per CPU of this machine, {os.cpu_count() or 1} CPUs"
)


def _statistic(text: str) -> str:
    """An argparse type that checks a statistic name the way RobustPruner does."""
    try:
        RobustPruner(statistic=text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


class _Terminated(BaseException):
    """SIGTERM (a batch system's time limit, ``kill``): ends the command like Ctrl-C.

    A BaseException, like KeyboardInterrupt, so that ``select`` does not take it for a model's
    training error.
    """


def _settings(args: argparse.Namespace) -> Any:
    from optuna_robust.calo.train import TrainSettings

    return TrainSettings(
        min_epochs=args.min_epochs,
        window=args.window,
        tolerance=args.tolerance,
        max_epochs=args.max_epochs,
        n_train=args.n_train,
        n_test=args.n_test,
    )


def _storage(args: argparse.Namespace, *, must_exist: bool = False) -> Any:
    from optuna_robust.calo.experiments import open_storage

    return open_storage(args.storage, must_exist=must_exist)


def _simulate(args: argparse.Namespace) -> None:
    from optuna_robust.calo.simulate import simulate

    path = simulate(dataset=args.dataset, n_events=args.events, seed=args.seed, out=args.out)
    print(f"Wrote {args.events} events of dataset {args.dataset} to {path}.")


def _select(args: argparse.Namespace) -> None:
    from optuna_robust.calo.data import CaloData
    from optuna_robust.calo.experiments import NoWinner
    from optuna_robust.calo.experiments import check_study
    from optuna_robust.calo.experiments import no_winner_reason
    from optuna_robust.calo.experiments import parametric_baseline
    from optuna_robust.calo.experiments import robust_selection
    from optuna_robust.calo.spaces import load_space

    # Everything is checked before any work: a broken data file found only by the trainer
    # would fail every model, and a rerun would keep the failures.
    storage = _storage(args)
    candidates = load_space(args.space)
    check_study(storage, args.study, kind="selection", task=args.task)
    data = CaloData.from_root(args.data)
    baseline = None
    if not args.no_baseline:
        baseline = parametric_baseline(
            data, task=args.task, n_train=args.n_train, n_test=args.n_test, seed=args.seed
        )
        print(f"Parametric baseline loss: {baseline:.6g} (gate at {1 + args.tolerance_gate:.2f}x)")
    del data  # the trainer opens the file itself, in each process
    with _process_pool(args.workers) as executor:
        result = robust_selection(
            storage=storage,
            study_name=args.study,
            data_path=args.data,
            task=args.task,
            candidates=candidates,
            settings=_settings(args),
            statistic=args.statistic,
            baseline=baseline,
            baseline_tolerance=args.tolerance_gate,
            n_keep=args.n_keep,
            max_trainings=args.max_trainings,
            retry_failed=args.retry_failed,
            final_instances=args.final_instances,
            seed=args.seed,
            executor=executor,
            artifact_dir=args.artifact_dir,
            threads=args.threads,
        )
    print(result.rounds.to_string(index=False))
    budget = result.budget
    spent = f"{budget.instances} of {budget.exhaustive} exhaustive ({budget.fraction:.1%})"
    print(f"\nTrainings: {spent}")
    if not result.winners:
        raise NoWinner(
            no_winner_reason(
                storage, args.study, baseline=baseline, baseline_tolerance=args.tolerance_gate
            )
        )
    report = robustness_report(
        result.winners, phase="final" if args.final_instances else "selection"
    )
    print(report.drop(columns=["statistic"]).to_string(index=False))


@contextlib.contextmanager
def _process_pool(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor | None]:
    """A pool of ``workers`` training processes, or ``None`` for one worker.

    Queued work is cancelled when the block ends, so that an error comes out at once instead
    of after the queue has drained.
    """
    if workers == 1:
        yield None
        return
    executor = concurrent.futures.ProcessPoolExecutor(workers)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _nas(args: argparse.Namespace) -> None:
    from optuna_robust.calo.experiments import nas

    study = nas(
        storage=_storage(args),
        study_name=args.study,
        data_path=args.data,
        task=args.task,
        n_trials=args.trials,
        settings=_settings(args),
        seed=args.seed,
        threads=args.threads,
    )
    best = study.best_trial
    print(f"Best of {len(study.trials)} trials: #{best.number}, loss {best.value:.6g}")
    print(f"  {best.user_attrs.get('config', best.params)}")


def _robustness(args: argparse.Namespace) -> None:
    from optuna_robust.calo.experiments import robustness

    trial = robustness(
        storage=_storage(args, must_exist=True),
        study_name=args.study,
        trial_number=args.trial,
        data_path=args.data,
        task=args.task,
        n_instances=args.instances,
        settings=_settings(args),
        seed=args.seed,
        threads=args.threads,
    )
    print(f"Stored {args.instances} fresh instances in study {args.study}:robustness.")
    print(
        robustness_report([trial], phase="final")
        .drop(columns=["statistic"])
        .to_string(index=False)
    )


def _report(args: argparse.Namespace) -> None:
    from optuna_robust.calo.experiments import robustness_table
    from optuna_robust.calo.experiments import summarise

    storage = _storage(args, must_exist=True)
    print(summarise(storage).to_string(index=False))
    table = robustness_table(storage)
    if not table.empty:
        print("\nRobustness on fresh instances (loss statistics):")
        print(table.to_string(index=False))


def _demo(args: argparse.Namespace) -> None:
    from optuna_robust.calo.demo import run_demo

    run_demo(storage=args.storage, study_prefix=args.study, seed=args.seed, workdir=args.workdir)


def _add_storage(parser: argparse.ArgumentParser, study: str | None = "robust") -> None:
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    if study is not None:
        parser.add_argument("--study", default=study, help="study name (default: %(default)s)")


def _add_training(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="ROOT file (see `simulate`)")
    parser.add_argument("--task", choices=["energy", "position"], default="energy")
    parser.add_argument("--n-train", type=COUNT, default=32_000, help="bootstrap sample size")
    parser.add_argument("--n-test", type=COUNT, default=32_000, help="test sample size")
    parser.add_argument("--min-epochs", type=_ranged(int, 0), default=100)
    parser.add_argument("--window", type=COUNT, default=30)
    parser.add_argument("--tolerance", type=FRACTION, default=0.1, help="early-stop spread")
    parser.add_argument("--max-epochs", type=COUNT, default=500)
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--threads", type=COUNT, default=1, help="torch threads per process")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-robust",
        description="Select robust models with Optuna: successive halving over instances.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser("simulate", help="fast-simulate photon showers to ROOT")
    simulate.add_argument("--dataset", choices=["A", "B"], required=True)
    simulate.add_argument("--events", type=EVENTS, required=True)
    simulate.add_argument("--seed", type=SEED, default=0)
    simulate.add_argument("--out", required=True, help="ROOT file to write")
    simulate.set_defaults(handler=_simulate)

    select = commands.add_parser("select", help="the robust selection with the CNN trainer")
    _add_storage(select)
    _add_training(select)
    select.add_argument("--space", default="small", help="paper, small, ... or a .toml file")
    select.add_argument(
        "--statistic", type=_statistic, default="mean", help="mean, median, max, cvar:0.9 ..."
    )
    select.add_argument(
        "--max-trainings",
        type=COUNT,
        default=None,
        help="a budget of trainings: budget-planned halving (default: the paper's schedule)",
    )
    select.add_argument(
        "--retry-failed", action="store_true", help="retry models that failed in an earlier run"
    )
    select.add_argument("--final-instances", type=_ranged(int, 0), default=50)
    select.add_argument("--n-keep", type=COUNT, default=1, help="winners to keep")
    select.add_argument("--tolerance-gate", type=FRACTION, default=0.2, help="baseline gate")
    select.add_argument("--no-baseline", action="store_true", help="no baseline gate")
    select.add_argument(
        "--workers", type=WORKERS, default=1, help=f"training processes (at most {MAX_WORKERS})"
    )
    select.add_argument("--artifact-dir", default=None, help="attach results for the dashboard")
    select.set_defaults(handler=_select)

    nas = commands.add_parser("nas", help="the paper's TPE NAS baseline, same storage")
    _add_storage(nas, study="nas")
    _add_training(nas)
    nas.add_argument("--trials", type=COUNT, default=120)
    nas.set_defaults(handler=_nas)

    robustness = commands.add_parser("robustness", help="train fresh instances of one model")
    _add_storage(robustness, study=None)
    robustness.add_argument("--study", required=True)
    robustness.add_argument("--trial", type=_ranged(int, 0), required=True)
    robustness.add_argument("--instances", type=COUNT, default=50)
    _add_training(robustness)
    robustness.set_defaults(handler=_robustness)

    report = commands.add_parser("report", help="compare every study of a storage")
    _add_storage(report, study=None)
    report.set_defaults(handler=_report)

    demo = commands.add_parser("demo", help="the main job behind `make demo`")
    _add_storage(demo, study="demo")
    demo.add_argument("--seed", type=SEED, default=0)
    demo.add_argument("--workdir", default=".", help="where the simulated file goes")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return 0 when done, or exit with another status and one line.

    Exit status: 1 a selection that ended without a winner (the line names the cause); 2 bad
    input, or a run stopped by something that is not a model's fault; 130 interrupted by
    Ctrl-C, 143 by SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna_robust import LeaseError
    from optuna_robust import SelectionStopped
    from optuna_robust.calo.experiments import NoWinner
    from optuna_robust.calo.experiments import StorageError
    from optuna_robust.calo.experiments import hide_password

    def fail(status: int, message: str) -> None:
        text = " ".join(message.split())  # one line, whatever the error's own layout
        if hasattr(args, "storage"):
            text = hide_password(text, args.storage)
        parser.exit(status, f"optuna-robust {args.command}: {text}\n")

    try:
        with _sigterm_interrupts():
            args.handler(args)
    except NoWinner as error:
        fail(1, f"no winner: {error}")
    except (KeyboardInterrupt, _Terminated) as interrupt:
        kept = (
            "the --out file is as it was"
            if args.command == "simulate"
            else "what was stored is kept; rerun the same command to continue"
        )
        fail(143 if isinstance(interrupt, _Terminated) else 130, f"interrupted; {kept}.")
    except (ValueError, OSError, StorageError, SelectionStopped, LeaseError) as error:
        fail(2, f"error: {error}")
    return 0


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into an exception, so it cleans up (temporary files, the lease) like Ctrl-C."""

    owner = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a forked pool worker inherited this: die as SIGTERM would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
