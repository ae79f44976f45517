"""Instances: independent trainings of one model, and how their seeds are derived."""

from __future__ import annotations

import dataclasses
import hashlib


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """One independent training of a model.

    Attributes:
        index:
            Position of the instance within its model (0, 1, 2, ...). Selection instances and
            the final robustness instances are numbered separately.
        data_seed:
            Seed of the bootstrap training sample this instance trains on, in
            ``[0, 2**31 - 1]``.
        init_seed:
            Seed of the weight initialisation (and of the minibatch order), in
            ``[0, 2**31 - 1]``.
    """

    index: int
    data_seed: int
    init_seed: int


MAX_SEED = 2**31 - 1


def derive_seed(*parts: object) -> int:
    """A seed in ``[0, 2**31 - 1]`` derived from ``parts``, stable across machines and versions.

    31 bits is what every common library accepts unchanged: numpy, torch, scikit-learn's
    ``random_state`` (at most ``2**32 - 1``), XGBoost and LightGBM (signed 32-bit ints).
    """
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") >> 1
