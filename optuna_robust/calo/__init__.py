"""The calorimeter application: photon energy and position from a 15x15 ECAL cluster.

Needs the ``calo`` extra (torch, uproot, xgboost, matplotlib):
``pip install 'optuna-robust[calo]'``.
"""
