"""Process-wide runtime settings of the trainer: the device, torch's threads, glibc's heap.

They act on the whole process, not on one training, so they live apart from the training loop.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import ctypes
import sys

from optuna_robust._imports import import_optional

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise

# glibc mallopt parameters (malloc.h) and the values the CPU trainer sets; see keep_freed_memory.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_THRESHOLD_BYTES, _MMAP_THRESHOLD_BYTES = 1 << 30, 1 << 25
_malloc_tuned = False


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device``; ``None``: CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be e.g. 'cpu' or 'cuda' but got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here.")
    return resolved


def keep_freed_memory() -> None:
    """Ask glibc to keep freed heap memory for reuse instead of returning it to the kernel.

    A training step frees and re-allocates the same activation buffers (megabytes each). With
    glibc's defaults they go back to the kernel and every re-allocation page-faults: thousands
    of faults per step, 20-30 % of a CPU step here. The setting is process-wide; its cost is
    that the process keeps up to 1 GiB of freed memory mapped (for reuse) until it exits.
    """
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        pass


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Let torch use ``num_threads`` CPU threads inside the block (``None``: leave it)."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
