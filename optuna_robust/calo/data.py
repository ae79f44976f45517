"""Calorimeter events held in memory, with the paper's fixed 0.5/0.5 train/test split.

ROOT files (simulated, or real GEANT4 ones with their own branch names) are read with uproot
once into contiguous float32 torch tensors; a training or test sample is one gather per column.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
import hashlib
from pathlib import Path
import re
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from numpy.typing import NDArray

from optuna_robust._imports import import_optional
from optuna_robust.calo._sample import Sample

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_BRANCHES", "GRID_SIZE", "CaloData", "CaloDataError", "expected_events_note"]

GRID_SIZE = 15  # cells per side of a cluster
REQUIRED_COLUMNS = ("deposits", "energy", "x", "y")
OPTIONAL_COLUMNS = ("theta", "phi", "e_t")  # extra truth, e.g. for dataset B
DEFAULT_BRANCHES: Mapping[str, str] = MappingProxyType(
    {name: name for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
)
# calo.simulate notes in its TTree's title how many events it was asked for, so that a file cut
# short (a killed writer, an interrupted copy) is refused instead of read as a smaller dataset.
# Files without the note, such as GEANT4's, are read as they are.
_EXPECTED_EVENTS = re.compile(r"\[expected_events=(\d+)\]")
# Separate random streams, so that a training and a test sample with equal seeds are unrelated.
_TRAINING_STREAM = 1
_TEST_STREAM = 2


class CaloDataError(ValueError):
    """Calorimeter data that cannot be used; the message names the source and the problem."""


def expected_events_note(n_events: int) -> str:
    """The note in a TTree title that says how many events the file was written for.

    :meth:`CaloData.from_root` refuses a file whose tree holds fewer events than its note says.
    """
    return f"[expected_events={n_events}]"


class CaloData:
    """Single-photon events with a fixed random split into a training and a test half.

    Training samples are bootstraps (rows drawn with replacement) of the training half; test
    samples are subsets (without replacement) of the test half, as in the paper.

    Args:
        columns:
            Arrays by logical column: ``deposits`` of shape ``(n, 15, 15)`` (or ``(n, 225)``,
            read row by row) in GeV, ``energy`` in GeV, ``x`` and ``y`` in mm, and optionally
            ``theta``, ``phi`` and ``e_t``. numpy arrays or torch tensors.
        split_seed:
            Seed of the permutation that splits the events into halves.
        min_events:
            Fewest events accepted.
        source:
            Where the arrays come from, for error messages.

    Raises:
        CaloDataError: A column is missing, has the wrong shape, or has NaN, infinite or
            negative deposits, or non-positive energies; or there are too few events.

    Example:

        .. code-block:: python

            import numpy as np
            from optuna_robust.calo.data import CaloData

            rng = np.random.default_rng(0)
            data = CaloData(
                {
                    "deposits": rng.random((10, 15, 15)),
                    "energy": rng.uniform(1, 100, 10),
                    "x": np.zeros(10),
                    "y": np.zeros(10),
                }
            )
            assert (data.n_train, data.n_test) == (5, 5)
            sample = data.training_sample(4, data_seed=1)  # a bootstrap of the training half
            assert sample.deposits.shape == (4, 15, 15)
    """

    def __init__(
        self,
        columns: Mapping[str, NDArray[np.floating] | torch.Tensor],
        *,
        split_seed: int = 0,
        min_events: int = 2,
        source: str = "arrays",
    ) -> None:
        torch = import_optional("torch")
        _check_seed("split_seed", split_seed)
        if not isinstance(min_events, int) or isinstance(min_events, bool) or min_events < 2:
            raise ValueError(f"min_events must be an integer >= 2 but got {min_events!r}.")
        unknown = set(columns) - set(DEFAULT_BRANCHES)
        missing = set(REQUIRED_COLUMNS) - set(columns)
        if unknown or missing:
            raise CaloDataError(
                f"{source}: columns must be {REQUIRED_COLUMNS} plus any of {OPTIONAL_COLUMNS}, "
                f"but {sorted(missing)} are missing and {sorted(unknown)} are unknown."
            )
        arrays = {name: _as_float32(values) for name, values in columns.items()}
        deposits = arrays["deposits"]
        if deposits.ndim == 2 and deposits.shape[1] == GRID_SIZE * GRID_SIZE:
            arrays["deposits"] = deposits.reshape(-1, GRID_SIZE, GRID_SIZE)
        _validate(arrays, source, min_events)
        self._source = source
        self._columns = MappingProxyType(
            {name: torch.from_numpy(values) for name, values in arrays.items()}
        )
        n = len(arrays["deposits"])
        permutation = np.random.default_rng(split_seed).permutation(n)
        self._train_rows = torch.from_numpy(permutation[: n // 2].copy())
        self._test_rows = torch.from_numpy(np.sort(permutation[n // 2 :]))

    @classmethod
    def from_root(
        cls,
        path: str | Path,
        *,
        branches: Mapping[str, str] | None = None,
        tree_name: str | None = None,
        split_seed: int = 0,
        min_events: int = 2,
        step_size: int = 100_000,
    ) -> CaloData:
        """Load the events of one TTree of a ROOT file.

        Args:
            path:
                The ROOT file, e.g. one written by :func:`optuna_robust.calo.simulate.simulate`.
            branches:
                Branch name of some logical columns (``deposits``, ``energy``, ``x``, ``y``,
                ``theta``, ``phi``, ``e_t``) where it differs from the logical name. A
                required column's branch must exist; an optional one is loaded if present,
                and must exist if named here.
            tree_name:
                The TTree to read; needed only when the file has more than one.
            split_seed:
                Seed of the permutation that splits the events into halves.
            min_events:
                Fewest events accepted.
            step_size:
                Events read (and decompressed) per step.

        Returns:
            The loaded data.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            CaloDataError: The file is not a readable ROOT file, has no such TTree or branch,
                holds fewer events than its tree's title says it was written for (see
                :func:`expected_events_note`), or its data fail the checks of
                :class:`CaloData`.
        """
        uproot = import_optional("uproot")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Calorimeter data file {str(path)!r} does not exist.")
        if not isinstance(step_size, int) or isinstance(step_size, bool) or step_size < 1:
            raise ValueError(f"step_size must be a positive integer but got {step_size!r}.")
        names = _branch_names(branches)
        try:
            root_file = uproot.open(path)
        except Exception as error:  # uproot raises many kinds; the user needs only the gist.
            raise CaloDataError(f"{path}: not a readable ROOT file ({error}).") from error
        with root_file:
            trees = root_file.keys(filter_classname="TTree", cycle=False)
            if not trees:
                raise CaloDataError(
                    f"{path}: no TTree to read; the file holds {root_file.classnames()} (an "
                    "RNTuple, as uproot writes by default, must be rewritten with mktree)."
                )
            if tree_name is None and len(trees) > 1:
                raise CaloDataError(
                    f"{path}: found {len(trees)} TTrees {trees}; pass tree_name= to choose one."
                )
            tree_name = trees[0] if tree_name is None else tree_name
            if tree_name not in trees:
                raise CaloDataError(f"{path}: no TTree {tree_name!r}; its TTrees are {trees}.")
            tree = root_file[tree_name]
            available = set(tree.keys())
            for name in REQUIRED_COLUMNS + tuple(branches or {}):
                if names[name] not in available:
                    raise CaloDataError(
                        f"{path}: TTree {tree_name!r} has no branch {names[name]!r} for the "
                        f"{name!r} column; its branches are {sorted(available)}. Pass "
                        f"branches={{{name!r}: <branch name>}} to read another branch."
                    )
            names = {name: branch for name, branch in names.items() if branch in available}
            n_events = tree.num_entries
            expected = _EXPECTED_EVENTS.search(tree.title or "")
            if expected is not None and n_events < int(expected[1]):
                raise CaloDataError(
                    f"{path}: TTree {tree_name!r} holds {n_events} events but was written for "
                    f"{int(expected[1])}: its writer stopped before the end (killed, interrupted "
                    "or out of disk space). Write the file again."
                )
            if n_events < min_events:
                raise CaloDataError(
                    f"{path}: TTree {tree_name!r} has {n_events} events, fewer than "
                    f"min_events={min_events}."
                )
            arrays = _read_tree(tree, names, n_events, step_size, f"{path}: TTree {tree_name!r}")
        return cls(arrays, split_seed=split_seed, min_events=min_events, source=str(path))

    @property
    def source(self) -> str:
        """Where the events come from: a file path, or ``"arrays"``."""
        return self._source

    @property
    def columns(self) -> Mapping[str, torch.Tensor]:
        """All loaded columns by logical name (read-only), e.g. ``columns["theta"]``."""
        return self._columns

    def fingerprint(self) -> dict[str, Any]:
        """A content hash of the events and of the split, for a selection's run fingerprint."""
        digest = hashlib.blake2b(digest_size=16)
        for name in sorted(self._columns):
            digest.update(name.encode())
            digest.update(self._columns[name].numpy().tobytes())
        digest.update(self._train_rows.numpy().tobytes())
        return {"events": self.n_events, "blake2b": digest.hexdigest()}

    @property
    def n_events(self) -> int:
        """Number of events in both halves."""
        return len(self._columns["energy"])

    @property
    def n_train(self) -> int:
        """Number of events in the training half."""
        return len(self._train_rows)

    @property
    def n_test(self) -> int:
        """Number of events in the test half."""
        return len(self._test_rows)

    def training_indices(self, n: int, data_seed: int) -> torch.Tensor:
        """Rows of a bootstrap of ``n`` events (with replacement) from the training half.

        Args:
            n:
                Sample size, at most :attr:`n_train`.
            data_seed:
                Seed of the bootstrap; equal seeds give equal samples.

        Returns:
            A LongTensor of rows, for :meth:`sample` or for indexing :attr:`columns`.
        """
        _check_size(n, self.n_train, "training")
        _check_seed("data_seed", data_seed)
        rng = np.random.default_rng([data_seed, _TRAINING_STREAM])
        return self._train_rows[rng.integers(0, self.n_train, size=n)]

    def test_indices(self, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """Rows of ``n`` distinct events of the test half, in file order.

        Args:
            n:
                Sample size, at most :attr:`n_test`; ``None`` takes the whole test half.
            seed:
                Seed of the subsample; equal seeds give equal samples.

        Returns:
            A LongTensor of rows, for :meth:`sample` or for indexing :attr:`columns`.
        """
        if n is None:
            return self._test_rows.clone()
        _check_size(n, self.n_test, "test")
        _check_seed("seed", seed)
        rng = np.random.default_rng([seed, _TEST_STREAM])
        positions = np.sort(rng.choice(self.n_test, size=n, replace=False))
        return self._test_rows[positions]

    def sample(self, rows: torch.Tensor) -> Sample:
        """Gather the events at ``rows`` (a LongTensor) into a :class:`Sample`."""
        deposits, energy, x, y = (self._columns[name] for name in REQUIRED_COLUMNS)
        return Sample(
            deposits=deposits.index_select(0, rows),
            energy=energy.index_select(0, rows),
            x=x.index_select(0, rows),
            y=y.index_select(0, rows),
        )

    def training_sample(self, n: int, data_seed: int) -> Sample:
        """A bootstrap of ``n`` training events; see :meth:`training_indices`."""
        return self.sample(self.training_indices(n, data_seed))

    def test_sample(self, n: int | None = None, seed: int = 0) -> Sample:
        """``n`` distinct test events (all when ``None``); see :meth:`test_indices`."""
        return self.sample(self.test_indices(n, seed))

    def __repr__(self) -> str:
        return (
            f"CaloData(source={self._source!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"columns={list(self._columns)})"
        )


def _branch_names(branches: Mapping[str, str] | None) -> dict[str, str]:
    """Merge user branch names into the defaults, checking the logical names."""
    names = dict(DEFAULT_BRANCHES)
    for name, branch in (branches or {}).items():
        if name not in names:
            raise ValueError(
                f"branches has an unknown logical column {name!r}; use some of {list(names)}."
            )
        if not isinstance(branch, str) or not branch:
            raise ValueError(f"branches[{name!r}] must be a non-empty string but got {branch!r}.")
        names[name] = branch
    return names


def _read_tree(
    tree: Any, names: Mapping[str, str], n_events: int, step_size: int, where: str
) -> dict[str, NDArray[np.float32]]:
    """Read the branches in steps into preallocated float32 arrays, one per logical column."""
    branches = list(names.values())
    try:
        first = tree.arrays(filter_name=branches, entry_stop=1, library="np")
    except Exception as error:  # e.g. a branch type uproot cannot interpret
        raise CaloDataError(f"{where}: cannot read branches {branches} ({error}).") from error
    arrays = {}
    for name, branch in names.items():
        probe = first[branch]
        if probe.dtype.kind not in "fiu":
            raise CaloDataError(
                f"{where}: branch {branch!r} ({name}) must hold fixed-size numbers but holds "
                f"{probe.dtype} values; variable-length branches are not supported."
            )
        arrays[name] = np.empty((n_events, *probe.shape[1:]), np.float32)
    start = 0
    for chunk in tree.iterate(filter_name=branches, step_size=step_size, library="np"):
        stop = start + len(chunk[branches[0]])
        for name, branch in names.items():
            arrays[name][start:stop] = chunk[branch]
        start = stop
    return arrays


def _as_float32(values: NDArray[np.floating] | torch.Tensor) -> NDArray[np.float32]:
    """A C-contiguous float32 numpy copy-if-needed of an array or CPU tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(values, dtype=np.float32)


def _validate(arrays: Mapping[str, NDArray[np.float32]], source: str, min_events: int) -> None:
    """Check shapes, finiteness and signs, naming the first bad event."""
    deposits = arrays["deposits"]
    if deposits.ndim != 3 or deposits.shape[1:] != (GRID_SIZE, GRID_SIZE):
        raise CaloDataError(
            f"{source}: deposits must have shape (n, {GRID_SIZE}, {GRID_SIZE}) or "
            f"(n, {GRID_SIZE * GRID_SIZE}) but have shape {deposits.shape}."
        )
    n = len(deposits)
    for name, values in arrays.items():
        if name != "deposits" and values.shape != (n,):
            raise CaloDataError(
                f"{source}: {name} must have shape ({n},) like the deposits but has shape "
                f"{values.shape}."
            )
    if n < min_events:
        raise CaloDataError(f"{source}: {n} events, fewer than min_events={min_events}.")
    for name, what, bad in _bad_values(arrays):
        bad_events = bad.reshape(n, -1).any(axis=1)
        if bad_events.any():
            raise CaloDataError(
                f"{source}: {int(bad_events.sum())} events have {what} {name}, the first is "
                f"event {int(np.argmax(bad_events))}. Remove or fix these events."
            )


def _bad_values(
    arrays: Mapping[str, NDArray[np.float32]],
) -> Iterator[tuple[str, str, NDArray[np.bool_]]]:
    """(column, problem, mask of bad values), one check at a time to bound the memory used."""
    for name, values in arrays.items():
        yield name, "NaN or infinite", ~np.isfinite(values)
    yield "deposits", "negative", arrays["deposits"] < 0
    yield "energy", "non-positive", arrays["energy"] <= 0


def _check_seed(name: str, seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{name} must be an integer >= 0 but got {seed!r}.")


def _check_size(n: int, available: int, half: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= available:
        raise ValueError(
            f"n must be an integer between 1 and the {available} events of the {half} half but "
            f"got {n!r}; use a file with more events for larger samples."
        )
