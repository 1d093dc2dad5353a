"""Networks: the plain functional MLP and its stacked form (K independent members in one model).

The stack always works in the network's units; a normalised spec (see `NetworkSpec`) puts the
user's units on the exported plain model. A 5x10 MLP is far too small to keep a CPU busy, so the toolkit trains many independent members
at once. `StackedDense` holds kernels of shape (members, in, out) and applies them with one
einsum; a stacked model maps inputs of shape [batch, members, in] to [batch, members, out], and
member k only ever touches slice k of every weight. `export_member` copies one slice into a plain
`build_mlp` model, which loads with `keras.saving.load_model` and no custom objects.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from tlkeras.core.network import NetworkSpec

__all__ = ["NetworkSpec", "StackedDense", "StartingWeights", "build_mlp", "build_stack", "export_member",
           "initial_weights", "load_members"]


def _layer_seed(seed: int, layer_index: int) -> int:
    # One independent Glorot stream per (member seed, layer); kept below 2**31 for Keras.
    return int(np.random.SeedSequence([seed, layer_index, 0x7E4A5]).generate_state(1)[0] >> 1)


def build_mlp(spec: NetworkSpec, seed: int, name: str = "mlp") -> keras.Model:
    """A plain Keras functional MLP: Glorot-uniform kernels from `seed`, zero biases.

    With a normalised spec, the model takes and returns the user's units: a Rescaling layer maps
    the inputs to the network's units, another maps its outputs back (Keras' own layer, exact at
    any scale, unlike Normalization's variance with its 1e-7 floor; `keras.saving.load_model`
    loads it without custom objects). The Dense layers are the same either way.
    """
    inputs = keras.Input(shape=(spec.num_inputs,), name="x")
    hidden = inputs
    if spec.normalised:
        hidden = keras.layers.Rescaling(
            scale=[1.0 / s for s in spec.input_scale],
            offset=[-m / s for m, s in zip(spec.input_offset, spec.input_scale)], name="input_units",
        )(hidden)
    network_inputs = hidden
    for index, layer_name in enumerate(spec.layer_names()):
        dense = keras.layers.Dense(
            spec.layer_sizes()[index][1],
            activation=spec.activation if layer_name.startswith("hidden") else None,
            kernel_initializer=keras.initializers.GlorotUniform(seed=_layer_seed(seed, index)),
            bias_initializer="zeros",
            name=layer_name,
        )
        if layer_name == "linear":
            hidden = keras.layers.Add(name="branches")([hidden, dense(network_inputs)])
        else:
            hidden = dense(hidden)
    if spec.normalised:
        hidden = keras.layers.Rescaling(
            scale=list(spec.output_scale), offset=list(spec.output_offset), name="output_units"
        )(hidden)
    return keras.Model(inputs, hidden, name=name)


class StartingWeights:
    """A member's starting weights as `build_mlp` would initialise them, without building the
    Keras model (about 25 ms each, most of a small member's overhead): what `load_members` reads.
    `layers`: Dense layer name -> [kernel, bias]."""

    def __init__(self, layers: dict[str, list[np.ndarray]]):
        self.layers = layers


def initial_weights(spec: NetworkSpec, seed: int) -> StartingWeights:
    """The weights `build_mlp(spec, seed)` starts with, bit for bit: the same seeded Glorot
    initializer per layer (a seeded Keras initializer returns the same values on every call)."""
    layers = {}
    for index, (name, (fan_in, fan_out)) in enumerate(zip(spec.layer_names(), spec.layer_sizes())):
        kernel = keras.initializers.GlorotUniform(seed=_layer_seed(seed, index))((fan_in, fan_out))
        layers[name] = [np.asarray(kernel, np.float32), np.zeros(fan_out, np.float32)]
    return StartingWeights(layers)


@keras.saving.register_keras_serializable(package="tlkeras")
class StackedDense(keras.layers.Layer):
    """`members` independent Dense layers applied at once: [batch, members, in] -> [..., out]."""

    def __init__(self, members: int, units: int, activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)
        self.units = int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(self.members, fan_in, self.units), initializer="zeros"
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.members, self.units), initializer="zeros"
        )

    def call(self, inputs):
        outputs = keras.ops.einsum("bki,kio->bko", inputs, self.kernel) + self.bias
        return self.activation(outputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            members=self.members,
            units=self.units,
            activation=keras.activations.serialize(self.activation),
        )
        return config


def build_stack(spec: NetworkSpec, members: int, name: str = "stack") -> keras.Model:
    """A functional model of `members` stacked MLPs; weights start at zero (see `load_members`)."""
    inputs = keras.Input(shape=(members, spec.num_inputs), name="x")
    hidden = inputs
    for (_, fan_out), layer_name in zip(spec.layer_sizes(), spec.layer_names()):
        dense = StackedDense(members, fan_out, activation=spec.activation if layer_name.startswith("hidden")
                             else None, name=layer_name)
        if layer_name == "linear":
            hidden = keras.layers.Add(name="branches")([hidden, dense(inputs)])
        else:
            hidden = dense(hidden)
    return keras.Model(inputs, hidden, name=name)


def load_members(stack: keras.Model, members: Sequence[keras.Model | StartingWeights]) -> None:
    """Copy plain MLPs (or their starting weights) into the member slots of `stack`, slot k from
    members[k] (layers matched by name)."""
    stacked_layers = _stacked_layers(stack)
    if len(members) != stacked_layers[0].members:
        raise ValueError(
            f"stack has {stacked_layers[0].members} member slots, got {len(members)} models"
        )
    dense = [member.layers if isinstance(member, StartingWeights) else
             {name: layer.get_weights() for name, layer in dense_layers(member).items()} for member in members]
    for stacked in stacked_layers:
        kernels, biases = zip(*(layers[stacked.name] for layers in dense))
        stacked.set_weights([np.stack(kernels), np.stack(biases)])


def export_member(stack: keras.Model, spec: NetworkSpec, index: int, name: str = "mlp",
                  reuse: bool = False) -> keras.Model:
    """Member `index` of `stack` as a plain `build_mlp` model with identical weights. With
    `reuse`, one model per spec and process is renamed and refilled on every call (building one
    costs about 25 ms): the caller is done with the previous member's model before it asks for
    the next."""
    model = _export_template(spec) if reuse else build_mlp(spec, seed=0, name=name)
    model.name = name
    dense = dense_layers(model)
    for stacked in _stacked_layers(stack):
        kernel, bias = stacked.get_weights()
        dense[stacked.name].set_weights([kernel[index], bias[index]])
    return model


_TEMPLATES: dict[NetworkSpec, keras.Model] = {}


def _export_template(spec: NetworkSpec) -> keras.Model:
    if spec not in _TEMPLATES:
        _TEMPLATES[spec] = build_mlp(spec, seed=0)
    return _TEMPLATES[spec]


def dense_layers(model: keras.Model) -> dict[str, keras.layers.Dense]:
    """The Dense layers of a plain model by name ('hidden_0', ..., 'output', 'linear')."""
    return {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.Dense)}


def _stacked_layers(stack: keras.Model) -> list[StackedDense]:
    return [layer for layer in stack.layers if isinstance(layer, StackedDense)]
