"""One vectorised optimiser step over K stacked instances, each with its own optimiser settings.

The instances' parameters live in one flat ``(K, P)`` table. Learning rates, L2 / weight decay
and each optimiser's constants are ``(K, 1)`` columns broadcast over the instance axis, so
instances of *different* configurations that share an architecture train as one stacked model.
SGD, Adam, AdamW, NAdam, RMSprop and Adagrad share one form of step (below) and mix freely in a
group; Adadelta's step has another form (a second running average under a square root), so it
trains in groups of its own. Each instance steps as torch.optim's optimiser of its kind does
with torch's defaults (to float32 rounding; the tests check every optimiser, alone and mixed).

The shared form, elementwise for each instance (``t`` is the step, 1-based)::

    g = grad + l2 * w                    # L2 added to the gradient (every optimiser but AdamW)
    w = w * (1 - lr * l2)                # AdamW's decoupled weight decay
    m = beta1 * m + (1 - beta1) * g
    v = rho * v + gain * g**2
    w = w - (c_m(t) * m + c_g(t) * g) / (s(t) * sqrt(v) + eps)

=============  =====  =====  =====  =====  ==========================  ====================
optimiser      beta1  rho    gain   eps    c_m(t), c_g(t)              s(t)
=============  =====  =====  =====  =====  ==========================  ====================
Adam, AdamW    0.9    0.999  0.001  1e-8   lr / (1 - beta1^t), 0       1 / sqrt(1 - rho^t)
NAdam          0.9    0.999  0.001  1e-8   torch's mu_t schedule       1 / sqrt(1 - rho^t)
RMSprop        0      0.99   0.01   1e-8   lr, 0 (m is g)              1
Adagrad        0      1      1      1e-10  lr, 0                       1
SGD            0      0      0      1      lr, 0                       0 (denominator 1)
=============  =====  =====  =====  =====  ==========================  ====================
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math

from optuna_robust._imports import import_optional
from optuna_robust.calo.models import ModelConfig

try:
    import torch
except ModuleNotFoundError:  # pragma: no cover - torch comes with the calo extra
    import_optional("torch")  # raises, naming the install command
    raise

# torch.optim's defaults as (beta1, rho, gain, eps, s) of the shared form (s None: bias-corrected);
# Adadelta's rho and eps, with gain 1 - rho, in the same columns.
_CONSTANTS: dict[str, tuple[float, float, float, float, float | None]] = {
    "Adam": (0.9, 0.999, 1 - 0.999, 1e-8, None),
    "AdamW": (0.9, 0.999, 1 - 0.999, 1e-8, None),
    "NAdam": (0.9, 0.999, 1 - 0.999, 1e-8, None),
    "RMSprop": (0.0, 0.99, 1 - 0.99, 1e-8, 1.0),
    "Adagrad": (0.0, 1.0, 1.0, 1e-10, 1.0),
    "SGD": (0.0, 0.0, 0.0, 1.0, 0.0),
    "Adadelta": (0.0, 0.9, 1 - 0.9, 1e-6, 0.0),
}
_NADAM_MOMENTUM_DECAY = 4e-3
# Steps whose step-dependent coefficients are computed (on the host, in float64) at a time.
_SCHEDULE_STEPS = 512


def optimizer_family(optimizer: str) -> str:
    """``"adadelta"`` or ``"moments"``: optimisers of one family can share a stacked group."""
    return "adadelta" if optimizer == "Adadelta" else "moments"


class StackedOptimizer:
    """The optimisers of K stacked instances, stepped together over one flat parameter table.

    Args:
        configs:
            Each instance's configuration (its ``optimizer``, ``lr`` and ``l2`` are used); all
            of one family (see :func:`optimizer_family`).
        params:
            The initial stacked parameters ``{name: (K, ...)}``; the optimiser copies them into
            its table and hands out views of it as :attr:`params`.
    """

    def __init__(self, configs: Sequence[ModelConfig], params: Mapping[str, torch.Tensor]) -> None:
        families = {optimizer_family(config.optimizer) for config in configs}
        if len(families) != 1:
            raise ValueError(f"One stacked group cannot mix Adadelta with others: {families}.")
        self.family = families.pop()
        self.shapes = {name: tuple(tensor.shape[1:]) for name, tensor in params.items()}
        device = next(iter(params.values())).device
        with torch.no_grad():
            self.table = torch.cat([t.reshape(len(configs), -1) for t in params.values()], 1)
        self.exp_avg = torch.zeros_like(self.table)  # Adadelta: its running average of updates
        self.exp_avg_sq = torch.zeros_like(self.table)
        self.steps = 0  # every instance of a group takes the same steps
        self.params = self._views()
        # Per-instance settings, float64 on the host: rows of the schedule and of the columns.
        host: dict[str, list[float]] = {key: [] for key in _HOST_KEYS}
        for config in configs:
            beta1, rho, gain, eps, s = _CONSTANTS[config.optimizer]
            decoupled = config.optimizer == "AdamW"
            host["lr"].append(config.lr)
            host["l2"].append(0.0 if decoupled else config.l2)
            host["decay"].append(1 - config.lr * config.l2 if decoupled else 1.0)
            host["one_minus_beta1"].append(1 - beta1)
            host["rho"].append(rho)
            host["gain"].append(gain)
            host["eps"].append(eps)
            host["beta1"].append(beta1)
            host["corrected"].append(float(s is None))
            host["s"].append(0.0 if s is None else s)
            host["nadam"].append(float(config.optimizer == "NAdam"))
            host["mu_product"].append(1.0)
        self._host = {key: torch.tensor(row, dtype=torch.float64) for key, row in host.items()}
        self._device = device
        self._refresh()
        self._schedule = torch.empty(0, 3, len(configs), 1, device=device)
        self._row = 0

    def zero_grad(self) -> None:
        """Forget the gradients of the last step."""
        for tensor in self.params.values():
            tensor.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One step of every instance, from the gradients in ``params[name].grad``."""
        n_stack = self.table.shape[0]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params.values()]
        grad = torch.cat([g.reshape(n_stack, -1) for g in grads], dim=1)
        self.steps += 1
        columns, weights = self._columns, self.table
        if self._any["l2"]:
            grad.addcmul_(weights, columns["l2"])
        if self.family == "adadelta":
            self._adadelta(grad)
            return
        if self._any["decay"]:
            weights.mul_(columns["decay"])
        c_m, c_g, s = self._coefficients()
        average = grad
        if self._any["momentum"]:
            average = self.exp_avg.lerp_(grad, columns["one_minus_beta1"])
        numerator = average * c_m
        if self._any["nadam"]:
            numerator.addcmul_(grad, c_g)
        if self._any["denominator"]:
            squares = self.exp_avg_sq.mul_(columns["rho"]).addcmul_(grad, grad * columns["gain"])
            weights.addcdiv_(numerator, squares.sqrt().mul_(s).add_(columns["eps"]), value=-1)
        else:
            weights.sub_(numerator)

    def keep(self, keep: torch.Tensor) -> None:
        """Go on with the instances at positions ``keep`` only (parameters, state, settings)."""
        self.table = self.table[keep]
        self.exp_avg, self.exp_avg_sq = self.exp_avg[keep], self.exp_avg_sq[keep]
        host_keep = keep.cpu()
        self._host = {key: values[host_keep] for key, values in self._host.items()}
        self._refresh()
        self._schedule = self._schedule[:, :, keep]
        self.params = self._views()

    def _views(self) -> dict[str, torch.Tensor]:
        """Each parameter as a leaf view of the table: the step updates them in place."""
        views, start = {}, 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            view = self.table[:, start : start + size].view(-1, *shape)
            views[name] = view.requires_grad_()
            start += size
        return views

    def _refresh(self) -> None:
        """The ``(K, 1)`` device columns, and which terms of the step any instance needs."""
        host = self._host
        self._any = {
            "l2": bool((host["l2"] != 0).any()),
            "decay": bool((host["decay"] != 1).any()),
            "momentum": bool((host["beta1"] != 0).any()),
            "nadam": bool((host["nadam"] != 0).any()),
            "denominator": bool(((host["s"] != 0) | (host["corrected"] != 0)).any()),
        }
        self._columns = {
            key: host[key].to(self._device, torch.float32).unsqueeze(1)
            for key in ("lr", "l2", "decay", "one_minus_beta1", "rho", "gain", "eps")
        }

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``c_m, c_g, s`` of this step, ``(K, 1)`` each, from a schedule made in chunks."""
        if self._row == self._schedule.shape[0]:
            self._schedule = self._make_schedule(self.steps, _SCHEDULE_STEPS)
            self._row = 0
        c_m, c_g, s = self._schedule[self._row]
        self._row += 1
        return c_m, c_g, s

    def _make_schedule(self, first_step: int, n_steps: int) -> torch.Tensor:
        """The coefficients of steps ``first_step ...``, shape ``(n_steps, 3, K, 1)``."""
        host = self._host
        step = torch.arange(first_step, first_step + n_steps, dtype=torch.float64).unsqueeze(1)
        lr, beta1, corrected = host["lr"], host["beta1"], host["corrected"] != 0
        c_m = lr / torch.where(corrected, 1 - beta1**step, 1.0)
        s = torch.where(corrected, (1 - host["rho"] ** step).rsqrt(), host["s"])
        c_g = torch.zeros_like(c_m)
        if self._any["nadam"]:
            # torch's NAdam: mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)), and the
            # product of mu_1 ... mu_t carried from step to step.
            mu = beta1 * (1 - 0.5 * 0.96 ** (step * _NADAM_MOMENTUM_DECAY))
            mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * _NADAM_MOMENTUM_DECAY))
            product = host["mu_product"] * torch.cumprod(mu, dim=0)
            nadam = host["nadam"] != 0
            c_g = torch.where(nadam, lr * (1 - mu) / (1 - product), c_g)
            c_m = torch.where(nadam, lr * mu_next / (1 - product * mu_next), c_m)
            host["mu_product"] = product[-1].clone()
        schedule = torch.stack([c_m, c_g, s], dim=1).unsqueeze(3)
        return schedule.to(self._device, torch.float32)

    def _adadelta(self, grad: torch.Tensor) -> None:
        columns = self._columns
        squares = self.exp_avg_sq.mul_(columns["rho"]).addcmul_(grad, grad * columns["gain"])
        delta = (self.exp_avg + columns["eps"]).sqrt_()
        delta.div_((squares + columns["eps"]).sqrt_()).mul_(grad)
        self.exp_avg.mul_(columns["rho"]).addcmul_(delta, delta * columns["gain"])
        self.table.addcmul_(delta, columns["lr"], value=-1)


_HOST_KEYS = (
    "lr",
    "l2",
    "decay",
    "one_minus_beta1",
    "rho",
    "gain",
    "eps",
    "beta1",
    "corrected",
    "s",
    "nadam",
    "mu_product",
)
