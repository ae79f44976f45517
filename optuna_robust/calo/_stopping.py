"""The early-stopping rule of paper 3.7, shared by the trainer and by anyone reading its curves.

An instance stops at the first epoch whose loss is not finite, or whose last ``window`` losses
(after ``min_epochs``) lie within ``1 + tolerance`` of each other, or at ``max_epochs``.
"""

from __future__ import annotations

from collections.abc import Sequence
import math


def early_stop_epoch(
    curve: Sequence[float], *, min_epochs: int, window: int, tolerance: float, max_epochs: int
) -> int | None:
    """The epoch at which the early-stopping rule of paper 3.7 stops a loss curve.

    An instance stops after epoch ``e`` (1-based) at the first ``e`` where its loss is not
    finite, or ``e >= max(min_epochs, window)`` and the last ``window`` losses satisfy
    ``max <= (1 + tolerance) * min``, or ``e == max_epochs``. Its loss is ``curve[e - 1]``
    (``inf`` when not finite), not the best loss seen.

    Args:
        curve:
            Test loss after each epoch so far.
        min_epochs:
            Epochs trained at least.
        window:
            Epochs compared.
        tolerance:
            Relative spread allowed in the window.
        max_epochs:
            Epoch at which training stops anyway.

    Returns:
        The stopping epoch (1-based), or ``None`` while training should go on.
    """
    for epoch in range(1, len(curve) + 1):
        if stops_after(curve, epoch, min_epochs, window, tolerance, max_epochs):
            return epoch
    return None


def stops_after(
    curve: Sequence[float],
    epoch: int,
    min_epochs: int,
    window: int,
    tolerance: float,
    max_epochs: int,
) -> bool:
    """Whether the rule stops training after ``epoch`` (1-based), looking at curve[:epoch]."""
    return (
        not math.isfinite(curve[epoch - 1])
        or _window_is_flat(curve, epoch, min_epochs, window, tolerance)
        or epoch >= max_epochs
    )


def stop_reason(curve: Sequence[float], min_epochs: int, window: int, tolerance: float) -> str:
    """``"diverged"``, ``"converged"`` or ``"max_epochs"``: why a stopped curve stopped."""
    if not math.isfinite(curve[-1]):
        return "diverged"
    if _window_is_flat(curve, len(curve), min_epochs, window, tolerance):
        return "converged"
    return "max_epochs"


def _window_is_flat(
    curve: Sequence[float], epoch: int, min_epochs: int, window: int, tolerance: float
) -> bool:
    if epoch < max(min_epochs, window):
        return False
    recent = curve[epoch - window : epoch]
    return max(recent) <= (1 + tolerance) * min(recent)
