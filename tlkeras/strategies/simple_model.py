"""Strategies that use the simple model g itself, not a network pretrained on it (no pretraining)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.nn import models
from tlkeras.nn.layers import SimpleModelLayer, outputs_to_network_units, to_network_units, to_user_units
from tlkeras.strategies.base import Strategy
from tlkeras.systems.mechanistic import system_function


class UsesSimpleModel(Strategy):
    """A network trained from the seed's initialisation beside g itself (no pretraining); its
    saved model evaluates g inside Keras, so a plain-Keras copy of the network is saved too."""

    needs_pretraining = False
    continues_pretraining = False
    saves_plain_net = True

    @staticmethod
    def simple_model_layer(config: StudyConfig) -> "SimpleModelLayer":
        return SimpleModelLayer(config.reference(config.simple_name), dataclasses.asdict(config.system_params),
                                config.network.num_outputs, name="simple_model")


class Residual(UsesSimpleModel):
    name = "residual"

    def network(self, config):
        return config.network.in_network_units()

    def offset(self, config, x):
        return simple_model_in_network_units(config, x)

    def starting_net(self, config, pretrained, init_seed, x, y):
        net = models.build_mlp(self.network(config), seed=init_seed)  # the baseline's initial weights
        output = models.dense_layers(net)["output"]  # but a zero output: the prediction starts as g
        output.set_weights([np.zeros_like(w) for w in output.get_weights()])
        return net

    def export(self, config, net, pretrained):
        spec = config.network
        x = keras.Input(shape=(spec.num_inputs,), name="x")
        correction = net(to_network_units(spec, x))
        if spec.normalised:
            correction = keras.layers.Rescaling(scale=list(spec.output_scale), offset=0.0,
                                                name="correction_units")(correction)
        g = self.simple_model_layer(config)(x)
        return keras.Model(x, keras.layers.Add(name="g_plus_net")([g, correction]), name=net.name)


class SimpleModelFeature(UsesSimpleModel):
    name = "g_feature"

    def network(self, config):
        core = config.network.in_network_units()
        return dataclasses.replace(core, num_inputs=core.num_inputs + core.num_outputs)

    def inputs(self, config, x, pretrained):
        return np.concatenate([x, simple_model_in_network_units(config, x)], axis=-1).astype(np.float32)

    def starting_net(self, config, pretrained, init_seed, x, y):
        return models.build_mlp(self.network(config), seed=init_seed)

    def export(self, config, net, pretrained):
        spec = config.network
        x = keras.Input(shape=(spec.num_inputs,), name="x")
        g = self.simple_model_layer(config)(x)
        features = keras.layers.Concatenate(name="x_and_g")([to_network_units(spec, x),
                                                             outputs_to_network_units(spec, g)])
        return keras.Model(x, to_user_units(spec, net(features)), name=net.name)


# Helpers --------------------------------------------------------------------------------------
def simple_model_in_network_units(config: StudyConfig, x: np.ndarray) -> np.ndarray:
    """g at network-unit points x, in network units."""
    network = config.network
    g = system_function(config.reference(config.simple_name), config.system_params)
    return network.scale_outputs(np.asarray(g(network.unscale_inputs(x))))
