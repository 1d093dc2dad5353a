"""Every transfer strategy by name and by arm: the one place that lists them.

Its names are `core.vocabulary.TRANSFER_STRATEGIES` (a test keeps the two equal), so that the
config and the drivers can name strategies without importing TensorFlow.
"""

from __future__ import annotations

from tlkeras.core.config import StudyConfig
from tlkeras.strategies.base import Strategy
from tlkeras.strategies.fine_tuning import (
    L2SP,
    FreezeFirstLayers,
    L2SPExtrapolation,
    LinearProbeThenFineTune,
    WiseFineTune,
)
from tlkeras.strategies.multi_fidelity import MultiFidelity
from tlkeras.strategies.selection import WISE_FT_MIXES
from tlkeras.strategies.simple_model import Residual, SimpleModelFeature

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy(), L2SP(), L2SPExtrapolation(), LinearProbeThenFineTune(), WiseFineTune(), FreezeFirstLayers(),
    Residual(), SimpleModelFeature(), MultiFidelity())}
BY_ARM: dict[str, Strategy] = {s.arm: s for s in STRATEGIES.values()}


def chosen_settings(config: StudyConfig) -> dict[str, tuple[float, ...]]:
    """What this run's strategies choose per model (a record's field), with the values they choose
    from: TensorBoard's hparams columns beside arm, system, volume and seed."""
    chosen = {}
    if "l2_sp_extrapolation" in config.transfer_strategy:
        chosen["l2_sp_alpha"] = tuple(config.l2_sp_alphas)
    if "wise_ft" in config.transfer_strategy:
        chosen["wise_ft_mix"] = WISE_FT_MIXES
    return chosen


def strategy_of_arm(arm: str) -> Strategy | None:
    """The strategy an arm trains (None for pretrain, baseline and oracle)."""
    return BY_ARM.get(arm)


