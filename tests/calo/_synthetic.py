"""A tiny synthetic stand-in for the calorimeter data, for trainer tests and benchmarks.

Not a physics simulation: each event is a photon of uniform energy 1-100 GeV hitting the central
cell at a uniform (x, y); its deposits are a Gaussian spot (40 mm wide) holding 90 % of the
energy, plus a little non-negative noise. Everything is a pure function of the seeds.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from optuna_robust._instances import derive_seed
from optuna_robust.calo._sample import Sample

CELL_SIZE_MM = 40.4


class SyntheticCaloData:
    """Implements ``training_sample(n, data_seed)`` and ``test_sample(n, seed)``.

    Args:
        n_test:
            Rows of ``test_sample(None)``.
        diverging_seeds:
            Data seeds whose training samples are scaled by 1e30, so that training on them
            overflows: a way to make one instance of a batch diverge.
        empty_seeds:
            Data seeds whose training samples have all deposits zero: with ReLU only the
            output bias learns, so the instance's test loss is flat at once (it stops early).
    """

    def __init__(
        self,
        *,
        n_test: int = 256,
        diverging_seeds: Collection[int] = (),
        empty_seeds: Collection[int] = (),
    ) -> None:
        self.n_test = n_test
        self.diverging_seeds = frozenset(diverging_seeds)
        self.empty_seeds = frozenset(empty_seeds)

    def training_sample(self, n: int, data_seed: int) -> Sample:
        sample = _events(n, derive_seed("synthetic-train", data_seed))
        if data_seed in self.diverging_seeds:
            return sample._replace(deposits=sample.deposits * 1e30)
        if data_seed in self.empty_seeds:
            return sample._replace(deposits=torch.zeros_like(sample.deposits))
        return sample

    def test_sample(self, n: int | None = None, seed: int = 0) -> Sample:
        return _events(self.n_test if n is None else n, derive_seed("synthetic-test", seed))


def _events(n: int, seed: int) -> Sample:
    generator = torch.Generator().manual_seed(seed)
    energy = 1 + 99 * torch.rand(n, generator=generator)
    x = (torch.rand(n, generator=generator) - 0.5) * CELL_SIZE_MM
    y = (torch.rand(n, generator=generator) - 0.5) * CELL_SIZE_MM
    centres = (torch.arange(15, dtype=torch.float32) - 7) * CELL_SIZE_MM
    profile_x = torch.exp(-0.5 * ((centres - x[:, None]) / 40.0) ** 2)
    profile_y = torch.exp(-0.5 * ((centres - y[:, None]) / 40.0) ** 2)
    spot = profile_y[:, :, None] * profile_x[:, None, :]
    spot = spot / spot.sum(dim=(1, 2), keepdim=True)
    noise = 0.01 * torch.rand(n, 15, 15, generator=generator) * energy.sqrt()[:, None, None]
    deposits = 0.9 * energy[:, None, None] * spot + noise
    return Sample(deposits, energy, x, y)
