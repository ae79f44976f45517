"""The in-memory form of a block of events that data loading hands to trainers and baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import NamedTuple

if TYPE_CHECKING:
    import torch


class Sample(NamedTuple):
    """A block of single-photon events, as float32 torch tensors on the CPU.

    Attributes:
        deposits:
            Cell energy deposits in GeV, shape ``(n, 15, 15)``; cell ``[i, j]`` is row ``i``
            (the y axis) and column ``j`` (the x axis); the photon hit cell ``[7, 7]``.
        energy:
            True photon energy in GeV, shape ``(n,)``.
        x:
            True x in mm, relative to the centre of the central cell, ``(n,)``: for the fast
            simulation's dataset A the entry point, for B where the shower axis crosses the
            depth of the shower's centre of gravity (``docs/simulation.md``).
        y:
            True y in mm, likewise, ``(n,)``.
    """

    deposits: torch.Tensor
    energy: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
