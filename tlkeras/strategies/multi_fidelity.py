"""multi_fidelity: MfNN's high-fidelity network on the frozen pretrained one (Meng and Karniadakis 2020)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tlkeras.nn import models
from tlkeras.nn.engine import Regime
from tlkeras.nn.layers import outputs_to_network_units, to_network_units, to_user_units
from tlkeras.strategies.base import Strategy


class MultiFidelity(Strategy):
    """MfNN's high-fidelity part on the frozen pretrained network: y_H = linear([x, y_L]) +
    nonlinear([x, y_L]), trained as MfNN trains: full batch (one Adam step per epoch) for
    `multi_fidelity_iterations` steps, with lambda * ||W||^2 on the nonlinear branch's kernels
    only (the linear branch and the biases are free)."""

    name = "multi_fidelity"
    continues_pretraining = False
    epoch_unit = "full-batch steps"
    depth = 2  # the nonlinear branch's hidden layers (MfNN's 2 x 10)

    def network(self, config):
        core = config.network.in_network_units()
        return dataclasses.replace(core, num_inputs=core.num_inputs + core.num_outputs, depth=self.depth,
                                   linear_branch=True)

    def epochs(self, config):
        return config.multi_fidelity_iterations, 0

    def batch_size(self, config, size):
        return max(1, size)  # full batch

    def evaluation_interval(self, config):
        if config.evaluations == 0:
            return 0
        return max(1, -(-config.multi_fidelity_iterations // config.evaluations))

    def regime(self, config, members, anchor):
        if config.multi_fidelity_l2 == 0:
            return Regime.uniform(members, config.learning_rate)
        # alpha/2 * ||W - 0||^2 with alpha = 2 lambda: lambda * ||W||^2, as Keras' l2(lambda)
        kernels = frozenset(f"{name}/kernel" for name in [f"hidden_{i}" for i in range(self.depth)] + ["output"])
        return Regime([config.learning_rate] * members, anchor_alpha=[2.0 * config.multi_fidelity_l2] * members,
                      anchor=[np.zeros_like(a) for a in anchor], anchored_variables=kernels)

    def inputs(self, config, x, pretrained):
        low_fidelity = config.network.scale_outputs(
            np.asarray(pretrained(config.network.unscale_inputs(x).astype(np.float32), training=False)))
        return np.concatenate([x, low_fidelity], axis=-1).astype(np.float32)

    def starting_net(self, config, pretrained, init_seed, x, y):
        return models.build_mlp(self.network(config), seed=init_seed)

    def export(self, config, net, pretrained):
        """One plain Keras model: x -> the (frozen) pretrained model -> [x, y_L] -> branches."""
        spec = config.network
        pretrained.trainable = False
        x = keras.Input(shape=(spec.num_inputs,), name="x")
        low_fidelity = outputs_to_network_units(spec, pretrained(x))
        features = keras.layers.Concatenate(name="x_and_low_fidelity")([to_network_units(spec, x), low_fidelity])
        return keras.Model(x, to_user_units(spec, net(features)), name=net.name)
