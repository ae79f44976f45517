"""What a selection returns: the winners, the round table and the budget it spent."""

from __future__ import annotations

import dataclasses
import math

from optuna.trial import FrozenTrial
import pandas as pd

PAPER_FINAL_INSTANCES = 50  # the paper measures every model's robustness on 50 instances


@dataclasses.dataclass(frozen=True)
class SelectionBudget:
    """Trainings spent by a selection, against an exhaustive search with the same guarantee.

    Attributes:
        selection_instances:
            Instances trained during the halving rounds.
        final_instances:
            Fresh instances trained to measure the winners' robustness.
        exhaustive:
            What an exhaustive search would train: candidates × final instances per model
            (with ``final_instances=0``, candidates × the paper's 50, so that ``fraction``
            keeps one meaning whatever the halving did).
    """

    selection_instances: int
    final_instances: int
    exhaustive: int

    @property
    def instances(self) -> int:
        """All instances trained: selection plus final."""
        return self.selection_instances + self.final_instances

    @property
    def fraction(self) -> float:
        """``instances / exhaustive``: the share of the exhaustive budget spent."""
        return self.instances / self.exhaustive if self.exhaustive else math.nan


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """What :func:`~optuna_robust.select` returns.

    Attributes:
        winners:
            The winning trials, best first, COMPLETE, with their final instances stored.
        rounds:
            One row per round: ``round``, ``instances_per_model`` (the rung), ``models``
            (trained in the round), ``instances`` (trained in the round), ``cumulative`` and
            ``survivors`` (models left after the round's decision).
        budget:
            The trainings spent, against the exhaustive equivalent.
    """

    winners: list[FrozenTrial]
    rounds: pd.DataFrame
    budget: SelectionBudget
