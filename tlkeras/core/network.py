"""The architecture of one member: a plain MLP's sizes, depth and activation, and the user's units.

Free of TensorFlow (numpy only): the config and the drivers use it before any worker starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NetworkSpec:
    """The architecture of one member: sizes, depth and activation of a plain MLP."""

    num_inputs: int = 2
    num_outputs: int = 2
    width: int = 10
    depth: int = 5
    activation: str = "relu"
    # The user's units: x_n = (x - input_offset) / input_scale goes in, y = y_n * output_scale +
    # output_offset comes out (Keras Normalization layers inside the saved model); empty: none.
    input_offset: tuple[float, ...] = ()
    input_scale: tuple[float, ...] = ()
    output_offset: tuple[float, ...] = ()
    output_scale: tuple[float, ...] = ()
    # A linear map of the inputs added to the output (the multi-fidelity network's linear branch).
    linear_branch: bool = False

    @property
    def normalised(self) -> bool:
        return bool(self.input_scale)

    def scale_inputs(self, x: np.ndarray) -> np.ndarray:
        """User units -> the network's units (identity without normalisation)."""
        if not self.normalised:
            return np.asarray(x, np.float32)
        return ((np.asarray(x, np.float64) - self.input_offset) / self.input_scale).astype(np.float32)

    def unscale_inputs(self, x: np.ndarray) -> np.ndarray:
        """The network's units -> user units (float64)."""
        if not self.normalised:
            return np.asarray(x, np.float64)
        return np.asarray(x, np.float64) * self.input_scale + self.input_offset

    def scale_outputs(self, y: np.ndarray) -> np.ndarray:
        if not self.normalised:
            return np.asarray(y, np.float32)
        return ((np.asarray(y, np.float64) - self.output_offset) / self.output_scale).astype(np.float32)

    def unscale_outputs(self, y: np.ndarray) -> np.ndarray:
        """The network's units -> user units."""
        if not self.normalised:
            return np.asarray(y)
        return np.asarray(y, np.float64) * self.output_scale + self.output_offset

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of every Dense layer, input to output (then the linear branch)."""
        sizes = [self.num_inputs] + [self.width] * self.depth + [self.num_outputs]
        layers = list(zip(sizes[:-1], sizes[1:]))
        return layers + [(self.num_inputs, self.num_outputs)] * self.linear_branch

    def layer_names(self) -> list[str]:
        """The Dense layers' names, in the order of `layer_sizes` (the same in plain and stacked
        models: weights are copied between them by name)."""
        return [f"hidden_{i}" for i in range(self.depth)] + ["output"] + ["linear"] * self.linear_branch

    def in_network_units(self) -> "NetworkSpec":
        """The same network without the user's units (what the stacked engine trains)."""
        return dataclasses.replace(self, input_offset=(), input_scale=(), output_offset=(), output_scale=())
