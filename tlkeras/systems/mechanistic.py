"""Mechanistic models of the biological system: x (activator concentrations, nM) -> y (outputs).

A lab's own system is a Python function named by reference (`user_systems`); `system_function`
gives either kind as numpy [n, d_in] -> [n, d_out].

All three built-in systems follow the study (`shared/seeds/000_*.txt`), generalised to d inputs and d outputs
(d = len(theta)):

- synthetic activation (the simple, known model g):
      y_i = eta_i * theta_i x_i / (1 + sum_j theta_j x_j)
- cooperative Hill of order n (a "real" model f; n = 1 is exactly the synthetic model):
      y_i = eta_i * (theta_i x_i)^n / (1 + sum_j (theta_j x_j)^n)
- phosphorylation cycle (a "real" model f):
      y_i = y_tot * theta_i x_i / sum_j theta_j x_j
  The ratio is 0/0 at x = 0. Convention: there, the protein is split evenly over the d states,
  y_i = y_tot / d. The outputs then always sum to y_tot, and the value is finite everywhere.

Every function takes numpy arrays or tf tensors of shape [..., d] and returns the same kind and
shape; inputs are concentrations, so they must be >= 0 (a fractional n of a negative number has
no real value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tlkeras.systems import user as user_systems

SYSTEM_KINDS = ("synthetic", "hill", "phosphorylation")


@dataclass(frozen=True)
class SystemParams:
    """Parameters shared by the systems (PROTOCOL.md defaults)."""

    eta: tuple[float, ...] = (20.0, 15.0)
    theta: tuple[float, ...] = (0.5, 0.3)
    y_tot: float = 20.0

    @property
    def dimension(self) -> int:
        return len(self.theta)


@dataclass(frozen=True)
class SystemSpec:
    """Which system: a kind and, for the Hill kind, its order n."""

    kind: str
    hill_n: float = 1.0

    @property
    def name(self) -> str:
        """A short stable name: 'synthetic', 'hill2', 'hill2.5', 'phosphorylation'."""
        if self.kind == "hill":
            return f"hill{self.hill_n:g}"
        return self.kind

    @staticmethod
    def parse(name: str) -> "SystemSpec":
        """The inverse of `name`: 'hill3' -> SystemSpec('hill', 3.0)."""
        text = name.strip().lower()
        if text in ("synthetic", "phosphorylation"):
            return SystemSpec(text)
        if text.startswith("hill"):
            try:
                order = float(text[4:])
            except ValueError:
                order = float("nan")
            if np.isfinite(order) and order > 0:
                return SystemSpec("hill", order)
            raise ValueError(f"system {name!r}: a Hill order must be a number > 0, as in 'hill2'")
        raise ValueError(
            f"unknown system {name!r}: allowed are 'synthetic', 'hill<n>' with n > 0, "
            "'phosphorylation'"
        )


def _is_tensor(x: Any) -> bool:
    # Checked by module name, so that numpy users (and flag parsing) never import TensorFlow.
    return type(x).__module__.startswith(("tensorflow", "tf_keras"))


def _ops(x: Any):
    """numpy for numpy input, tf for tensors: the few ops the formulas need."""
    if _is_tensor(x):
        import tensorflow as tf

        return tf.stack, tf.reduce_sum, tf.where, tf.ones_like
    return np.stack, np.sum, np.where, np.ones_like


def _as_array(x: Any):
    if _is_tensor(x):
        return x
    return np.asarray(x, dtype=np.float64 if np.asarray(x).dtype == np.float64 else np.float32)


def hill(x: Any, params: SystemParams, n: float) -> Any:
    """Cooperative Hill activation of order n; n = 1 is the synthetic model."""
    x = _as_array(x)
    stack, reduce_sum, _, _ = _ops(x)
    d = params.dimension
    activity = stack([(params.theta[i] * x[..., i]) ** n for i in range(d)], -1)
    denominator = 1.0 + reduce_sum(activity, -1)
    return stack([params.eta[i] * activity[..., i] / denominator for i in range(d)], -1)


def synthetic(x: Any, params: SystemParams) -> Any:
    """The simple, known activation model g (Hill of order 1, computed without a power)."""
    x = _as_array(x)
    stack, reduce_sum, _, _ = _ops(x)
    d = params.dimension
    activity = stack([params.theta[i] * x[..., i] for i in range(d)], -1)
    denominator = 1.0 + reduce_sum(activity, -1)
    return stack([params.eta[i] * activity[..., i] / denominator for i in range(d)], -1)


def phosphorylation(x: Any, params: SystemParams) -> Any:
    """The phosphorylation cycle; y_i = y_tot / d where every input is 0 (see module doc)."""
    x = _as_array(x)
    stack, reduce_sum, where, ones_like = _ops(x)
    d = params.dimension
    activity = stack([params.theta[i] * x[..., i] for i in range(d)], -1)
    denominator = reduce_sum(activity, -1)
    positive = denominator > 0
    safe = where(positive, denominator, ones_like(denominator))
    even = params.y_tot / d
    return stack(
        [where(positive, params.y_tot * activity[..., i] / safe, even * ones_like(safe)) for i in range(d)],
        -1,
    )


def system_name(name: str) -> str:
    """The short stable name of a built-in system or a user's function reference."""
    if user_systems.is_reference(name):
        return user_systems.short_name(name)
    return SystemSpec.parse(name).name


def system_function(name: str, params: SystemParams) -> Callable[[np.ndarray], np.ndarray]:
    """numpy [n, d_in] -> [n, d_out] for a built-in system name or a user's function reference
    (whose outputs are checked: shape and finiteness, see `user_systems.call`)."""
    if user_systems.is_reference(name):
        function = user_systems.load_function(name)
        return lambda x: user_systems.call(name, function, x)
    return make_system(SystemSpec.parse(name), params)


def make_system(spec: SystemSpec, params: SystemParams) -> Callable[[Any], Any]:
    """The function x -> y for `spec`."""
    if spec.kind == "synthetic":
        return lambda x: synthetic(x, params)
    if spec.kind == "hill":
        return lambda x: hill(x, params, spec.hill_n)
    if spec.kind == "phosphorylation":
        return lambda x: phosphorylation(x, params)
    raise ValueError(f"unknown system kind {spec.kind!r}: allowed are {', '.join(SYSTEM_KINDS)}")
