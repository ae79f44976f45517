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
            Seed of the bootstrap training sample this instance trains on.
        init_seed:
            Seed of the weight initialisation (and of the minibatch order).
    """

    index: int
    data_seed: int
    init_seed: int


def derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts``, stable across processes, machines and versions."""
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
