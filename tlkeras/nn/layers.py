"""Keras layers a saved model may hold besides Dense: the simple model g (`SimpleModelLayer`,
registered for loading), and the rescalings between the user's units and the network's."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tlkeras.core.network import NetworkSpec
from tlkeras.systems.mechanistic import SystemParams, system_function


def to_network_units(spec: NetworkSpec, x):
    if not spec.normalised:
        return x
    return keras.layers.Rescaling(scale=[1.0 / s for s in spec.input_scale],
                                  offset=[-m / s for m, s in zip(spec.input_offset, spec.input_scale)])(x)


def outputs_to_network_units(spec: NetworkSpec, y):
    if not spec.normalised:
        return y
    return keras.layers.Rescaling(scale=[1.0 / s for s in spec.output_scale],
                                  offset=[-m / s for m, s in zip(spec.output_offset, spec.output_scale)])(y)


def to_user_units(spec: NetworkSpec, y):
    if not spec.normalised:
        return y
    return keras.layers.Rescaling(scale=list(spec.output_scale), offset=list(spec.output_offset))(y)


@keras.saving.register_keras_serializable(package="tlkeras")
class SimpleModelLayer(keras.layers.Layer):
    """The simple model g inside a Keras model (user units in and out), by its reference: a
    built-in name, or a user's `file.py:g` / `module:g` (loaded when the model is)."""

    def __init__(self, reference: str, params: dict, num_outputs: int, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.reference = reference
        self.params = dict(params)
        self.num_outputs = int(num_outputs)
        self._function = system_function(reference, SystemParams(**{k: tuple(v) if isinstance(v, list) else v
                                                                     for k, v in self.params.items()}))

    def call(self, x):
        def evaluate(points):
            return np.asarray(self._function(np.asarray(points, np.float64)), np.float32)

        y = tf.numpy_function(evaluate, [tf.cast(x, tf.float32)], tf.float32, stateful=False)
        return tf.reshape(y, [-1, self.num_outputs])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs)

    def get_config(self):
        config = super().get_config()
        config.update(reference=self.reference, params=self.params, num_outputs=self.num_outputs)
        return config
