"""The instance trainer: K instances trained together as one stacked model.

Each instance has its own bootstrap training sample (``data_seed``), its own He initialisation
and minibatch order (``init_seed``) and stops on its own epoch (paper 3.7); the K of them share
one forward/backward pass (grouped convolutions, batched matmuls) and one vectorised optimiser
step. The K instances may belong to different configurations of one architecture and batch
size: each keeps its own optimiser, learning rate and L2. Optimisers act elementwise, so this
gives the losses of K separate trainings. This module is the training loop; the stacked network
and which configurations may share one are in ``calo/stacked.py``, the optimiser in
``calo/_optim.py``, the stopping rule in ``calo/_stopping.py``, the process-wide settings in
``calo/_runtime.py``.

Seeds, so that a plain loop can reproduce an instance exactly: the weights are drawn by
``build_model(config, task, init_seed=instance.init_seed)``; each epoch's minibatch order is
``torch.randperm(n_train, generator=g)`` with one CPU generator per instance,
``g = torch.Generator().manual_seed(derive_seed(instance.init_seed, "minibatches"))``; the
training sample is ``data.training_sample(n_train, instance.data_seed)`` and the test sample
``data.test_sample(n_test, seed=test_seed)``, the same for every instance, or with
``test_sample="per_instance"`` (the paper's protocol) ``data.test_sample(n_test,
seed=derive_seed(test_seed, "test", instance.data_seed))``, drawn afresh for each bootstrap
sample. An epoch is one pass
over the ``n_train`` rows in minibatches of ``batch_size`` (the last one smaller if needed).
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from dataclasses import dataclass
import math
import os
import time
from typing import Any
from typing import Literal

from optuna_robust import Instance
from optuna_robust._imports import import_optional
from optuna_robust._instances import derive_seed  # the documented minibatch seed rule
from optuna_robust.calo._inputs import SampleSource as SampleSource
from optuna_robust.calo._inputs import check_batch
from optuna_robust.calo._inputs import check_int
from optuna_robust.calo._inputs import check_sample
from optuna_robust.calo._inputs import file_identity
from optuna_robust.calo._inputs import open_data
from optuna_robust.calo._optim import StackedOptimizer
from optuna_robust.calo._runtime import keep_freed_memory
from optuna_robust.calo._runtime import resolve_device
from optuna_robust.calo._runtime import torch_threads
from optuna_robust.calo._sample import Sample
from optuna_robust.calo._stopping import early_stop_epoch as early_stop_epoch
from optuna_robust.calo._stopping import stop_reason
from optuna_robust.calo._stopping import stops_after
from optuna_robust.calo.data import GRID_SIZE
from optuna_robust.calo.losses import TASKS
from optuna_robust.calo.losses import loss_for
from optuna_robust.calo.models import ModelConfig
from optuna_robust.calo.models import inductive_features
from optuna_robust.calo.stacked import StackedNet
from optuna_robust.calo.stacked import group_key
from optuna_robust.calo.stacked import split_evenly
from optuna_robust.calo.stacked import stack_parameters

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise

# When TrainSettings.group_size is None, a group holds as many instances as keep its
# first-layer activations of one step within this many floats (and at most _MAX_AUTO_GROUP):
# on a CPU the throughput per instance grows with K while they stay about cache-sized (8
# instances of the benchmark model, 64 of the paper grid's smallest) and falls beyond; there,
# larger groups only amortise the per-step overhead further. A GPU needs hundreds.
_GROUP_FLOATS = {"cpu": 1 << 21, "cuda": 1 << 28}
_MAX_AUTO_GROUP = {"cpu": 64, "cuda": 1024}
# On a CPU with several torch threads, groups of at least this many instances train in
# parallel, one per thread (see train_instances).
_MIN_PARALLEL_GROUP = 4
# Floats of first-layer activations per evaluation chunk: bounds the memory at any K.
_EVAL_FLOATS = {"cpu": 1 << 21, "cuda": 1 << 28}


@dataclass(frozen=True)
class TrainSettings:
    """How every instance is trained and when it stops (paper 3.7).

    Attributes:
        min_epochs:
            Epochs every instance trains at least (paper: 100).
        window:
            After ``min_epochs``, stop as soon as the test losses of the last ``window`` epochs
            (paper: 30) satisfy ``max <= (1 + tolerance) * min``.
        tolerance:
            Relative spread allowed in the window (paper: 0.1).
        max_epochs:
            Stop here whatever the losses do.
        n_train:
            Rows of each instance's bootstrap training sample (paper: 32,000).
        n_test:
            Rows of the test sample that gives the loss (``None``: the whole test half).
        test_seed:
            Seed of the test sample (``"fixed"``), or the seed it is derived from with each
            instance's ``data_seed`` (``"per_instance"``).
        test_sample:
            ``"fixed"``: one test sample for every instance and every model. ``"per_instance"``:
            each instance is tested on its own random subsample of the test half, as in the
            paper (its spread then includes the test sample's); instances that share a
            ``data_seed`` (``pairing="data"``) share it.
        group_size:
            Instances trained together at most; more are split into groups of equal size.
            ``None``: as many as keep a step's first-layer activations about cache-sized on a
            CPU (8 of the paper's 2 conv + 2 FC net at batch 32, up to 64 of smaller ones),
            up to 1,024 on a GPU.
    """

    min_epochs: int = 100
    window: int = 30
    tolerance: float = 0.1
    max_epochs: int = 500
    n_train: int = 32_000
    n_test: int | None = 32_000
    test_seed: int = 0
    test_sample: Literal["fixed", "per_instance"] = "fixed"
    group_size: int | None = None

    def __post_init__(self) -> None:
        check_int("min_epochs", self.min_epochs, minimum=0)
        check_int("window", self.window, minimum=1)
        check_int("max_epochs", self.max_epochs, minimum=1)
        check_int("n_train", self.n_train, minimum=1)
        check_int("test_seed", self.test_seed, minimum=0)
        if self.n_test is not None:
            check_int("n_test", self.n_test, minimum=1)
        if self.group_size is not None:
            check_int("group_size", self.group_size, minimum=1)
        if self.test_sample not in ("fixed", "per_instance"):
            raise ValueError(
                f"test_sample must be 'fixed' or 'per_instance' but got {self.test_sample!r}."
            )
        if not (isinstance(self.tolerance, int | float) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be a number >= 0 but got {self.tolerance!r}.")
        if self.min_epochs > self.max_epochs:
            raise ValueError(
                f"min_epochs ({self.min_epochs}) must not exceed max_epochs ({self.max_epochs})."
            )


def train_instances(
    config: Mapping[str, Any] | ModelConfig,
    instances: Sequence[Instance],
    *,
    data: SampleSource,
    task: str,
    settings: TrainSettings | None = None,
    device: str | torch.device | None = None,
    return_state: bool = False,
) -> list[dict[str, Any]]:
    """Train instances of one configuration together; the same losses as one at a time.

    The instances are split into groups of at most ``settings.group_size``, each trained as
    one stacked model. On a CPU where torch may use several threads, groups of at least four
    instances train in parallel, one per thread (torch ops single-threaded meanwhile).

    Args:
        config:
            The configuration (flat dict, see :mod:`optuna_robust.calo.models`).
        instances:
            The instances to train (their ``data_seed`` and ``init_seed`` matter).
        data:
            Any object with ``training_sample(n, data_seed)`` and ``test_sample(n, seed)``.
        task:
            ``"energy"`` or ``"position"``.
        settings:
            Sample sizes and early stopping (``None``: ``TrainSettings()``, the paper's).
        device:
            ``None``: CUDA when available, else the CPU.
        return_state:
            Also return each instance's final weights (``"state_dict"``, on the CPU, loadable
            into ``build_model(config, task)``).

    Returns:
        One dict per instance, in order: ``loss`` (test loss at the stopping epoch; ``inf``
        when training diverged), ``epochs``, ``seconds`` (the instance's share of its group's
        wall time: each epoch's time split evenly among the instances trained in it), ``curve``
        (test loss after each epoch) and ``stop_reason`` (``"converged"``, ``"max_epochs"``
        or ``"diverged"``).
    """
    (results,) = train_batches(
        [(config, instances)],
        data=data,
        task=task,
        settings=settings,
        device=device,
        return_state=return_state,
    )
    return results


def train_batches(
    batches: Sequence[tuple[Mapping[str, Any] | ModelConfig, Sequence[Instance]]],
    *,
    data: SampleSource,
    task: str,
    settings: TrainSettings | None = None,
    device: str | torch.device | None = None,
    return_state: bool = False,
) -> list[list[dict[str, Any]]]:
    """Train instances of several configurations; each gets the losses it would get alone.

    Instances whose configurations have the same :func:`~optuna_robust.calo.stacked.group_key`
    (the same network and batch size; Adadelta apart from the other optimisers) train together
    as stacked models of at most ``settings.group_size`` instances, each instance with its own
    optimiser, learning rate and L2, split and run in parallel as :func:`train_instances` says.

    Args:
        batches:
            ``[(config, instances), ...]``: each configuration (a flat dict or a
            :class:`~optuna_robust.calo.models.ModelConfig`) with the instances to train.
        data, task, settings, device, return_state:
            As for :func:`train_instances`.

    Returns:
        One list per batch, in order, of one dict per instance as :func:`train_instances`
        returns them.
    """
    checked = [check_batch(batch) for batch in batches]
    members = [(config, instance) for config, instances in checked for instance in instances]
    if task not in TASKS:
        raise ValueError(f"task must be 'energy' or 'position' but got {task!r}.")
    settings = TrainSettings() if settings is None else settings
    if not isinstance(settings, TrainSettings):
        raise ValueError(f"settings must be a TrainSettings but got {settings!r}.")
    if not isinstance(data, SampleSource):
        raise ValueError(
            "data must have training_sample(n, data_seed) and test_sample(n, seed) methods "
            f"but got {data!r}."
        )
    target_device = resolve_device(device)
    if not members:
        return [[] for _ in batches]
    if target_device.type == "cpu":
        keep_freed_memory()
    test = None
    if settings.test_sample == "fixed":
        test = check_sample(
            data.test_sample(settings.n_test, seed=settings.test_seed), "test", None
        )
    # On a CPU, parallel groups (one per torch thread, each op single-threaded) are a little
    # faster than multi-threaded ops on these small tensors on an idle machine, and several
    # times faster when other processes take a core, where OpenMP threads wait for each other
    # at every op (docs/performance.md).
    threads = torch.get_num_threads() if target_device.type == "cpu" else 1
    workers = max(1, min(threads, len(members) // _MIN_PARALLEL_GROUP))
    by_key: dict[Hashable, list[int]] = {}
    for position, (config, _) in enumerate(members):
        by_key.setdefault(group_key(config), []).append(position)
    groups = [
        group
        for positions in by_key.values()
        for group in split_evenly(
            positions,
            group_size=settings.group_size
            or _auto_group_size(members[positions[0]][0], target_device),
            workers=max(1, min(workers, len(positions) // _MIN_PARALLEL_GROUP)),
        )
    ]
    groups.sort(key=len, reverse=True)  # the largest first: parallel workers end together

    def train(group: list[int]) -> list[dict[str, Any]]:
        group_members = [members[position] for position in group]
        return _train_group(group_members, data, test, task, settings, target_device, return_state)

    if workers == 1:
        # Too few instances for parallel groups: single-threaded ops all the same, since
        # OpenMP threads on these small tensors mostly wait for each other.
        with torch_threads(1 if target_device.type == "cpu" else None):
            outcomes = [train(group) for group in groups]
    else:
        with torch_threads(1), ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(train, groups))
    results: list[dict[str, Any]] = [{} for _ in members]
    for group, group_results in zip(groups, outcomes, strict=True):
        for position, result in zip(group, group_results, strict=True):
            results[position] = result
    per_batch, start = [], 0
    for _, instances in checked:
        per_batch.append(results[start : start + len(instances)])
        start += len(instances)
    return per_batch


class CaloTrainer:
    """``train_fn(params, instances)`` for :func:`optuna_robust.select` and friends.

    It also offers ``select`` its round's work in groups (``group_key``, ``train_group`` and
    ``max_group_size``): models whose configurations share a network and a batch size come in
    one call and train as stacked models, each instance with its own optimiser settings.
    Picklable for process executors: built from a path, it holds only the path and loads the
    data lazily, once per worker process.

    Args:
        data:
            A dataset object (see :class:`SampleSource`), e.g. a ``CaloData``, or the path
            of a ROOT file, opened with ``CaloData.from_root`` in each worker process.
        task:
            ``"energy"`` or ``"position"``.
        settings:
            Sample sizes and early stopping (``None``: ``TrainSettings()``, the paper's).
        device:
            ``None``: CUDA when available, else the CPU.
        num_threads:
            CPU threads torch may use during a call (``None``: leave torch's setting), e.g.
            cores / workers when several worker processes share a machine.
        root_options:
            Keyword arguments for ``CaloData.from_root`` when ``data`` is a path (branch
            names, ``tree_name``, ``split_seed`` ...).
        max_group_size:
            Models that ``select`` hands over in one ``train_group`` call at most (a call that
            raises is retried model by model; with ``select``'s ``timeout``, one call gets it).
    """

    def __init__(
        self,
        data: SampleSource | str | os.PathLike[str],
        *,
        task: str,
        settings: TrainSettings | None = None,
        device: str | None = None,
        num_threads: int | None = None,
        root_options: Mapping[str, Any] | None = None,
        max_group_size: int = 64,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be 'energy' or 'position' but got {task!r}.")
        settings = TrainSettings() if settings is None else settings
        if not isinstance(settings, TrainSettings):
            raise ValueError(f"settings must be a TrainSettings but got {settings!r}.")
        if num_threads is not None:
            check_int("num_threads", num_threads, minimum=1)
        check_int("max_group_size", max_group_size, minimum=1)
        if device is not None:
            resolve_device(device)
        if isinstance(data, str | os.PathLike):
            self._path: str | None = os.fspath(data)
            self._data: SampleSource | None = None
        elif isinstance(data, SampleSource):
            self._path, self._data = None, data
        else:
            raise ValueError(f"data must be a path or a dataset object but got {data!r}.")
        self.task = task
        self.settings = settings
        self.device = device
        self.num_threads = num_threads
        self.root_options = dict(root_options or {})
        self.max_group_size = max_group_size

    def fingerprint(self) -> dict[str, Any]:
        """What decides the losses this trainer returns, for :func:`optuna_robust.select`'s run
        fingerprint: the task, the settings that shape a training, and the data (a file's size
        and content hash, with its reading options).

        A rerun of ``select`` with another fingerprint is refused, since it would mix two
        trainings in one selection. The speed settings (``group_size``, the device, threads,
        ``max_group_size``) change no result beyond rounding and are left out.
        """
        settings = asdict(self.settings)
        settings.pop("group_size")
        if self._path is not None:
            data: dict[str, Any] = {**file_identity(self._path), "options": self.root_options}
        else:
            identity = getattr(self._data, "fingerprint", None)
            data = identity() if callable(identity) else {"object": type(self._data).__name__}
        return {"task": self.task, "settings": settings, "data": data}

    def __call__(
        self, params: Mapping[str, Any], instances: Sequence[Instance]
    ) -> list[dict[str, Any]]:
        """Train ``instances`` of the configuration ``params``; see :func:`train_instances`."""
        (results,) = self.train_group([(params, instances)])
        return results

    def group_key(self, params: Mapping[str, Any]) -> Hashable:
        """Equal for models that can train in one stacked model (``calo.stacked.group_key``)."""
        try:
            return group_key(ModelConfig.from_dict(params))
        except ValueError:  # invalid params: a group of its own, whose training then fails
            return "invalid", repr(sorted(params.items(), key=str))

    def train_group(
        self, batches: Sequence[tuple[Mapping[str, Any], Sequence[Instance]]]
    ) -> list[list[dict[str, Any]]]:
        """Train ``[(params, instances), ...]``: one result list per batch (``train_batches``)."""
        if self._data is not None:
            data = self._data
        else:
            data = open_data(str(self._path), self.root_options)
        with torch_threads(self.num_threads):
            return train_batches(
                batches, data=data, task=self.task, settings=self.settings, device=self.device
            )

    def __repr__(self) -> str:
        source = repr(self._path) if self._path is not None else type(self._data).__name__
        return f"CaloTrainer({source}, task={self.task!r}, settings={self.settings!r})"


def _train_group(
    members: list[tuple[ModelConfig, Instance]],
    data: SampleSource,
    test: Sample | None,
    task: str,
    settings: TrainSettings,
    device: torch.device,
    return_state: bool,
) -> list[dict[str, Any]]:
    """Train one stacked model: ``(config, instance)`` members of one ``group_key``."""
    start_time = time.perf_counter()
    configs = [config for config, _ in members]
    instances = [instance for _, instance in members]
    config = configs[0]  # the architecture and batch size, shared by every member
    n_train, batch_size = settings.n_train, config.batch_size

    # Data: each instance's bootstrap sample, stacked as rows of one table (instance-major).
    samples = [
        check_sample(data.training_sample(n_train, inst.data_seed), "training", n_train)
        for inst in instances
    ]
    deposits = torch.stack([s.deposits for s in samples]).to(device)  # (K, n, 15, 15)
    targets = torch.stack([_target(s, task) for s in samples]).to(device)  # (K, n)
    extras = None
    if config.inductive_bias:
        extras = torch.stack([inductive_features(s.deposits, task) for s in samples]).to(device)
    if test is not None:  # one test sample for all: (n_test, 15, 15)
        test_deposits = test.deposits.to(device)
        test_targets = _target(test, task).to(device)
        test_extras = inductive_features(test.deposits, task).to(device)
    else:  # each instance's own: (K, n_test, 15, 15), dropped with the instance when it stops
        tests = [_instance_test_sample(data, inst, settings) for inst in instances]
        test_deposits = torch.stack([t.deposits for t in tests]).to(device)
        test_targets = torch.stack([_target(t, task) for t in tests]).to(device)
        test_extras = torch.stack([inductive_features(t.deposits, task) for t in tests]).to(device)
        del tests
    del samples

    # Model: the reference networks' initial weights, stacked along a leading instance axis;
    # the optimiser holds them, with each member's own optimiser, learning rate and L2.
    initial = stack_parameters(config, task, [inst.init_seed for inst in instances], device)
    optimizer = StackedOptimizer(configs, initial)
    params = optimizer.params
    net = StackedNet(config)
    loss_fn = loss_for(task)
    generators = [
        torch.Generator().manual_seed(derive_seed(inst.init_seed, "minibatches"))
        for inst in instances
    ]

    active = list(range(len(instances)))  # positions (in `instances`) still training
    curves: list[list[float]] = [[] for _ in instances]
    results: list[dict[str, Any]] = [{} for _ in instances]
    seconds = [(time.perf_counter() - start_time) / len(instances)] * len(instances)

    for epoch in range(1, settings.max_epochs + 1):
        epoch_start = time.perf_counter()
        n_active = len(active)
        # Row of each instance's example in the flattened (K * n) table, in its epoch order.
        offsets = torch.arange(n_active, device=device).unsqueeze(1) * n_train
        order = torch.stack([torch.randperm(n_train, generator=generators[i]) for i in active])
        order = order.to(device) + offsets
        flat_deposits = deposits.view(n_active * n_train, GRID_SIZE, GRID_SIZE)
        flat_targets = targets.view(-1)
        train_loss = torch.zeros(n_active, device=device)
        for batch_start in range(0, n_train, batch_size):
            rows = order[:, batch_start : batch_start + batch_size]  # (K, b)
            # Minibatch-major input (b, K, 15, 15): channel k of example j is instance k's.
            inputs = flat_deposits.index_select(0, rows.t().reshape(-1))
            inputs = inputs.view(rows.shape[1], n_active, GRID_SIZE, GRID_SIZE)
            batch_targets = flat_targets.index_select(0, rows.reshape(-1)).view(rows.shape)
            batch_extras = None
            if extras is not None:
                batch_extras = (
                    extras.view(n_active * n_train, -1)
                    .index_select(0, rows.reshape(-1))
                    .view(*rows.shape, -1)
                )
            predictions = net.forward(params, inputs, batch_extras)
            losses = loss_fn(predictions, batch_targets)  # (K,): each instance's own mean
            optimizer.zero_grad()
            # The sum keeps the instances apart: d(sum)/d(loss_k) = 1 for each k.
            losses.sum().backward()
            optimizer.step()
            train_loss += losses.detach()

        test_loss = _evaluate(net, params, test_deposits, test_targets, test_extras, task)
        train_finite = torch.isfinite(train_loss).tolist()
        epoch_seconds = time.perf_counter() - epoch_start
        stopped = []
        for slot, position in enumerate(active):
            seconds[position] += epoch_seconds / n_active
            loss = test_loss[slot] if train_finite[slot] else math.inf
            curves[position].append(loss if math.isfinite(loss) else math.inf)
            if stops_after(
                curves[position],
                epoch,
                settings.min_epochs,
                settings.window,
                settings.tolerance,
                settings.max_epochs,
            ):
                stopped.append(slot)
        for slot in stopped:
            position = active[slot]
            curve = curves[position]
            results[position] = {
                "loss": curve[-1],
                "epochs": epoch,
                "curve": curve,
                "stop_reason": stop_reason(
                    curve, settings.min_epochs, settings.window, settings.tolerance
                ),
            }
            if return_state:
                results[position]["state_dict"] = {
                    name: tensor[slot].detach().cpu().clone() for name, tensor in params.items()
                }
        if stopped:
            # Drop the stopped instances: momentum and weight decay would keep moving them.
            keep = [slot for slot in range(n_active) if slot not in stopped]
            active = [active[slot] for slot in keep]
            if not active:
                break
            keep_index = torch.tensor(keep, device=device)
            deposits, targets = deposits[keep_index], targets[keep_index]
            if extras is not None:
                extras = extras[keep_index]
            if test is None:
                test_deposits = test_deposits[keep_index]
                test_targets, test_extras = test_targets[keep_index], test_extras[keep_index]
            optimizer.keep(keep_index)
            params = optimizer.params

    for result, instance_seconds in zip(results, seconds, strict=True):
        result["seconds"] = instance_seconds
    return results


def _auto_group_size(config: ModelConfig, device: torch.device) -> int:
    """Instances per group when ``TrainSettings.group_size`` is None (see _GROUP_FLOATS)."""
    filters, kernel = config.conv_layers[0]
    side = GRID_SIZE if config.padding == "same" else GRID_SIZE - kernel + 1
    per_instance = config.batch_size * filters * side**2
    budget = _GROUP_FLOATS.get(device.type, _GROUP_FLOATS["cpu"])
    return max(1, min(_MAX_AUTO_GROUP.get(device.type, 64), budget // per_instance))


def _evaluate(
    net: StackedNet,
    params: dict[str, torch.Tensor],
    deposits: torch.Tensor,
    targets: torch.Tensor,
    extras: torch.Tensor,
    task: str,
) -> list[float]:
    """Test loss of each stacked instance (float64 sums over chunks of the test sample).

    ``deposits`` is one test sample ``(n, 15, 15)`` for every instance, or one per instance
    ``(K, n, 15, 15)`` (``targets`` then ``(K, n)``, ``extras`` ``(K, n, m)``).
    """
    config = net.config
    loss_fn = loss_for(task)
    n_stack = params["output.bias"].shape[0]
    own = deposits.dim() == 4  # each instance its own test sample
    first_side = GRID_SIZE if config.padding == "same" else GRID_SIZE - config.conv1_kernel + 1
    budget = _EVAL_FLOATS.get(deposits.device.type, _EVAL_FLOATS["cpu"])
    rows_per_chunk = max(1, budget // (n_stack * config.conv1_filters * first_side**2))
    n_rows = deposits.shape[1] if own else deposits.shape[0]
    total = torch.zeros(n_stack, dtype=torch.float64, device=deposits.device)
    with torch.no_grad():
        for start in range(0, n_rows, rows_per_chunk):
            stop = start + rows_per_chunk
            # As K channels, the convolutions take the fast grouped, channels-last path of
            # training (one image against K*filters filters in one ungrouped convolution came
            # out NCHW and 3x slower); channel k is instance k's image.
            if own:
                inputs = deposits[:, start:stop].transpose(0, 1)
                chunk_extras = extras[:, start:stop] if config.inductive_bias else None
                chunk_targets = targets[:, start:stop]
            else:
                inputs = deposits[start:stop].unsqueeze(1).expand(-1, n_stack, -1, -1)
                chunk_extras = None
                if config.inductive_bias:
                    chunk_extras = extras[start:stop].expand(n_stack, -1, -1)
                chunk_targets = targets[start:stop].expand(n_stack, -1)
            predictions = net.forward(params, inputs, chunk_extras)
            total += loss_fn(predictions, chunk_targets).double() * predictions.shape[1]
    losses: list[float] = (total / n_rows).tolist()
    return losses


def instance_test_seed(settings: TrainSettings, instance: Instance) -> int:
    """The seed of ``instance``'s test sample under ``settings`` (see ``test_sample``).

    Use it to score anything else, a baseline say, on an instance's own test sample:
    ``data.test_sample(settings.n_test, seed=instance_test_seed(settings, instance))``.
    """
    if settings.test_sample == "fixed":
        return settings.test_seed
    return derive_seed(settings.test_seed, "test", instance.data_seed)


def _instance_test_sample(
    data: SampleSource, instance: Instance, settings: TrainSettings
) -> Sample:
    """The instance's own test sample (``test_sample="per_instance"``), seeded by its data seed."""
    seed = instance_test_seed(settings, instance)
    return check_sample(data.test_sample(settings.n_test, seed=seed), "test", settings.n_test)


def _target(sample: Sample, task: str) -> torch.Tensor:
    return sample.energy if task == "energy" else sample.x
