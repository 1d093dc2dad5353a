"""The study protocol as one frozen dataclass (defaults: shared/PROTOCOL.md), and its validation.

Nothing here is global: drivers build a `StudyConfig` from flags, library code takes it as an
argument. `validate` turns every bad value into a `ConfigError` whose one-line message names the
field, the value and what is allowed, so a run fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlkeras.core.errors import ConfigError
from tlkeras.core.network import NetworkSpec
from tlkeras.core.vocabulary import (
    ACTIVATIONS,
    ARMS,
    L2_SP_CHOICES,
    TRANSFER_ARM,
    TRANSFER_STRATEGIES,
    WITHOUT_PRETRAINING,
    arm_of_strategy,
)
from tlkeras.systems import design_sets as design
from tlkeras.systems import user as user_systems
from tlkeras.systems.domains import Domain
from tlkeras.systems.measurements import FOLD_KINDS, MEASURED  # MEASURED: the one "system" of a fit (a CSV)
from tlkeras.systems.mechanistic import SystemParams, SystemSpec, system_name

MAX_DIMENSION = 1024
MAX_SAMPLES = 10_000_000  # per set and member; beyond this a run would not fit in memory anyway
MAX_EPOCHS = 1_000_000
# Fields added after runs were recorded with other behaviour: what a config.json without the field
# meant (runs before l2_sp_choice chose the lowest MSE). Other missing fields take their defaults.
RECORDED_BEFORE = {"l2_sp_choice": "lowest"}


@dataclass(frozen=True)
class StudyConfig:
    """Every protocol default the study left open, as fields (PROTOCOL.md)."""

    # Systems.
    eta: tuple[float, ...] = (20.0, 15.0)
    theta: tuple[float, ...] = (0.5, 0.3)
    y_tot: float = 20.0
    simple_system: str = "synthetic"  # the known model g that generates the pretraining data
    systems: tuple[str, ...] = ("hill2",)  # the "real" systems f to learn
    # Domains, noise, volumes.
    big_domain: tuple[float, float] = (0.0, 20.0)
    small_domain: tuple[float, float] = (0.0, 10.0)
    real_noise: float = 1.0
    synthetic_noise: float = 0.0
    pretrain_size: int = 40_000
    oracle_size: int = 20_000
    volumes: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000, 5000)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    # None: every seed draws its own N real pairs (the seeds' ensemble has then seen seeds x N
    # distinct pairs); a seed k: every seed trains on seed k's N pairs (an ensemble on one data set,
    # as a lab has one; the seeds then differ in their starts, synthetic sets and orders only).
    real_data_seed: int | None = None
    arms: tuple[str, ...] = ARMS
    # Network and training.
    width: int = 10
    depth: int = 5
    activation: str = "relu"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 2000
    pretrain_epochs: int = 1800
    # How the simple model is used: one arm per strategy (fine_tune_all's arm is "transfer").
    transfer_strategy: tuple[str, ...] = ("fine_tune_all",)
    l2_sp_alpha: float = 0.01  # l2_sp: weight of the pull towards the pretrained weights
    # l2_sp_extrapolation: the alphas it chooses from, by how well each extrapolates (selection.py)
    l2_sp_alphas: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
    l2_sp_holdout: float = 0.25  # ... held out: this share of the pairs, nearest the unmeasured domain
    l2_sp_choice: str = "paired_standard_error"  # ... and the rule that chooses (L2_SP_CHOICES)
    lp_ft_rate_factor: float = 0.1  # lp_ft: fine-tuning rate = learning_rate * this
    freeze_layers: int = 2  # freeze_k: hidden layers kept as pretrained, from the input
    wise_ft_folds: int = 5  # wise_ft: k of the cross-validation that picks the mix
    # multi_fidelity (MfNN's protocol): full-batch Adam steps, and lambda of the L2 penalty
    # lambda * ||W||^2 on the nonlinear branch's kernels (DeepXDE's regularization=["l2", lambda])
    multi_fidelity_iterations: int = 20_000
    multi_fidelity_l2: float = 0.01
    evaluations: int = 40  # evaluations over a model's `epochs` of training (TensorBoard curves)
    # Evaluation.
    eval_points: int = 100
    eval_seed: int = 20_240_611
    # A lab's own systems and measurements (`tlkeras fit`; the drivers' --system=file.py:f).
    num_inputs: int = 0  # 0: one per theta value (the built-in systems)
    num_outputs: int = 0  # 0: one per eta value
    simple_source: str = ""  # sha256 of the source of a user's simple model ("" for a built-in)
    system_sources: tuple[str, ...] = ()  # likewise, one per system
    measurements: str = ""  # a CSV of real measurements: then systems is (MEASURED,)
    measurement_inputs: tuple[str, ...] = ()  # its columns, in order
    measurement_outputs: tuple[str, ...] = ()
    measurements_sha256: str = ""
    folds: int = 0  # k of the k-fold cross-validation on the measurements (0: none)
    fold_kind: str = "random"  # how rows are dealt to folds: "random", or "blocked" (shells towards the unmeasured domain)
    # Experiment 4 (where to measure next). A round trains its labs' `design_sets` (names
    # "<system>@<method>@r<replicate>", systems/design_sets.py), whose members predict at the lab's
    # candidates and targets for the next round's picks; the experiment's plan (config.json of an
    # exp4 run) names its methods and replicates and has no sets.
    design_sets: tuple[str, ...] = ()
    design_methods: tuple[str, ...] = ()
    design_replicates: int = 0
    design_region: str = "small"  # where the labs measure: the small or the big domain
    design_candidates: int = 0  # points a lab picks from (uniform in the region, fresh each round)
    design_targets: int = 0  # points of the big domain the model should improve on
    # Rounds after the last in which only the model-free reference methods (uniform,
    # space_filling) go on, transfer arms only: the N they need to match the others' last L1.
    design_reference_volumes: tuple[int, ...] = ()
    # Normalisation inside the models (see NetworkSpec); empty: the study's plain MLPs.
    input_offset: tuple[float, ...] = ()
    input_scale: tuple[float, ...] = ()
    output_offset: tuple[float, ...] = ()
    output_scale: tuple[float, ...] = ()

    # Derived views -------------------------------------------------------------------------
    @property
    def system_params(self) -> SystemParams:
        return SystemParams(eta=tuple(self.eta), theta=tuple(self.theta), y_tot=self.y_tot)

    @property
    def input_dimension(self) -> int:
        return self.num_inputs or len(self.theta)

    @property
    def output_dimension(self) -> int:
        return self.num_outputs or len(self.eta)

    @property
    def network(self) -> NetworkSpec:
        return NetworkSpec(self.input_dimension, self.output_dimension, self.width, self.depth,
                           self.activation, tuple(self.input_offset), tuple(self.input_scale),
                           tuple(self.output_offset), tuple(self.output_scale))

    @property
    def big_box(self) -> Domain:
        return Domain.from_values(self.big_domain, self.input_dimension)

    @property
    def small_box(self) -> Domain:
        return Domain.from_values(self.small_domain, self.input_dimension)

    @property
    def simple_name(self) -> str:
        return system_name(self.simple_system)

    def reference(self, name: str) -> str:
        """The system (built-in name or user reference) whose short name is `name` (for a design
        set, the system it measures)."""
        name = design.base_system(name)
        for reference in (self.simple_system, *self.systems):
            if reference == name or (reference != MEASURED and system_name(reference) == name):
                return reference
        raise KeyError(name)

    def system_names(self) -> list[str]:
        """Short names of the real systems ('hill2', 'f_model.f', 'measurements')."""
        return [MEASURED if s == MEASURED else system_name(s) for s in self.systems]

    @property
    def uses_references(self) -> bool:
        return any(user_systems.is_reference(s) for s in (self.simple_system, *self.systems))

    def strategy_arms(self) -> list[str]:
        """The arms of the transfer strategies this run trains (none without the transfer arm)."""
        if TRANSFER_ARM not in self.arms:
            return []
        return [arm_of_strategy(s) for s in self.transfer_strategy]

    def trained_arms(self) -> list[str]:
        """Every arm of the run but pretraining: the strategies', then baseline and oracle."""
        return self.strategy_arms() + [a for a in ("baseline", "oracle") if a in self.arms]

    @property
    def needs_pretraining(self) -> bool:
        """Whether a strategy of this run starts from a pretrained network (not residual and
        g_feature: they use g itself)."""
        return any(a not in WITHOUT_PRETRAINING for a in self.strategy_arms())

    @property
    def evaluation_interval(self) -> int:
        """Epochs between evaluations inside training (0: at the end only): `evaluations` over a
        model's whole training of `epochs` (a transfer model: pretraining, then fine-tuning, on
        one axis), the same interval for every job."""
        return 0 if self.evaluations == 0 else max(1, -(-self.epochs // self.evaluations))

    @property
    def finetune_epochs(self) -> int:
        return self.epochs - self.pretrain_epochs

    def system_specs(self) -> list[SystemSpec]:
        """The built-in systems (user references and measurements have no spec)."""
        return [SystemSpec.parse(name) for name in self.systems
                if name != MEASURED and not user_systems.is_reference(name)]

    @property
    def design_box(self) -> Domain:
        """Where Experiment 4's labs measure (`design_region`)."""
        return self.big_box if self.design_region == "big" else self.small_box

    def design_pool(self, replicate: int, volume: int) -> np.ndarray:
        """The points a lab's members predict at after training on `volume` pairs: the lab's
        candidates for its next picks, then its targets [candidates + targets, d]."""
        d = self.input_dimension
        candidates = design.pool_points(*self.design_box.bounds(d), self.design_candidates, f"candidates/n{volume}",
                                        replicate)
        targets = design.pool_points(*self.big_box.bounds(d), self.design_targets, "targets", replicate)
        return np.concatenate([candidates, targets])

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def real_pairs_seed(self, seed: int) -> int:
        """The seed whose real small-domain pairs a member of `seed` trains on."""
        return seed if self.real_data_seed is None else self.real_data_seed

    @staticmethod
    def from_json(text: str) -> "StudyConfig":
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(StudyConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"config: unknown fields {unknown}; allowed are {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        if isinstance(values.get("transfer_strategy"), str):  # runs before strategies were a list
            values["transfer_strategy"] = (values["transfer_strategy"],)
        values = {**RECORDED_BEFORE, **values}
        return StudyConfig(**values).validate()

    # Validation ----------------------------------------------------------------------------
    def validate(self) -> "StudyConfig":
        """Return self if every field is in range; raise ConfigError naming the first bad one."""
        d = len(self.theta)
        _require(d >= 1, "theta", self.theta, "at least one value (one per input)")
        _require(len(self.eta) == d, "eta", self.eta, f"{d} values, one per output (as theta)")
        for name in ("eta", "theta"):
            for value in getattr(self, name):
                _finite(name, value, positive=True)
        _finite("y_tot", self.y_tot, positive=True)
        self._validate_systems()
        dimension = self.input_dimension
        for name in ("big_domain", "small_domain"):
            value = getattr(self, name)
            _require(isinstance(value, (tuple, list)) and len(value) in (2, 2 * dimension), name, value,
                     f"low,high for every input or {dimension} pairs low,high")
            for low, high in zip(value[0::2], value[1::2]):
                _finite(name, low)
                _finite(name, high)
                if not self.uses_references:
                    _require(low >= 0, name, value, "concentrations >= 0 (low >= 0)")
                if name == "small_domain" and self.measurements:  # the measured region: may be one level
                    _require(low <= high, name, value, "low <= high (not inverted)")
                else:
                    _require(low < high, name, value, "low < high (an interval, not inverted)")
        big_low, big_high = self.big_box.bounds(dimension)
        small_low, small_high = self.small_box.bounds(dimension)
        _require(bool(np.all(big_low <= small_low) and np.all(small_high <= big_high)),
                 "small_domain", self.small_domain, f"an interval inside big_domain {_show(self.big_domain)}")
        if not self.measurements:
            _require(bool(np.any(small_low > big_low) or np.any(small_high < big_high)), "small_domain",
                     self.small_domain, "an interval strictly smaller than big_domain (else nothing is extrapolated)")
        for name in ("real_noise", "synthetic_noise", "learning_rate"):
            _finite(name, getattr(self, name), positive=name == "learning_rate", allow_zero=True)
        for name in ("pretrain_size", "oracle_size", "eval_points"):
            _integer(name, getattr(self, name), 1, MAX_SAMPLES)
        _integer("batch_size", self.batch_size, 1, 65_536)
        _integer("width", self.width, 1, 4096)
        _integer("depth", self.depth, 0, 64)
        _integer("epochs", self.epochs, 1, MAX_EPOCHS)
        _integer("pretrain_epochs", self.pretrain_epochs, 1, MAX_EPOCHS)
        _require(self.pretrain_epochs < self.epochs, "pretrain_epochs", self.pretrain_epochs,
                 f"fewer than epochs ({self.epochs}), so that fine-tuning gets at least one epoch")
        _integer("eval_seed", self.eval_seed, 0, 2**63 - 1)
        self._validate_strategies()
        _require(self.activation in ACTIVATIONS, "activation", self.activation,
                 f"one of {', '.join(ACTIVATIONS)}")
        _nonempty_unique("volumes", self.volumes)
        for volume in self.volumes:
            _integer("volumes", volume, 1, MAX_SAMPLES)
        _nonempty_unique("seeds", self.seeds)
        for seed in self.seeds:
            _integer("seeds", seed, 0, 2**31 - 1)
        if self.real_data_seed is not None:
            _integer("real_data_seed", self.real_data_seed, 0, 2**31 - 1)
        _nonempty_unique("arms", self.arms)
        for arm in self.arms:
            _require(arm in ARMS, "arms", arm, f"one of {', '.join(ARMS)}")
        self._validate_measurements()
        self._validate_normalisation()
        self._validate_strategy_pairs()
        self._validate_design()
        return self

    def _validate_design(self) -> None:
        _require(self.design_region in ("small", "big"), "design_region", self.design_region, "small or big")
        for name in ("design_replicates", "design_candidates", "design_targets"):
            _integer(name, getattr(self, name), 0, MAX_SAMPLES)
        for name in self.design_methods:
            _require(isinstance(name, str) and name.isidentifier() and name != design.START, "design_methods", name,
                     "method names (identifiers)")
        for volume in self.design_reference_volumes:
            _integer("design_reference_volumes", volume, 1, MAX_SAMPLES)
        later = [max(self.volumes), *self.design_reference_volumes]
        _require(all(a < b for a, b in zip(later, later[1:])), "design_reference_volumes",
                 self.design_reference_volumes, f"rising volumes above the last of volumes ({max(self.volumes)})")
        if self.design_methods:
            _require(not self.measurements and "oracle" not in self.arms, "arms", self.arms,
                     "transfer and/or baseline in Experiment 4 (the oracle does not depend on where a lab measures)")
        if not self.design_sets:
            return
        _require(len(set(self.design_sets)) == len(self.design_sets), "design_sets", self.design_sets, "no duplicates")
        names = self.system_names()
        for name in self.design_sets:
            found = design.parse(name)
            _require(found is not None and found.system in names, "design_sets", name,
                     f"<system>@<method>@r<replicate> with a system of the run ({', '.join(names)})")
        _require(not self.measurements and "oracle" not in self.arms, "arms", self.arms,
                 "transfer and/or baseline with design sets (the oracle does not depend on them)")

    def _validate_strategies(self) -> None:
        _nonempty_unique("transfer_strategy", self.transfer_strategy)
        for name in self.transfer_strategy:
            _require(name in TRANSFER_STRATEGIES, "transfer_strategy", name, f"one of {', '.join(TRANSFER_STRATEGIES)}")
        _finite("l2_sp_alpha", self.l2_sp_alpha, allow_zero=True)
        _nonempty_unique("l2_sp_alphas", self.l2_sp_alphas)
        for alpha in self.l2_sp_alphas:
            _finite("l2_sp_alphas", alpha, allow_zero=True)
        _finite("l2_sp_holdout", self.l2_sp_holdout, positive=True)
        _require(self.l2_sp_holdout < 1, "l2_sp_holdout", self.l2_sp_holdout, "a share between 0 and 1")
        _require(self.l2_sp_choice in L2_SP_CHOICES, "l2_sp_choice", self.l2_sp_choice,
                 f"one of {', '.join(L2_SP_CHOICES)}")
        _finite("lp_ft_rate_factor", self.lp_ft_rate_factor, positive=True)
        _integer("freeze_layers", self.freeze_layers, 0, 64)
        _integer("wise_ft_folds", self.wise_ft_folds, 2, 100)
        _integer("multi_fidelity_iterations", self.multi_fidelity_iterations, 1, MAX_EPOCHS)
        _finite("multi_fidelity_l2", self.multi_fidelity_l2, allow_zero=True)
        _integer("evaluations", self.evaluations, 0, 10_000)
        if "freeze_k" in self.transfer_strategy:
            _require(self.freeze_layers <= self.depth, "freeze_layers", self.freeze_layers,
                     f"at most depth ({self.depth}) hidden layers")

    def _validate_strategy_pairs(self) -> None:
        """Enough real pairs in every training set for the strategies that hold some out (after
        volumes, folds and arms are known to be valid)."""
        if TRANSFER_ARM not in self.arms:
            return
        smallest, name, value = self._smallest_training_set()
        of = "" if name == "volumes" else f" (the smallest training set has {smallest} pairs)"
        if "wise_ft" in self.transfer_strategy:
            _require(smallest >= 2 * self.wise_ft_folds, name, value,
                     f"at least 2 x wise_ft_folds = {2 * self.wise_ft_folds} pairs for wise_ft's cross-validation{of}")
        if "l2_sp_extrapolation" in self.transfer_strategy:
            _require(round(smallest * self.l2_sp_holdout) >= 1 and round(smallest * (1 - self.l2_sp_holdout)) >= 1,
                     name, value, f"enough pairs for l2_sp_extrapolation to hold out {self.l2_sp_holdout} "
                     f"of them and train on the rest{of}")

    def _smallest_training_set(self) -> tuple[int, str, Any]:
        """The fewest real pairs a member trains on, and the field (and its value) that sets it:
        the smallest volume, or with measurements in k folds the rows less the largest fold."""
        if self.measurements and self.folds:
            rows = self.volumes[0]
            return rows - -(-rows // self.folds), "folds", self.folds
        return min(self.volumes), "volumes", min(self.volumes)

    def _validate_systems(self) -> None:
        _nonempty_unique("systems", self.systems)
        named = [("simple_system", self.simple_system)]
        if self.systems != (MEASURED,) or not self.measurements:
            named += [("systems", n) for n in self.systems]
        for field_name, name in named:
            try:
                system_name(name)
            except ValueError as error:
                raise ConfigError(f"{field_name}={name!r} is not allowed: {error}") from None
        names = self.system_names()
        _require(len(set(names)) == len(names), "systems", self.systems, "each system once")
        for reference, name in zip(self.systems, names):
            _require(name != self.simple_name or reference == self.simple_system, "systems", self.systems,
                     f"names other than the simple system's ({self.simple_name!r} is {self.simple_system!r}); "
                     "rename one of the files or functions")
        for name in ("num_inputs", "num_outputs"):
            _integer(name, getattr(self, name), 0, MAX_DIMENSION)
        builtin = [n for _, n in named if not user_systems.is_reference(n)]
        if builtin:  # the built-in systems have one input per theta and one output per eta
            for field_name, size, wanted in (("num_inputs", self.num_inputs, len(self.theta)),
                                             ("num_outputs", self.num_outputs, len(self.eta))):
                _require(size in (0, wanted), field_name, size,
                         f"{wanted} (or 0), as the built-in system {builtin[0]!r} has (one per "
                         f"{'theta' if field_name == 'num_inputs' else 'eta'} value)")
        elif self.uses_references or self.measurements:
            _require(self.num_inputs >= 1, "num_inputs", self.num_inputs, "at least 1 for a user's system")
            _require(self.num_outputs >= 1, "num_outputs", self.num_outputs, "at least 1 for a user's system")

    def _validate_measurements(self) -> None:
        if not self.measurements:
            _require(MEASURED not in self.systems, "systems", self.systems,
                     f"{MEASURED!r} only with a measurements file")
            _require(self.folds == 0, "folds", self.folds, "0 without a measurements file")
            return
        _require(self.systems == (MEASURED,), "systems", self.systems, f"({MEASURED!r},) with measurements")
        _require(set(self.arms) <= {TRANSFER_ARM, "baseline"}, "arms", self.arms,
                 "transfer and/or baseline with measurements (there is no real system for an oracle)")
        _require(len(self.volumes) == 1, "volumes", self.volumes, "one value (the rows of the measurements)")
        for name, columns, size in (("measurement_inputs", self.measurement_inputs, self.num_inputs),
                                    ("measurement_outputs", self.measurement_outputs, self.num_outputs)):
            _nonempty_unique(name, columns)
            _require(len(columns) == size, name, columns, f"{size} column names")
        _require(not set(self.measurement_inputs) & set(self.measurement_outputs), "measurement_outputs",
                 self.measurement_outputs, "columns that are not also inputs")
        _integer("folds", self.folds, 0, 100)
        _require(self.fold_kind in FOLD_KINDS, "fold_kind", self.fold_kind, " or ".join(FOLD_KINDS))
        _require(self.folds != 1, "folds", self.folds, "0 (none) or at least 2")
        _require(self.folds <= self.volumes[0], "folds", self.folds,
                 f"at most the number of measurements ({self.volumes[0]})")

    def _validate_normalisation(self) -> None:
        fields = (("input_offset", self.input_dimension), ("input_scale", self.input_dimension),
                  ("output_offset", self.output_dimension), ("output_scale", self.output_dimension))
        given = [bool(getattr(self, name)) for name, _ in fields]
        _require(all(given) or not any(given), "input_scale", self.input_scale,
                 "all four of input/output offset/scale, or none")
        if not any(given):
            return
        for name, size in fields:
            values = getattr(self, name)
            _require(len(values) == size, name, values, f"{size} numbers")
            for value in values:
                _finite(name, value, positive=name.endswith("scale"))


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={_show(value)} is not allowed: expected {allowed}")


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_show(v) for v in value)
    return repr(value) if isinstance(value, str) else f"{value}"


def _finite(name: str, value: Any, positive: bool = False, allow_zero: bool = False) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    _require(is_number and math.isfinite(value), name, value, "a finite number")
    if positive:
        _require(value > 0, name, value, "a number > 0")
    elif allow_zero:
        _require(value >= 0, name, value, "a number >= 0")


def _integer(name: str, value: Any, low: int, high: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    _require(ok, name, value, f"a whole number from {low} to {high}")


def _pair(name: str, value: Any) -> tuple[float, float]:
    _require(isinstance(value, (tuple, list)) and len(value) == 2, name, value, "two numbers low,high")
    for v in value:
        _finite(name, v)
    return float(value[0]), float(value[1])


def _nonempty_unique(name: str, values: Any) -> None:
    _require(isinstance(values, (tuple, list)) and len(values) > 0, name, values, "at least one value")
    _require(len(set(values)) == len(values), name, values, "no duplicates")


def experiment1(**overrides: Any) -> StudyConfig:
    """Experiment 1: the volume sweep on Hill n = 2."""
    return StudyConfig(**overrides)


def experiment2(**overrides: Any) -> StudyConfig:
    """Experiment 2: the system sweep at N = 1000."""
    values: dict[str, Any] = dict(
        systems=("hill1", "hill2", "hill3", "hill4", "phosphorylation"), volumes=(1000,)
    )
    values.update(overrides)
    return StudyConfig(**values)


QUICK_PRESET = dict(
    # About a minute end to end on 2 cores: every arm and figure, tiny volumes and epochs.
    pretrain_size=2000, oracle_size=1000, epochs=40, pretrain_epochs=36, seeds=(0, 1),
)
