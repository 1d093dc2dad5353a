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

from tlkeras.systems import SystemParams, SystemSpec

ARMS = ("transfer", "baseline", "oracle")
TRANSFER_STRATEGIES = ("fine_tune_all",)  # implemented in training.TRANSFER_STRATEGIES
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "softplus", "swish", "linear")
MAX_SAMPLES = 10_000_000  # per set and member; beyond this a run would not fit in memory anyway
MAX_EPOCHS = 1_000_000


@dataclass(frozen=True)
class NetworkSpec:
    """The architecture of one member: sizes, depth and activation of a plain MLP."""

    num_inputs: int = 2
    num_outputs: int = 2
    width: int = 10
    depth: int = 5
    activation: str = "relu"

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of every Dense layer, input to output."""
        sizes = [self.num_inputs] + [self.width] * self.depth + [self.num_outputs]
        return list(zip(sizes[:-1], sizes[1:]))


class ConfigError(ValueError):
    """A protocol value out of range; the message is one line naming the value and the rule."""


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
    arms: tuple[str, ...] = ARMS
    # Network and training.
    width: int = 10
    depth: int = 5
    activation: str = "relu"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 2000
    pretrain_epochs: int = 1800
    transfer_strategy: str = "fine_tune_all"
    # Evaluation.
    eval_points: int = 100
    eval_seed: int = 20_240_611

    # Derived views -------------------------------------------------------------------------
    @property
    def system_params(self) -> SystemParams:
        return SystemParams(eta=tuple(self.eta), theta=tuple(self.theta), y_tot=self.y_tot)

    @property
    def network(self) -> NetworkSpec:
        d = len(self.theta)
        return NetworkSpec(d, d, self.width, self.depth, self.activation)

    @property
    def finetune_epochs(self) -> int:
        return self.epochs - self.pretrain_epochs

    def system_specs(self) -> list[SystemSpec]:
        return [SystemSpec.parse(name) for name in self.systems]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "StudyConfig":
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(StudyConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"config: unknown fields {unknown}; allowed are {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
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
        for name in ("big_domain", "small_domain"):
            low, high = _pair(name, getattr(self, name))
            _require(low >= 0, name, getattr(self, name), "concentrations >= 0 (low >= 0)")
            _require(low < high, name, getattr(self, name), "low < high (an interval, not inverted)")
        _require(
            self.big_domain[0] <= self.small_domain[0] and self.small_domain[1] <= self.big_domain[1],
            "small_domain", self.small_domain, f"an interval inside big_domain {self.big_domain}",
        )
        _require(self.small_domain != self.big_domain, "small_domain", self.small_domain,
                 "an interval strictly smaller than big_domain (else nothing is extrapolated)")
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
        _require(self.transfer_strategy in TRANSFER_STRATEGIES, "transfer_strategy", self.transfer_strategy,
                 f"one of {', '.join(TRANSFER_STRATEGIES)}")
        _require(self.activation in ACTIVATIONS, "activation", self.activation,
                 f"one of {', '.join(ACTIVATIONS)}")
        _nonempty_unique("volumes", self.volumes)
        for volume in self.volumes:
            _integer("volumes", volume, 1, MAX_SAMPLES)
        _nonempty_unique("seeds", self.seeds)
        for seed in self.seeds:
            _integer("seeds", seed, 0, 2**31 - 1)
        _nonempty_unique("arms", self.arms)
        for arm in self.arms:
            _require(arm in ARMS, "arms", arm, f"one of {', '.join(ARMS)}")
        _nonempty_unique("systems", self.systems)
        for field_name, name in [("simple_system", self.simple_system), *(("systems", n) for n in self.systems)]:
            try:
                SystemSpec.parse(name)
            except ValueError as error:
                raise ConfigError(f"{field_name}={name!r} is not allowed: {error}") from None
        names = [SystemSpec.parse(s).name for s in self.systems]
        _require(len(set(names)) == len(names), "systems", self.systems, "each system once")
        return self


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
