"""How the simple model is used: the transfer strategies and their settings, as flags shared by
the experiment drivers and `tlkeras fit` (README: Transfer strategies).

Each flag is validated where it is defined, so a bad value is one line before any work.
"""

from __future__ import annotations

import math

from absl import flags

from tlkeras import config as study_config

FLOAT_SETTINGS = ("l2_sp_alpha", "l2_sp_holdout", "lp_ft_rate_factor", "multi_fidelity_l2")
INTEGER_SETTINGS = ("freeze_layers", "wise_ft_folds", "multi_fidelity_iterations")


def define_strategy_flags(strategies_default: tuple[str, ...], flag_values: flags.FlagValues = flags.FLAGS) -> None:
    defaults = study_config.StudyConfig()
    strategies = study_config.TRANSFER_STRATEGIES
    v = flag_values
    flags.DEFINE_list("strategies", list(strategies_default),
                      f"How the simple model is used, one arm (one ensemble in a fit) each, the first the "
                      f"default: {', '.join(strategies)}; fine_tune_all's arm is called transfer.", flag_values=v)
    flags.register_validator(
        "strategies", lambda raw: bool(raw) and set(raw) <= set(strategies) and len(set(raw)) == len(raw),
        message=f"--strategies takes distinct names from {', '.join(strategies)}, comma-separated", flag_values=v)
    flags.DEFINE_float("l2_sp_alpha", defaults.l2_sp_alpha, "l2_sp: weight alpha of alpha/2 ||w - w_pretrained||^2.",
                       lower_bound=0.0, flag_values=v)
    flags.DEFINE_list("l2_sp_alphas", [repr(a) for a in defaults.l2_sp_alphas],
                      "l2_sp_extrapolation: the alphas it chooses from, per model, by the MSE on the held-out "
                      "measured pairs nearest the unmeasured domain (--l2_sp_holdout).", flag_values=v)
    flags.register_validator("l2_sp_alphas", _nonnegative_numbers, flag_values=v,
                             message="--l2_sp_alphas takes finite numbers >= 0, comma-separated")
    flags.DEFINE_float("l2_sp_holdout", defaults.l2_sp_holdout,
                       "l2_sp_extrapolation: the share of the measured pairs held out to choose alpha, those "
                       "nearest the unmeasured part of the domain.", lower_bound=0.01, upper_bound=0.99,
                       flag_values=v)
    flags.DEFINE_enum("l2_sp_choice", defaults.l2_sp_choice, study_config.L2_SP_CHOICES,
                      "l2_sp_extrapolation: how alpha is chosen from the held-out MSEs: the largest alpha within "
                      "one standard error of the lowest, of their paired difference (paired_standard_error) or "
                      "of the lowest MSE (one_standard_error); or the lowest (lowest).", flag_values=v)
    flags.DEFINE_float("lp_ft_rate_factor", defaults.lp_ft_rate_factor,
                       "lp_ft: the fine-tuning learning rate is --learning_rate times this.", lower_bound=1e-12,
                       flag_values=v)
    flags.DEFINE_integer("freeze_layers", defaults.freeze_layers,
                         "freeze_k: hidden layers kept as pretrained, counted from the input.",
                         lower_bound=0, upper_bound=64, flag_values=v)
    flags.DEFINE_integer("wise_ft_folds", defaults.wise_ft_folds,
                         "wise_ft: k of the k-fold cross-validation that picks the mix.", lower_bound=2, upper_bound=100,
                         flag_values=v)
    flags.DEFINE_integer("multi_fidelity_iterations", defaults.multi_fidelity_iterations,
                         "multi_fidelity: full-batch Adam steps (MfNN's protocol).",
                         lower_bound=1, upper_bound=study_config.MAX_EPOCHS, flag_values=v)
    flags.DEFINE_float("multi_fidelity_l2", defaults.multi_fidelity_l2,
                       "multi_fidelity: lambda of lambda ||W||^2 on the nonlinear branch's kernels.", lower_bound=0.0,
                       flag_values=v)
    for name in FLOAT_SETTINGS:
        flags.register_validator(name, lambda value: value is None or math.isfinite(value), flag_values=v,
                                 message=f"--{name} takes a finite number (not nan or inf)")


def strategy_settings(values: flags.FlagValues) -> dict:
    """The StudyConfig fields these flags set."""
    return dict(transfer_strategy=tuple(values.strategies), l2_sp_alphas=tuple(float(a) for a in values.l2_sp_alphas),
                l2_sp_choice=values.l2_sp_choice, **{name: values[name].value for name in FLOAT_SETTINGS},
                **{name: values[name].value for name in INTEGER_SETTINGS})


def _nonnegative_numbers(raw) -> bool:
    try:
        numbers = [float(v) for v in raw]
    except (TypeError, ValueError):
        return False
    return bool(numbers) and all(math.isfinite(v) and v >= 0 for v in numbers)
