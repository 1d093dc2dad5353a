"""Every flag the drivers and `tlkeras fit` share, each validated where it is defined.

A bad value fails while the flags are parsed: one line naming the value and what is allowed,
exit status 2, before TensorFlow trains anything and before a run directory exists. The
validators here are the only ones: `experiments/exp*.py` and `tlkeras fit` both call these
`define_*` functions (each on its own `FlagValues`: the drivers on `absl.flags.FLAGS`, every
`tlkeras` command on a fresh one).

Free of TensorFlow: the drivers reach Ray (or fail, in one line) before TensorFlow loads.
"""

from __future__ import annotations

import math

from absl import flags

from tlkeras.core import config as study_config
from tlkeras.core import vocabulary

FlagValues = flags.FlagValues
# Where and how fast a run goes, never what it computes: left out of a run's flags.txt (a resume
# says them again), as are the flags that pick the run directory.
WHERE_TO_RUN = ("workers", "backend", "ray_address")
NOT_RECORDED = (*WHERE_TO_RUN, "resume", "run_dir")
MAX_SEED = 2**31 - 1
FLOAT_SETTINGS = ("l2_sp_alpha", "l2_sp_holdout", "lp_ft_rate_factor", "multi_fidelity_l2")
INTEGER_SETTINGS = ("freeze_layers", "wise_ft_folds", "multi_fidelity_iterations")


# Validators -------------------------------------------------------------------------------------
def numbers_rule(count: int | None = None, positive: bool = False, minimum: float | None = None):
    """(check, rule text) for a list flag of finite numbers."""

    def check(raw) -> bool:
        try:
            numbers = [float(v) for v in raw]
        except (TypeError, ValueError):
            return False
        if count is not None and len(numbers) != count:
            return False
        if not numbers or not all(math.isfinite(v) for v in numbers):
            return False
        if positive and not all(v > 0 for v in numbers):
            return False
        return minimum is None or all(v >= minimum for v in numbers)

    rule = (f"{count} " if count else "") + ("positive " if positive else "") + "finite numbers"
    if minimum is not None:
        rule += f" >= {minimum}"
    return check, rule


def require_numbers(name: str, v: FlagValues, count: int | None = None, positive: bool = False,
                    minimum: float | None = None, rule: str | None = None) -> None:
    check, default_rule = numbers_rule(count, positive, minimum)
    flags.register_validator(name, check, message=f"--{name} takes {rule or default_rule}, comma-separated",
                             flag_values=v)


def require_whole_numbers(name: str, v: FlagValues, low: int, high: int, unique: bool = True) -> None:
    def check(raw) -> bool:
        try:
            numbers = [int(x) for x in raw]
        except (TypeError, ValueError):
            return False
        if not numbers or not all(low <= x <= high for x in numbers):
            return False
        return not unique or len(set(numbers)) == len(numbers)

    flags.register_validator(
        name, check, flag_values=v,
        message=f"--{name} takes one or more distinct whole numbers from {low} to {high}, comma-separated")


def require_finite(name: str, v: FlagValues) -> None:
    flags.register_validator(name, lambda x: x is None or math.isfinite(x), flag_values=v,
                             message=f"--{name} takes a finite number (not nan or inf)")


def require_names(name: str, v: FlagValues, allowed: tuple[str, ...]) -> None:
    flags.register_validator(
        name, lambda raw: bool(raw) and set(raw) <= set(allowed) and len(set(raw)) == len(raw), flag_values=v,
        message=f"--{name} takes distinct names from {', '.join(allowed)}, comma-separated")


def require_distinct_positive(name: str, v: FlagValues, example: str) -> None:
    """A list flag of distinct numbers > 0 (Hill orders)."""

    def check(raw) -> bool:
        try:
            numbers = [float(x) for x in raw]
        except (TypeError, ValueError):
            return False
        return bool(numbers) and all(0 < x < math.inf for x in numbers) and len(set(numbers)) == len(numbers)

    flags.register_validator(name, check, flag_values=v,
                             message=f"--{name} takes distinct numbers > 0, comma-separated (for example {example})")


# The network and its training (drivers and fit) -------------------------------------------------
def define_training_flags(v: FlagValues, seeds_help: str, epochs_help: str) -> None:
    """Seeds, the network, Adam and the epochs: the same flags, bounds and messages everywhere."""
    d = study_config.StudyConfig()
    flags.DEFINE_list("seeds", [str(s) for s in d.seeds], seeds_help, flag_values=v)
    require_whole_numbers("seeds", v, 0, MAX_SEED)
    flags.DEFINE_integer("width", d.width, "Units per hidden layer.", lower_bound=1, upper_bound=4096, flag_values=v)
    flags.DEFINE_integer("depth", d.depth, "Hidden layers.", lower_bound=0, upper_bound=64, flag_values=v)
    flags.DEFINE_enum("activation", d.activation, list(vocabulary.ACTIVATIONS), "Hidden activation.", flag_values=v)
    flags.DEFINE_float("learning_rate", d.learning_rate, "Adam learning rate.", lower_bound=1e-12, flag_values=v)
    flags.DEFINE_integer("batch_size", d.batch_size, "Minibatch size.", lower_bound=1, upper_bound=65536,
                         flag_values=v)
    flags.DEFINE_integer("epochs", d.epochs, epochs_help, lower_bound=2, upper_bound=study_config.MAX_EPOCHS,
                         flag_values=v)
    flags.DEFINE_integer("pretrain_epochs", d.pretrain_epochs,
                         "Pretraining epochs of the transfer arm; must be < --epochs.",
                         lower_bound=1, upper_bound=study_config.MAX_EPOCHS, flag_values=v)
    flags.DEFINE_integer("pretrain_size", d.pretrain_size, "Synthetic pretraining pairs (points of g).",
                         lower_bound=1, upper_bound=study_config.MAX_SAMPLES, flag_values=v)
    flags.DEFINE_float("synthetic_noise", d.synthetic_noise,
                       "Sigma of the Gaussian noise on synthetic outputs (g's units).", lower_bound=0.0, flag_values=v)
    for name in ("learning_rate", "synthetic_noise"):
        require_finite(name, v)


def define_cache_flags(v: FlagValues, cache_dir_help: str) -> None:
    flags.DEFINE_boolean("cache", True, "Reuse pretrained models from --cache_dir when everything that "
                         "determines them is identical.", flag_values=v)
    flags.DEFINE_string("cache_dir", None, cache_dir_help, flag_values=v)


def training_settings(v: FlagValues) -> dict:
    """The StudyConfig fields `define_training_flags` sets."""
    return dict(seeds=tuple(int(s) for s in v.seeds), width=v.width, depth=v.depth, activation=v.activation,
                learning_rate=v.learning_rate, batch_size=v.batch_size, epochs=v.epochs,
                pretrain_epochs=v.pretrain_epochs, pretrain_size=v.pretrain_size, synthetic_noise=v.synthetic_noise)


def pretrain_epochs_problem(v: FlagValues) -> str | None:
    """The one-line problem with --pretrain_epochs against --epochs (after any preset), naming
    where each value came from (given, a preset, the default), or None."""
    if v.pretrain_epochs < v.epochs:
        return None

    def source(name: str) -> str:
        if v[name].present:
            return f"--{name}={v[name].value}"
        preset = v["preset"].value if "preset" in v else "full"
        if preset != "full":
            return f"--preset={preset}'s {name}={v[name].value}"
        return f"the default {name}={v[name].value}"

    return (f"{source('pretrain_epochs')} must be smaller than {source('epochs')}: the epochs count pretraining "
            f"and fine-tuning, and fine-tuning needs at least one (give --pretrain_epochs below {v.epochs}, or "
            "more --epochs)")


# Transfer strategies ---------------------------------------------------------------------------
def define_strategy_flags(strategies_default: tuple[str, ...], v: FlagValues) -> None:
    """How the simple model is used: the strategies and their settings (docs/strategies.md)."""
    defaults = study_config.StudyConfig()
    strategies = vocabulary.TRANSFER_STRATEGIES
    flags.DEFINE_list("strategies", list(strategies_default),
                      f"How the simple model is used, one arm (one ensemble in a fit) each, the first the "
                      f"default: {', '.join(strategies)}; fine_tune_all's arm is called "
                      f"{vocabulary.TRANSFER_ARM}.", flag_values=v)
    require_names("strategies", v, strategies)
    flags.DEFINE_float("l2_sp_alpha", defaults.l2_sp_alpha, "l2_sp: weight alpha of alpha/2 ||w - w_pretrained||^2.",
                       lower_bound=0.0, flag_values=v)
    flags.DEFINE_list("l2_sp_alphas", [repr(a) for a in defaults.l2_sp_alphas],
                      "l2_sp_extrapolation: the alphas it chooses from, per model, by the MSE on the held-out "
                      "measured pairs nearest the unmeasured domain (--l2_sp_holdout).", flag_values=v)
    require_numbers("l2_sp_alphas", v, minimum=0, rule="finite numbers >= 0")
    flags.DEFINE_float("l2_sp_holdout", defaults.l2_sp_holdout,
                       "l2_sp_extrapolation: the share of the measured pairs held out to choose alpha, those "
                       "nearest the unmeasured part of the domain.", lower_bound=0.01, upper_bound=0.99,
                       flag_values=v)
    flags.DEFINE_enum("l2_sp_choice", defaults.l2_sp_choice, vocabulary.L2_SP_CHOICES,
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
                         "wise_ft: k of the k-fold cross-validation that picks the mix.", lower_bound=2,
                         upper_bound=100, flag_values=v)
    flags.DEFINE_integer("multi_fidelity_iterations", defaults.multi_fidelity_iterations,
                         "multi_fidelity: full-batch Adam steps (MfNN's protocol).",
                         lower_bound=1, upper_bound=study_config.MAX_EPOCHS, flag_values=v)
    flags.DEFINE_float("multi_fidelity_l2", defaults.multi_fidelity_l2,
                       "multi_fidelity: lambda of lambda ||W||^2 on the nonlinear branch's kernels.", lower_bound=0.0,
                       flag_values=v)
    for name in FLOAT_SETTINGS:
        require_finite(name, v)


def strategy_settings(v: FlagValues) -> dict:
    """The StudyConfig fields `define_strategy_flags` sets."""
    return dict(transfer_strategy=tuple(v.strategies), l2_sp_alphas=tuple(float(a) for a in v.l2_sp_alphas),
                l2_sp_choice=v.l2_sp_choice, **{name: v[name].value for name in FLOAT_SETTINGS},
                **{name: v[name].value for name in INTEGER_SETTINGS})


# Where stack jobs run --------------------------------------------------------------------------
def define_backend_flags(v: FlagValues) -> None:
    flags.DEFINE_integer("workers", 2, "Stacks trained at once (one per core); with --backend=ray and an "
                         "empty --ray_address, the CPUs of the local Ray.", lower_bound=1, upper_bound=64,
                         flag_values=v)
    flags.DEFINE_enum("backend", "local", ["local", "ray"], "Where stack jobs run: local worker processes, or "
                      "Ray tasks (one CPU each) on a Ray cluster; the results are the same.", flag_values=v)
    flags.DEFINE_string("ray_address", "", "With --backend=ray: 'auto' or host:port of a running cluster "
                        "(`ray start --head`), or empty to start a local Ray on this machine's cores.",
                        flag_values=v)


def connect_backend(backend: str, ray_address: str, workers: int) -> str | None:
    """With --backend=ray, reach (or start) Ray now; the one-line error if that fails, else None."""
    if backend != "ray":
        return f"--ray_address={ray_address} needs --backend=ray" if ray_address else None
    from tlkeras.execution import ray_backend  # Ray itself is imported inside `connect`

    try:
        ray_backend.connect(ray_address, workers)
    except ray_backend.BackendError as error:
        return str(error)
    return None


# The study protocol (the drivers) ---------------------------------------------------------------
PRESETS = {"full": {}, "quick": study_config.QUICK_PRESET}


def define_protocol_flags(v: FlagValues, volumes_default: list[str] | None,
                          strategies_default: tuple[str, ...] = (vocabulary.FINE_TUNE_ALL,)) -> None:
    """The protocol flags common to the experiments (defaults: PROTOCOL.md)."""
    defaults = study_config.StudyConfig()
    flags.DEFINE_enum("preset", "full", list(PRESETS),
                      "full: the study's protocol. quick: tiny sets, 40 epochs, 2 seeds (about a "
                      "minute); flags given explicitly win over the preset.", flag_values=v)
    flags.DEFINE_list("eta", [str(x) for x in defaults.eta], "Maximal expression eta_i per output.", flag_values=v)
    require_numbers("eta", v, positive=True)
    flags.DEFINE_list("theta", [str(x) for x in defaults.theta], "Affinity theta_i per input (1/nM).", flag_values=v)
    require_numbers("theta", v, positive=True)
    flags.DEFINE_float("y_tot", defaults.y_tot, "Total protein of the phosphorylation cycle.", lower_bound=1e-12,
                       flag_values=v)
    flags.DEFINE_string("simple_system", defaults.simple_system,
                        "The known simple model g for pretraining: synthetic, hill<n>, phosphorylation, or "
                        "your own numpy function [n, inputs] -> [n, outputs] as path/to/file.py:g or module:g.",
                        flag_values=v)
    flags.DEFINE_integer("num_inputs", 0, "Inputs of your own systems (file.py:f references); 0: one per "
                         "--theta value.", lower_bound=0, upper_bound=study_config.MAX_DIMENSION, flag_values=v)
    flags.DEFINE_list("big_domain", [str(x) for x in defaults.big_domain],
                      "low,high of every input (nM): pretraining, oracle and evaluation.", flag_values=v)
    require_numbers("big_domain", v)
    flags.DEFINE_list("small_domain", [str(x) for x in defaults.small_domain],
                      "low,high of every input (nM) for the real fine-tuning data.", flag_values=v)
    require_numbers("small_domain", v)
    flags.DEFINE_float("real_noise", defaults.real_noise, "Sigma of the Gaussian noise on real outputs.",
                       lower_bound=0.0, flag_values=v)
    flags.DEFINE_integer("oracle_size", defaults.oracle_size, "Real big-domain pairs of the oracle.",
                         lower_bound=1, upper_bound=study_config.MAX_SAMPLES, flag_values=v)
    if volumes_default is not None:
        flags.DEFINE_list("volumes", volumes_default, "Real small-domain volumes N to sweep.", flag_values=v)
        require_whole_numbers("volumes", v, 1, study_config.MAX_SAMPLES)
    define_training_flags(v, seeds_help="Seeds (one independent model each per cell).",
                          epochs_help="Epochs of every arm (transfer: pretraining + fine-tuning).")
    flags.DEFINE_integer("real_data_seed", None, "Unset: each seed draws its own N real pairs (the seeds' "
                         "ensemble has seen seeds x N). A seed k: every seed trains on seed k's N real pairs, so the "
                         "seeds' ensemble is one on N pairs, as a lab's is.", lower_bound=0, upper_bound=MAX_SEED,
                         flag_values=v)
    flags.DEFINE_list("arms", list(defaults.arms), f"Arms to train: {', '.join(vocabulary.ARMS)}.", flag_values=v)
    require_names("arms", v, vocabulary.ARMS)
    define_strategy_flags(strategies_default, v)
    flags.DEFINE_integer("evaluations", defaults.evaluations,
                         "Evaluations of every model during its training (TensorBoard's eval curves); 0: at the end "
                         "only.", lower_bound=0, upper_bound=10_000, flag_values=v)
    flags.DEFINE_integer("eval_points", defaults.eval_points, "Evaluation points on the big domain.",
                         lower_bound=1, upper_bound=study_config.MAX_SAMPLES, flag_values=v)
    flags.DEFINE_integer("eval_seed", defaults.eval_seed, "Seed of the evaluation points.", lower_bound=0,
                         flag_values=v)
    for name in ("y_tot", "real_noise"):
        require_finite(name, v)
    # How and where to run.
    flags.DEFINE_string("logdir", None, "Root of the run directories (default: logs/ of the checkout, beside "
                        "experiments/).", flag_values=v)
    flags.DEFINE_boolean("resume", False, "Continue the latest run of this experiment (same flags).", flag_values=v)
    flags.DEFINE_string("run_dir", None, "Continue this run directory (same flags).", flag_values=v)
    define_backend_flags(v)
    flags.DEFINE_integer("max_members", 64, "Most members in one stack.", lower_bound=1, upper_bound=4096,
                         flag_values=v)
    define_cache_flags(v, "Pretraining cache (default: <logdir>/cache).")


def protocol_settings(v: FlagValues, systems: list[str], volumes: list[int]) -> dict:
    """The StudyConfig fields the protocol flags set, for these systems and volumes."""
    return dict(
        eta=tuple(float(x) for x in v.eta), theta=tuple(float(x) for x in v.theta), y_tot=v.y_tot,
        simple_system=v.simple_system, systems=tuple(systems),
        big_domain=tuple(float(x) for x in v.big_domain), small_domain=tuple(float(x) for x in v.small_domain),
        real_noise=v.real_noise, oracle_size=v.oracle_size, volumes=tuple(volumes),
        real_data_seed=v.real_data_seed, arms=tuple(a for a in vocabulary.ARMS if a in v.arms),
        eval_points=v.eval_points, eval_seed=v.eval_seed, num_inputs=v.num_inputs, evaluations=v.evaluations,
        **training_settings(v), **strategy_settings(v))


def recorded_flags(v: FlagValues, names) -> str:
    """A run's flags as a --flagfile: every flag that determines its results (where it ran, and
    which run directory it continues, left out)."""
    return "".join(v[name].serialize() + "\n" for name in sorted(names)
                   if name not in NOT_RECORDED and v[name].serialize())
