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
            True x of the entry point in mm, relative to the centre of the central cell, ``(n,)``.
        y:
            True y of the entry point in mm, likewise, ``(n,)``.
    """

    deposits: torch.Tensor
    energy: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
