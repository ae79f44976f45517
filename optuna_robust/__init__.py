"""Robust model selection for Optuna."""
