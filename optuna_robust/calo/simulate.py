"""A parametrised fast simulation of photon showers in an LHCb-like Shashlik ECAL.

It writes the same kind of ROOT file as the paper's GEANT4 datasets A and B (see
``docs/simulation.md``); every file says in its tree title that it is *not* GEANT4.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
import math
import os
from pathlib import Path
import threading
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import NDArray

from optuna_robust._imports import import_optional
from optuna_robust.calo.data import DEFAULT_BRANCHES
from optuna_robust.calo.data import GRID_SIZE
from optuna_robust.calo.data import expected_events_note

if TYPE_CHECKING:
    import torch

__all__ = ["simulate"]

FloatArray = NDArray[np.float64]

# Detector: LHCb inner-section Shashlik module, 66 x (2 mm Pb + 4 mm scintillator).
_X0_MM = 17.0  # effective radiation length
_MOLIERE_MM = 36.0  # effective Molière radius R_M
_CRITICAL_GEV = 0.0097  # critical energy E_c
_Z_EFF = 69.5
_STACK_X0 = 25.0  # depth of the stack along the beam axis
_SAMPLING_FRACTION = 1.0 / 6.0  # visible (scintillator) / total deposited energy
_E_HAT = 0.65  # GFlash e/mip ratio of the sampling structure
_INV_FS = 0.37  # GFlash 1/F_s (sampling frequency term)
_STOCHASTIC_TERM = 0.094  # a in sigma/E = a/sqrt(E), from sampling fluctuations per cell
_PHOTON_START_X0 = 1.0  # a photon shower starts about 1 X0 later than an electron one
_N_SLICES = 12  # depth slices along the shower axis
_MIN_ALPHA = 1.1  # keeps a fluctuated Gamma profile peaked (beta > 0)

# Dataset B: LHCb acceptance and a falling transverse-energy spectrum.
_THETA_RANGE = (0.026, 0.30)
_MEAN_E_T_GEV = 1.0
_ENERGY_RANGE_GEV = (1.0, 100.0)

# Readout, as LHCb digitises its ECAL (O. Callot, "The calorimeter digitisation", 2000; the
# scale from LHCb/LHCb!2465): 12-bit ADCs whose gain is set in transverse energy, one count
# being 2.5 + 1.75 sin(theta) MeV of E_T (saturation at 10 + 7 sin(theta) GeV), so a count is
# worth (2.5 + 1.75 sin(theta)) / sin(theta) MeV of energy: coarser towards the beam. Each cell
# has a 1 % gain spread, 1.2 counts of noise of its own and 0.3 counts common to all cells.
# Zero suppression "2D": a cell is read out if it or a neighbour holds >= 20 counts; the
# hottest cell seeds its 3x3 whatever its count (each event is one photon's cluster).
_ADC_MEV_T = (2.5, 1.75)  # E_T per count = [0] + [1] sin(theta), MeV
_ADC_MAX = 4095
_GAIN_SPREAD = 0.01
_NOISE_COUNTS = 1.2
_COHERENT_NOISE_COUNTS = 0.3
_SEED_COUNTS = 20
_GAIN_THETA_A = 0.1  # see _draw_truth

_WRITE_CHUNK = 50_000  # events per TTree.extend; each extend makes one basket per branch


def simulate(
    *,
    dataset: str,
    n_events: int,
    seed: int,
    out: str | Path,
    cell_size: float = 40.4,
    block_size: int = 256,
    branches: Mapping[str, str] | None = None,
    progress_bar: bool = True,
    visible: bool = True,
    electronics: bool = True,
) -> Path:
    """Simulate single-photon showers and write them to a ROOT file.

    The shower model is GFlash (Grindhammer and Peters, hep-ex/0001020) with the
    sampling-calorimeter terms: a Gamma longitudinal profile with correlated event-by-event
    fluctuations of its shape, cut into depth slices; in each slice a two-component lateral
    profile integrated exactly over the cells; sampling fluctuations per cell; then, by default,
    an LHCb-like readout (ADC counts of transverse energy, electronic noise, zero suppression).
    Events are simulated in vectorised blocks, several at a time in a pool of one thread per
    usable CPU (torch's own per-op threads are set to one meanwhile). Each random quantity
    comes from its own stream, drawn one event after another, so the file depends on ``seed``
    only, not on ``block_size`` or the number of CPUs. About 100 microseconds of CPU per event.

    Args:
        dataset:
            ``"A"``: E ~ U(1, 100) GeV at normal incidence. ``"B"``: theta ~ U(0.026, 0.30)
            rad, phi ~ U(0, 2 pi), and E = E_T / sin(theta) with E_T exponential (mean 1 GeV)
            restricted to the range that keeps E in [1, 100] GeV. In both, the stored x, y are
            uniform over the central cell: where the photon enters (A), or where its shower
            axis crosses the depth of the shower's centre of gravity (B), i.e. the point whose
            image the cluster's energy barycentre is.
        n_events:
            Number of photons to simulate.
        seed:
            Seed of all random streams; the same seed gives the same file content.
        out:
            Path of the ROOT file to write. It is written under a temporary name in the same
            folder and renamed to ``out`` when complete, so an interrupted run leaves an
            existing ``out`` unchanged. Its TTree title notes ``n_events``, so that
            :meth:`~optuna_robust.calo.data.CaloData.from_root` refuses a truncated copy.
        cell_size:
            Cell pitch in mm (LHCb: 40.4 inner, 60.6 middle, 121.2 outer).
        block_size:
            Events simulated together (at most 10,000; 50 kB of work space per event and
            thread); changes memory use and speed, not the result.
        branches:
            Branch name for some of the logical columns ``deposits``, ``energy``, ``x``,
            ``y``, ``theta``, ``phi``, ``e_t``; the others keep their logical name.
        progress_bar:
            Show a tqdm progress bar on stderr.
        visible:
            Store visible (scintillator) energy, as a real detector reads out; ``False``
            stores the total deposited energy (visible / sampling fraction).
        electronics:
            Read the cells out like the LHCb ECAL: 12-bit ADC counts of transverse energy
            (2.5 + 1.75 sin(theta) MeV per count, so coarser in energy at small angles), a
            1 % gain spread, 1.2 counts of noise per cell plus 0.3 common to the event, and
            zero suppression (only the 3x3 around cells of >= 20 counts and around the
            hottest cell is read out). ``False`` stores the noiseless deposits, as GEANT4
            gives them.

    Returns:
        The path of the written file.

    Raises:
        ValueError: An argument is out of range; the message names it.
        FileNotFoundError: The folder of ``out`` does not exist.
        IsADirectoryError: ``out`` is a folder.
    """
    if dataset not in ("A", "B"):
        raise ValueError(f"dataset must be 'A' or 'B' but got {dataset!r}.")
    _check_int("n_events", n_events, 1, None)
    _check_int("seed", seed, 0, None)
    # Each event of a block needs 50 kB of work space, in each worker thread.
    _check_int("block_size", block_size, 1, 10_000)
    if not (isinstance(cell_size, int | float) and math.isfinite(cell_size) and cell_size > 0):
        raise ValueError(f"cell_size must be a positive number of mm but got {cell_size!r}.")
    names = _branch_names(dataset, branches)
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot write {str(out)!r}: folder {str(out.parent)!r} is missing."
        )
    if out.is_dir():
        raise IsADirectoryError(
            f"Cannot write {str(out)!r}: it is a folder; pass the path of a .root file in it."
        )

    uproot = import_optional("uproot")
    tqdm = import_optional("tqdm").tqdm
    shapes: dict[str, np.dtype[Any]] = {name: np.dtype(np.float32) for name in names}
    shapes["deposits"] = np.dtype((np.float32, (GRID_SIZE, GRID_SIZE)))
    title = (
        f"Parametrised fast simulation (GFlash), NOT GEANT4: optuna_robust.calo.simulate("
        f"dataset={dataset!r}, seed={seed}, cell_size={cell_size}, visible={visible}, "
        f"electronics={electronics})"
    )
    chunk_size = block_size * -(-_WRITE_CHUNK // block_size)  # whole blocks per basket
    workers = _usable_cpus()
    with (
        _replaced_when_complete(out) as partial,
        _one_torch_thread(),
        ThreadPoolExecutor(workers) as pool,
        # ZSTD: as small as ZLIB for these floats, 8x faster to write and 3x to read.
        uproot.recreate(partial, compression=uproot.ZSTD(1)) as root_file,
        tqdm(total=n_events, unit="event", disable=not progress_bar) as progress,
    ):
        tree = root_file.mktree(
            "events",
            {names[k]: v for k, v in shapes.items()},
            title=f"{title} {expected_events_note(n_events)}",
        )
        blocks = _simulated_blocks(
            dataset, n_events, seed, cell_size, block_size, visible, electronics, pool, workers
        )
        for chunk_start in range(0, n_events, chunk_size):
            chunk = {
                name: np.empty((min(chunk_size, n_events - chunk_start), *dtype.shape), np.float32)
                for name, dtype in shapes.items()
            }
            for start in range(0, len(chunk["energy"]), block_size):
                block = next(blocks)
                for name, column in chunk.items():
                    column[start : start + len(block[name])] = block[name]
                progress.update(len(block["energy"]))
            tree.extend({names[k]: v for k, v in chunk.items()})
    return out


def _check_int(name: str, value: int, low: int, high: int | None) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be an integer {bounds} but got {value!r}.")


@contextmanager
def _replaced_when_complete(out: Path) -> Iterator[Path]:
    """A temporary path next to ``out`` to write to; it replaces ``out`` when the block ends.

    An error or an interrupt removes the temporary file and leaves ``out`` as it was. A writer
    killed outright (SIGKILL) leaves the hidden ``.<name>.<pid>.partial`` file behind, which
    :meth:`CaloData.from_root` refuses: its title says how many events it lacks.
    """
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        yield partial
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())  # on disk before the rename, or a power cut loses both
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Keep torch's per-op thread pool to one thread: blocks run in parallel instead, and on a
    busy machine that pool stalls more than it gains (measured 5x slower on two busy cores)."""
    torch = import_optional("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _simulated_blocks(
    dataset: str,
    n_events: int,
    seed: int,
    cell_size: float,
    block_size: int,
    visible: bool,
    electronics: bool,
    pool: ThreadPoolExecutor,
    workers: int,
) -> Iterator[dict[str, NDArray[np.floating]]]:
    """Blocks of events in order: truth and deposits.

    Every random number is drawn here, in event order, from one stream per kind (truth, shower
    fluctuations, sampling, electronics), so the result depends on the seed only; the
    deterministic shower integrals of the next few blocks run meanwhile in the pool.
    """
    torch = import_optional("torch")
    truth_stream, shower_stream, sampling_stream, noise_stream = (
        np.random.Generator(np.random.PCG64(child)) for child in SeedSequence(seed).spawn(4)
    )
    workspaces = threading.local()

    def mean_deposits(truth: dict[str, FloatArray], normal: FloatArray) -> NDArray[np.float32]:
        if not hasattr(workspaces, "tensor"):
            shape = (2, block_size, 2 * _N_SLICES, GRID_SIZE + 1, GRID_SIZE + 1)
            workspaces.tensor = torch.empty(shape)
        return _mean_deposits(truth, normal, cell_size, workspaces.tensor)

    unit = np.float32(_SAMPLING_FRACTION if visible else 1.0)
    pending: deque[tuple[dict[str, FloatArray], Future[NDArray[np.float32]]]] = deque()
    for start in range(0, n_events, block_size):
        n = min(block_size, n_events - start)
        truth = _draw_truth(dataset, n, cell_size, truth_stream)
        normal = shower_stream.standard_normal((n, 2))
        pending.append((truth, pool.submit(mean_deposits, truth, normal)))
        while pending and (len(pending) > 2 * workers or start + n == n_events):
            truth, future = pending.popleft()
            # Gamma(mu/theta_s, theta_s) per cell with theta_s = a^2, so that the cluster sum
            # has sigma/E = a/sqrt(E) exactly. An inclined shower crosses each layer on a path
            # 1/cos(theta) longer: fewer, thicker samplings, a = a(0)/sqrt(cos theta).
            scale = (_STOCHASTIC_TERM**2 / np.cos(truth["theta"])).astype(np.float32)
            scale = scale[:, None, None]
            mean = future.result()
            deposits = sampling_stream.standard_gamma(mean / scale, dtype=np.float32) * scale
            if electronics:
                deposits = _read_out(deposits, truth["module_theta"], noise_stream)
            deposits = deposits * unit
            # Subnormal floats (< 1.2e-38 GeV) are zero for any use but slow CPU arithmetic.
            yield {
                **truth,
                "deposits": np.where(deposits < np.finfo(np.float32).tiny, 0, deposits),
            }


def _read_out(
    deposits: NDArray[np.float32], module_theta: FloatArray, stream: np.random.Generator
) -> NDArray[np.float32]:
    """Digitise total deposits (n, 15, 15) in GeV like the LHCb ECAL, back in GeV.

    Each cell's ADC counts transverse energy at the polar angle ``module_theta`` under which
    its module sees the interaction point, with a gain spread and Gaussian noise per cell and
    per event; counts are rounded, saturate at 12 bits and are zero-suppressed.
    """
    sin_gain = np.sin(module_theta)
    gev_per_count = (1e-3 * (_ADC_MEV_T[0] + _ADC_MEV_T[1] * sin_gain) / sin_gain)[:, None, None]
    # One row of normals per event (gain, noise per cell, then the common noise), so that a
    # file does not depend on the block size.
    cells = GRID_SIZE * GRID_SIZE
    normal = stream.standard_normal((len(deposits), 2 * cells + 1))
    gain = 1 + _GAIN_SPREAD * normal[:, :cells].reshape(deposits.shape)
    noise = _NOISE_COUNTS * normal[:, cells:-1].reshape(deposits.shape)
    coherent = _COHERENT_NOISE_COUNTS * normal[:, -1:, None]
    counts = np.rint(deposits * gain / gev_per_count + noise + coherent).clip(None, _ADC_MAX)
    seeds = counts >= _SEED_COUNTS
    flat = counts.reshape(len(counts), -1)
    seeds.reshape(len(counts), -1)[np.arange(len(counts)), flat.argmax(axis=1)] = True
    padded = np.pad(seeds, ((0, 0), (1, 1), (1, 1)))
    read = np.zeros_like(seeds)
    for dy in range(3):
        for dx in range(3):
            read |= padded[:, dy : dy + GRID_SIZE, dx : dx + GRID_SIZE]
    # Read-out cells keep their pedestal-subtracted counts, negative ones as 0.
    counts = np.where(read, np.maximum(counts, 0), 0)
    return (counts * gev_per_count).astype(np.float32)


def _branch_names(dataset: str, branches: Mapping[str, str] | None) -> dict[str, str]:
    """Map each logical column written for ``dataset`` to its branch name."""
    logical = [name for name in DEFAULT_BRANCHES if dataset == "B" or name != "e_t"]
    names = {name: DEFAULT_BRANCHES[name] for name in logical}
    for name, branch in (branches or {}).items():
        if name not in names:
            raise ValueError(
                f"branches has an unknown logical column {name!r}; dataset {dataset} writes "
                f"{logical}."
            )
        if not isinstance(branch, str) or not branch:
            raise ValueError(f"branches[{name!r}] must be a non-empty string but got {branch!r}.")
        names[name] = branch
    if len(set(names.values())) != len(names):
        raise ValueError(f"branches must give distinct branch names but got {names}.")
    return names


def _draw_truth(
    dataset: str, n: int, cell_size: float, stream: np.random.Generator
) -> dict[str, FloatArray]:
    """Draw the photons' energy, entry point and direction, one row of uniforms per event."""
    uniform = stream.random((n, 5))
    truth = {
        "x": (uniform[:, 0] - 0.5) * cell_size,
        "y": (uniform[:, 1] - 0.5) * cell_size,
    }
    low, high = _ENERGY_RANGE_GEV
    if dataset == "A":
        truth["energy"] = low + (high - low) * uniform[:, 2]
        truth["theta"] = np.zeros(n)
        truth["phi"] = np.zeros(n)
        # No interaction point sets A's gain: it is that of a module at 0.1 rad, about the
        # finest LHCb gain whose 12 bits (full scale 107 GeV) still hold A's largest cell
        # (87 GeV for a 100 GeV photon); B's outer modules would saturate on A's photons.
        truth["module_theta"] = np.full(n, _GAIN_THETA_A)
        return truth
    theta = _THETA_RANGE[0] + (_THETA_RANGE[1] - _THETA_RANGE[0]) * uniform[:, 2]
    # Inverse CDF of the exponential E_T spectrum restricted to E = E_T/sin(theta) in range.
    e_t_low, e_t_high = low * np.sin(theta), high * np.sin(theta)
    e_t = e_t_low - _MEAN_E_T_GEV * np.log1p(
        uniform[:, 3] * np.expm1(-(e_t_high - e_t_low) / _MEAN_E_T_GEV)
    )
    truth["theta"] = theta
    truth["phi"] = 2 * np.pi * uniform[:, 4]
    truth["e_t"] = e_t
    truth["energy"] = np.clip(e_t / np.sin(theta), low, high)  # only rounding to undo
    truth["module_theta"] = theta  # B's photons come from the interaction point
    return truth


def _mean_deposits(
    truth: Mapping[str, FloatArray],
    normal: FloatArray,
    cell_size: float,
    workspace: torch.Tensor,
) -> NDArray[np.float32]:
    """Mean total energy deposited in each cell, shape (n, 15, 15), for one block of events."""
    torch = import_optional("torch")
    energy, theta = truth["energy"], truth["theta"]
    # Longitudinal Gamma profile (GFlash, sampling calorimeter), correlated ln T / ln alpha.
    log_y = np.log(energy / _CRITICAL_GEV)
    t_max = log_y - 0.812 - 0.55 * _INV_FS - 0.69 * (1 - _E_HAT)
    alpha = 0.81 + (0.458 + 2.26 / _Z_EFF) * log_y - 0.476 * _INV_FS
    rho = 0.784 - 0.023 * log_y
    t_max = t_max * np.exp(normal[:, 0] / (-2.5 + 1.25 * log_y))
    alpha = alpha * np.exp(
        (rho * normal[:, 0] + np.sqrt(1 - rho**2) * normal[:, 1]) / (-0.82 + 0.79 * log_y)
    )
    alpha = np.maximum(alpha, _MIN_ALPHA)
    beta = (alpha - 1) / t_max

    # Slices of the shower axis between the shower start and the back of the stack.
    axis_depth = _STACK_X0 / np.cos(theta) - _PHOTON_START_X0
    edges = axis_depth[:, None] * np.linspace(0.0, 1.0, _N_SLICES + 1)
    x = beta[:, None] * edges
    # P(alpha, x) and the partial first moment alpha P(alpha+1, x) = alpha P(alpha, x) - q(x).
    cdf = torch.special.gammainc(torch.from_numpy(alpha[:, None]), torch.from_numpy(x)).numpy()
    q = np.exp(alpha[:, None] * np.log(np.maximum(x, 1e-300)) - x - _lgamma(alpha)[:, None])
    weight = np.diff(cdf, axis=1)
    moment = np.diff(alpha[:, None] * cdf - q, axis=1)
    depth = np.clip(moment / (beta[:, None] * weight + 1e-300), edges[:, :-1], edges[:, 1:])

    # Lateral profile (GFlash, sampling calorimeter) at each slice's mean depth.
    tau = depth / t_max[:, None]
    log_e = np.log(energy)[:, None]
    r_core = (
        0.0251
        + 0.00319 * log_e
        + (0.1162 - 0.000381 * _Z_EFF) * tau
        - 0.0203 * (1 - _E_HAT)
        + 0.0397 * np.exp(-tau) * _INV_FS
    )
    k1, k2, k3, k4 = 0.659 - 0.00309 * _Z_EFF, 0.645, -2.59, 0.3585 + 0.0412 * log_e
    r_tail = (
        k1 * (np.exp(k3 * (tau - k2)) + np.exp(k4 * (tau - k2)))
        - 0.14 * (1 - _E_HAT)
        - 0.495 * np.exp(-tau) * _INV_FS
    )
    p1, p2, p3 = 2.632 - 0.00094 * _Z_EFF, 0.401 + 0.00187 * _Z_EFF, 1.313 - 0.0686 * log_e
    u = (p2 - tau) / p3
    core = p1 * np.exp(u - np.exp(u)) + (1 - _E_HAT) * (
        0.348 - 0.642 * np.exp(-((tau - 1) ** 2)) * _INV_FS
    )
    core = np.clip(core, 0.0, 1.0)

    # The shower axis runs along phi, passing the truth point (x, y) at the depth of the
    # shower's longitudinal centre of gravity: a slice at depth t sits (t - t_cog) X0 sin(theta)
    # from it. (The photon entered (1 + t_cog) X0 sin(theta) upstream.) So (x, y) is the image
    # of the cluster's energy barycentre, the position a calorimeter measures; a front-face
    # truth would hide an unknowable shift of up to a cell along phi (docs/simulation.md).
    centre_depth = (weight * depth).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-300)
    offset = (depth - centre_depth[:, None]) * _X0_MM * np.sin(theta)[:, None]
    axis_x = truth["x"][:, None] + offset * np.cos(truth["phi"])[:, None]
    axis_y = truth["y"][:, None] + offset * np.sin(truth["phi"])[:, None]
    spot_weight = energy[:, None] * weight
    fractions = _cell_integrals(
        np.concatenate([axis_x, axis_x], axis=1),
        np.concatenate([axis_y, axis_y], axis=1),
        _MOLIERE_MM * np.concatenate([r_core, r_tail], axis=1),
        np.concatenate([spot_weight * core, spot_weight * (1 - core)], axis=1),
        cell_size,
        workspace,
    )
    return np.maximum(fractions, np.float32(0.0))


def _lgamma(values: FloatArray) -> FloatArray:
    """ln Gamma, vectorised (numpy has no ufunc for it)."""
    torch = import_optional("torch")
    return torch.special.gammaln(torch.from_numpy(values)).numpy()


def _cell_integrals(
    axis_x: FloatArray,
    axis_y: FloatArray,
    radius: FloatArray,
    weight: FloatArray,
    cell_size: float,
    workspace: torch.Tensor,
) -> NDArray[np.float32]:
    """Sum over spots of weight x the integral of R^2/(pi (r^2 + R^2)^2) over each cell.

    Each array argument is (n, spots); the result is (n, 15, 15) with cell [i, j] = row i (y),
    column j (x). The integral over [0, X] x [0, Y] is
    G = [X/a atan(Y/a) + Y/b atan(X/b)] / (2 pi), a = sqrt(X^2 + R^2), b = sqrt(Y^2 + R^2),
    odd in X and in Y, so a cell is the four-corner difference of G on the 16 x 16 corners.
    ``workspace`` (2, >= n, spots, 16, 16) float32 is reused between blocks: fresh tensors of
    this size would cost more in page faults than the arithmetic.
    """
    torch = import_optional("torch")
    corners = (np.arange(GRID_SIZE + 1) - GRID_SIZE / 2) * cell_size
    u = torch.from_numpy(((corners - axis_x[..., None]) / radius[..., None]).astype(np.float32))
    v = torch.from_numpy(((corners - axis_y[..., None]) / radius[..., None]).astype(np.float32))
    inverse_a = torch.rsqrt(u * u + 1)  # R / a, one per x corner
    inverse_b = torch.rsqrt(v * v + 1)  # R / b, one per y corner
    scale = torch.from_numpy((weight / (2 * np.pi)).astype(np.float32))[..., None]
    g, second = workspace[:, : len(weight)]  # [n, spot, y corner, x corner]
    torch.mul(v[..., :, None], inverse_a[..., None, :], out=g)
    g.atan_().mul_((scale * u * inverse_a)[..., None, :])
    torch.mul(u[..., None, :], inverse_b[..., :, None], out=second)
    second.atan_().mul_((scale * v * inverse_b)[..., :, None])
    return g.add_(second).sum(dim=1).diff(dim=1).diff(dim=2).numpy()
