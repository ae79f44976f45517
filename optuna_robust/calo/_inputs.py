"""What the trainer is given, checked (instances, ``(config, instances)`` batches, samples), and
the dataset behind a path, opened once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import hashlib
import os
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from optuna_robust import Instance
from optuna_robust._imports import import_optional
from optuna_robust.calo._sample import Sample
from optuna_robust.calo.data import GRID_SIZE
from optuna_robust.calo.models import ModelConfig

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise


@runtime_checkable
class SampleSource(Protocol):
    """What the trainer needs from a dataset (``optuna_robust.calo.data`` provides it)."""

    def training_sample(self, n: int, data_seed: int) -> Sample:
        """``n`` rows bootstrapped from the training half with seed ``data_seed``."""
        ...

    def test_sample(self, n: int | None = None, seed: int = 0) -> Sample:
        """``n`` rows of the test half (all of them when ``None``), chosen with ``seed``."""
        ...


def check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} but got {value!r}.")


def check_batch(batch: object) -> tuple[ModelConfig, list[Instance]]:
    if not (isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) == 2):
        raise ValueError(f"batches must be (config, instances) pairs but got {batch!r}.")
    config, instances = batch
    return ModelConfig.from_dict(config), [check_instance(instance) for instance in instances]


def check_instance(instance: object) -> Instance:
    try:
        data_seed, init_seed = instance.data_seed, instance.init_seed  # type: ignore[attr-defined]
    except AttributeError:
        raise ValueError(
            f"instances must be Instance(index, data_seed, init_seed) but got {instance!r}."
        ) from None
    if not (isinstance(data_seed, int) and isinstance(init_seed, int)):
        raise ValueError(f"data_seed and init_seed must be integers but got {instance!r}.")
    return Instance(getattr(instance, "index", 0), data_seed, init_seed)


def check_sample(sample: Sample, kind: str, n_rows: int | None) -> Sample:
    deposits = getattr(sample, "deposits", None)
    shape = tuple(getattr(deposits, "shape", ()))
    if not isinstance(deposits, torch.Tensor) or shape[1:] != (GRID_SIZE, GRID_SIZE):
        raise ValueError(f"The {kind} sample's deposits must have shape (n, 15, 15): {shape}.")
    if n_rows is not None and shape[0] != n_rows:
        raise ValueError(f"The {kind} sample has {shape[0]} rows but {n_rows} were asked for.")
    return Sample(deposits.float(), sample.energy.float(), sample.x.float(), sample.y.float())


_OPENED: dict[str, SampleSource] = {}


def file_identity(path: str) -> dict[str, Any]:
    """A data file's size and content hash, not its name: a moved file is the same data.

    A 30 MB file hashes in about 0.04 s here.
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": os.path.getsize(path), "blake2b": digest.hexdigest()}


def open_data(path: str, root_options: Mapping[str, Any]) -> SampleSource:
    """The dataset at ``path``, opened once per process (workers get the path, not the data)."""
    key = f"{path}|{sorted(root_options.items())}"
    if key not in _OPENED:
        from optuna_robust.calo.data import CaloData

        _OPENED[key] = CaloData.from_root(path, **root_options)
    return _OPENED[key]
