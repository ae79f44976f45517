"""Fig. 2 of the paper: seven activations over the learning-rate x batch-size grid.

Every grid point of every activation trains ``instances`` independent instances (own bootstrap
sample, own initialisation); the boxplots show their test losses. Run with::

    .venv/bin/python -m studies.run activations --scale smoke   # or cpu, paper
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter
import numpy as np
import pandas as pd

from optuna_robust.calo.data import CaloData
from optuna_robust.calo.spaces import product
from optuna_robust.calo.train import train_instances
from studies._common import data_folder
from studies._common import dataset
from studies._common import fresh_instances
from studies._common import markdown
from studies._common import settings


def run(config: dict[str, Any], out: Path) -> str:
    folder = data_folder(config, out)
    data = CaloData.from_root(dataset(config["dataset"], config["n_events"], 0, folder))
    grid = {"activation": config["activations"], "lr": config["lrs"]}
    grid["batch_size"] = config["batch_sizes"]
    candidates = product(grid, optimizer="Adam", **config["model"])
    rows = []
    for candidate in candidates:
        instances = fresh_instances(config, candidate)
        results = train_instances(
            candidate, instances, data=data, task=config["task"], settings=settings(config)
        )
        for result in results:
            rows.append(
                {
                    **candidate,
                    "loss": result["loss"],
                    "epochs": result["epochs"],
                    "seconds": result["seconds"],
                }
            )
    losses = pd.DataFrame(rows)
    losses["point"] = [f"lr {r.lr:g}, bs {r.batch_size}" for r in losses.itertuples()]

    # Per activation: every instance pooled, and its best grid point by median loss.
    summary = []
    for activation, group in losses.groupby("activation", sort=False):
        by_point = group.groupby("point", sort=False)["loss"]
        best_point = by_point.median().idxmin()
        best = group.loc[group["point"] == best_point, "loss"].to_numpy()
        finite = best[np.isfinite(best)]
        q25, q75 = np.percentile(finite, [25, 75]) if finite.size else (np.nan, np.nan)
        summary.append(
            {
                "activation": activation,
                "diverged (all points)": int((~np.isfinite(group["loss"])).sum()),
                "best point": best_point,
                "median": float(np.median(best)),
                "IQR": float(q75 - q25),
                "mean": float(np.mean(best)),
                "max": float(np.max(best)),
            }
        )
    summary_frame = pd.DataFrame(summary).sort_values("median", ignore_index=True)

    # Fig. 2: one panel per activation, one box per grid point.
    points = list(dict.fromkeys(losses["point"]))
    fig = Figure(figsize=(max(6.0, 0.5 * len(points) + 2), 2.0 * len(config["activations"])))
    axes = fig.subplots(len(config["activations"]), 1, sharex=True, sharey=True, squeeze=False)[
        :, 0
    ]
    for ax, activation in zip(axes, config["activations"]):
        group = losses[losses["activation"] == activation]
        boxes = [group.loc[group["point"] == p, "loss"].to_numpy() for p in points]
        ax.boxplot([b[np.isfinite(b)] for b in boxes], showfliers=True)
        ax.set_yscale("log")
        for axis_ticks in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_ticks(FormatStrFormatter("%.3g"))  # plain numbers, not 5x10^1
        ax.set_ylabel(activation)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(1, len(points) + 1), points, rotation=60, fontsize="small")
    axes[0].set_title(f"Test loss of {config['instances']} instances per grid point")
    fig.tight_layout()
    fig.savefig(out / "activations.png", dpi=100)

    throughput = losses["epochs"].sum() / losses["seconds"].sum()
    winner = summary_frame["activation"][0]
    caveat = (
        "This is a smoke run: its numbers mean nothing."
        if config["scale"] == "smoke"
        else (
            "The nets here are smaller and see fewer examples and epochs than the paper's, "
            "and the data come from the fast simulation, so close activations can swap "
            "places."
        )
    )
    return f"""
{len(candidates)} models ({len(config["activations"])} activations x {len(config["lrs"])}
learning rates x {len(config["batch_sizes"])} batch sizes, Adam), {config["instances"]}
instances each, trained on {config["n_train"]} bootstrap examples of dataset
{config["dataset"]} ({config["task"]}), tested on {config["n_test"]}. Instance throughput:
{throughput:.2f} instance-epochs/s.

## Each activation at its best grid point (by median loss)

{markdown(summary_frame)}

![activations](activations.png)

## Compared with the paper

The paper picks ReLU for energy (best mean loss and smallest spread), with PReLU later
preferred for position. Here the lowest median loss at the best grid point belongs to
**{winner}**{
        " (ReLU, the same as the paper)" if winner == "ReLU" else " (not ReLU, unlike the paper)"
    }.
{caveat}
"""
