"""Figures and optuna-dashboard attachments of robust selections; the core never imports this.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (save them with
``fig.savefig(...)``); the ``attach_*`` functions and :class:`TrialArtifactsCallback` put
notes, figures and instance records on studies and trials for optuna-dashboard.
"""

from __future__ import annotations

from optuna_robust.visualization._comparison import ComparisonArtifacts
from optuna_robust.visualization._comparison import attach_comparison
from optuna_robust.visualization._dashboard import SelectionArtifacts
from optuna_robust.visualization._dashboard import attach_selection
from optuna_robust.visualization._instance_losses import plot_instance_losses
from optuna_robust.visualization._loss_curves import plot_loss_curves
from optuna_robust.visualization._loss_vs_training_size import plot_loss_vs_training_size
from optuna_robust.visualization._robust_vs_tpe import plot_robust_vs_tpe
from optuna_robust.visualization._selection_funnel import plot_selection_funnel
from optuna_robust.visualization._trial import plot_trial
from optuna_robust.visualization._trial_artifacts import TrialArtifacts
from optuna_robust.visualization._trial_artifacts import TrialArtifactsCallback
from optuna_robust.visualization._trial_artifacts import attach_trial

__all__ = [
    "ComparisonArtifacts",
    "SelectionArtifacts",
    "TrialArtifacts",
    "TrialArtifactsCallback",
    "attach_comparison",
    "attach_selection",
    "attach_trial",
    "plot_instance_losses",
    "plot_loss_curves",
    "plot_loss_vs_training_size",
    "plot_robust_vs_tpe",
    "plot_selection_funnel",
    "plot_trial",
]
