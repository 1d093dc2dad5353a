"""The names every layer shares: arms, transfer strategies, activations, how alpha is chosen.

Defined once, here, free of TensorFlow: the config and the drivers validate names before any
worker starts; `strategies.registry` implements exactly `TRANSFER_STRATEGIES` (a test keeps the
two equal).
"""

from __future__ import annotations

PRETRAIN = "pretrain"  # the pretraining members (on the simple model g's synthetic data)
TRANSFER_ARM = "transfer"  # fine_tune_all's arm, as the study and earlier runs name it
BASELINE = "baseline"  # the real pairs only, from scratch
ORACLE = "oracle"  # plenty of real big-domain pairs, from scratch
ARMS = (TRANSFER_ARM, BASELINE, ORACLE)  # what --arms takes: the transfer arm means every strategy
FINE_TUNE_ALL = "fine_tune_all"
TRANSFER_STRATEGIES = (FINE_TUNE_ALL, "l2_sp", "l2_sp_extrapolation", "lp_ft", "wise_ft", "freeze_k", "residual",
                       "g_feature", "multi_fidelity")
WITHOUT_PRETRAINING = ("residual", "g_feature")  # strategies that use g itself, not a pretrained network
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "softplus", "swish", "linear")
# How l2_sp_extrapolation picks alpha from the held-out MSEs (selection.HeldOutAlphas.chosen).
L2_SP_CHOICES = ("paired_standard_error", "one_standard_error", "lowest")


def arm_of_strategy(strategy: str) -> str:
    """The arm a strategy trains: its own name, but `transfer` for fine_tune_all."""
    return TRANSFER_ARM if strategy == FINE_TUNE_ALL else strategy
