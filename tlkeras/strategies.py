"""Transfer strategies: the ways a simple model g can help a network learn the real system f.

Each strategy says what its network is, what it trains on, where it starts and how it trains
(per member, as the stacked engine takes it: `engine.Regime`), and what model it saves. All
train in the network's units (see `NetworkSpec`); every saved model maps the user's inputs to
the user's outputs.

- fine_tune_all: the study's: start from the pretrained weights, train them all.
- l2_sp: fine-tune with alpha/2 * ||w - w_pretrained||^2 added to the loss (Li, Grandvalet and
  Davoine 2018, "Explicit inductive bias for transfer learning with convolutional networks").
- l2_sp_extrapolation: l2_sp with alpha chosen per model by how well each alpha's model predicts
  the held-out measured pairs nearest the unmeasured domain (blocked validation), by a
  one-standard-error rule that leans towards the simple model (`HeldOutAlphas.chosen`).
- lp_ft: linear probe, then fine-tune: the output layer is fitted first by least squares on
  the frozen pretrained features, then everything trains at a lower rate (Kumar et al. ICLR
  2022, "Fine-tuning can distort pretrained features and underperform out-of-distribution").
- wise_ft: the weights (1 - a) * pretrained + a * fine-tuned (Wortsman et al. CVPR 2022,
  "Robust fine-tuning of zero-shot models"), a picked by k-fold cross-validation on the real
  training pairs only; the curve over a = 0, 0.1, ..., 1 is recorded.
- freeze_k: the first k hidden layers keep their pretrained weights (surgical fine-tuning, Lee
  et al. ICLR 2023).
- residual: predict g(x) + net(x), the net trained on y - g(x) from a zero output (delta or
  hybrid modelling); no pretraining.
- g_feature: the network sees [x, g(x)] (physics-guided neural networks, Daw et al. 2017);
  no pretraining.
- multi_fidelity: the pretrained network's output y_L feeds, with x, a linear and a small
  nonlinear branch whose sum is the prediction (Meng and Karniadakis, J. Comput. Phys. 2020,
  "A composite neural network that learns from multi-fidelity data"), trained as their MfNN
  is: full batch, L2 on the nonlinear branch's kernels.

The saved model of residual and g_feature evaluates g inside Keras (`SimpleModelLayer`): it
loads through `tlkeras.load_model` (which registers the layer) but not through plain
`keras.saving.load_model`; for those two a `<name>.net.keras` beside it holds the network
alone, which plain Keras loads (its inputs and outputs are in the network's units).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tlkeras import models
from tlkeras.config import StudyConfig
from tlkeras.engine import Regime
from tlkeras.selection import WISE_FT_MIXES, cross_validated_mix, held_out_alphas
from tlkeras.systems import SystemParams, system_function

TRANSFER_ARM = "transfer"  # the arm of fine_tune_all, as the study and earlier runs name it


@dataclass
class Prepared:
    """One member ready to train: its starting network and its (network-unit) data."""

    net: keras.Model
    x: np.ndarray  # the network's inputs
    y: np.ndarray  # the network's targets
    offset: np.ndarray | None = None  # added to the network's output to predict (residual)


@dataclass(frozen=True)
class StackPlan:
    """What a strategy may choose from, for one stack of members, before or after they train:
    their starts and training pairs, their seeds and minibatch orders, and their epochs. Never
    the evaluation points."""

    prepared: Sequence[Prepared]
    seeds: Sequence[int]
    shuffle_seeds: Sequence[int]
    epochs: int
    first_epoch: int


class Strategy:
    """Fine-tuning every pretrained weight (the study's); subclasses change one thing each."""

    name = "fine_tune_all"
    needs_pretraining = True
    continues_pretraining = True  # trains `finetune_epochs` on from the pretrained weights
    saves_plain_net = False  # residual and g_feature: also a `.net.keras` plain Keras loads
    epoch_unit = "epochs"  # what `epochs` counts

    @property
    def arm(self) -> str:
        return TRANSFER_ARM if self.name == "fine_tune_all" else self.name

    def network(self, config: StudyConfig) -> models.NetworkSpec:
        """The trained network (with the user's units, as `build_mlp` exports it)."""
        return config.network

    def epochs(self, config: StudyConfig) -> tuple[int, int]:
        """(epochs, first epoch number)."""
        if self.continues_pretraining:
            return config.finetune_epochs, config.pretrain_epochs
        return config.epochs, 0

    def batch_size(self, config: StudyConfig, size: int) -> int:
        """The minibatch size for a training set of `size` pairs."""
        return config.batch_size

    def evaluation_interval(self, config: StudyConfig) -> int:
        """Epochs between evaluations inside training (the curves)."""
        return config.evaluation_interval

    def shuffle_stream(self) -> str:
        """Fine-tuning strategies share the minibatch order of fine_tune_all (a paired design:
        wise_ft at a = 1 and l2_sp at alpha = 0 are exactly fine_tune_all)."""
        return TRANSFER_ARM if self.continues_pretraining else self.name

    def inputs(self, config: StudyConfig, x: np.ndarray, pretrained: keras.Model | None) -> np.ndarray:
        """The network's inputs for points x (network units)."""
        return x

    def offset(self, config: StudyConfig, x: np.ndarray) -> np.ndarray | None:
        """What is added to the network's output (network units); None: nothing."""
        return None

    def prepare(self, config: StudyConfig, x: np.ndarray, y: np.ndarray, pretrained: keras.Model | None,
                init_seed: int) -> Prepared:
        """The member's start, from its real pairs (network units), its pretrained model (None
        without pretraining) and the seed of its fresh initialisation (the baseline's)."""
        offset = self.offset(config, x)
        targets = y if offset is None else y - offset
        inputs = self.inputs(config, x, pretrained)
        return Prepared(self.starting_net(config, pretrained, init_seed, inputs, targets), inputs, targets, offset)

    def starting_net(self, config, pretrained, init_seed, x, y) -> keras.Model:
        return pretrained

    def regime(self, config: StudyConfig, members: int, anchor: list[np.ndarray]) -> Regime:
        """How the members train (`anchor`: their starting weights). Fine-tuning is L2-SP with
        alpha = 0, the same numbers bit for bit, and so shares the fine-tuning strategies'
        compiled program (engine.StackTrainer); training from scratch keeps the baseline's."""
        if self.continues_pretraining:
            return Regime([config.learning_rate] * members, anchor=anchor)
        return Regime.uniform(members, config.learning_rate)

    def before_training(self, config: StudyConfig, plan: StackPlan, regime: Regime) -> tuple[Regime, list[dict]]:
        """Choices made from the members' own training pairs before they train (l2_sp_extrapolation's
        alpha): the regime they train with, and per member what to record of the choice."""
        return regime, [{} for _ in plan.prepared]

    def after_training(self, config: StudyConfig, plan: StackPlan, variables: Sequence[tf.Variable],
                       start: Sequence[np.ndarray]) -> list[dict]:
        """Choices made after training (wise_ft's mix), which may change the trained stack's
        `variables` (their values at `start` before training); per member what to record."""
        return [{} for _ in plan.prepared]

    def export(self, config: StudyConfig, net: keras.Model, pretrained: keras.Model | None) -> keras.Model:
        """The saved model: user units in and out."""
        return net


class L2SP(Strategy):
    name = "l2_sp"

    def regime(self, config, members, anchor):
        return Regime([config.learning_rate] * members, anchor_alpha=[config.l2_sp_alpha] * members, anchor=anchor)


class L2SPExtrapolation(L2SP):
    """l2_sp with each model's alpha chosen from `l2_sp_alphas` by how well it extrapolates: the
    share `l2_sp_holdout` (a quarter) of the measured pairs nearest the unmeasured part of the
    big domain is held out, a model per alpha is fine-tuned on the rest, and the largest alpha
    whose held-out MSE the band cannot tell from the lowest (within one standard
    error of their paired difference; `l2_sp_choice`, `HeldOutAlphas.chosen`) trains the final
    model on every pair."""

    name = "l2_sp_extrapolation"

    def before_training(self, config, plan, regime):
        checks = held_out_alphas(config, plan)
        alphas = [check.chosen(config.l2_sp_choice) for check in checks]
        notes = [dict(l2_sp_alpha=alpha, l2_sp_alphas=list(check.alphas), l2_sp_choice=config.l2_sp_choice,
                      l2_sp_heldout_mse=[float(v) for v in check.mse],
                      l2_sp_heldout_se=[float(v) for v in check.standard_error],
                      l2_sp_heldout_paired_se=[float(v) for v in check.paired_standard_error])
                 for alpha, check in zip(alphas, checks)]
        return dataclasses.replace(regime, anchor_alpha=alphas), notes


class LinearProbeThenFineTune(Strategy):
    name = "lp_ft"

    def starting_net(self, config, pretrained, init_seed, x, y):
        return linear_probe(config, pretrained, x, y)

    def regime(self, config, members, anchor):
        return Regime([config.learning_rate * config.lp_ft_rate_factor] * members, anchor=anchor)


class WiseFineTune(Strategy):
    name = "wise_ft"

    def after_training(self, config, plan, variables, start):
        """Each member's mix a by k-fold cross-validation on its real pairs; the stack then holds
        (1 - a) * pretrained + a * fine-tuned, member by member."""
        end = [np.array(v.numpy()) for v in variables]
        curves = cross_validated_mix(config, plan)
        mixes = [WISE_FT_MIXES[int(np.argmin(curve))] for curve in curves]
        a = np.asarray(mixes, np.float32)
        for variable, s, e in zip(variables, start, end):
            share = a.reshape([-1] + [1] * (s.ndim - 1))
            variable.assign((1.0 - share) * s + share * e)
        return [dict(wise_ft_mix=float(m), wise_ft_mixes=list(WISE_FT_MIXES), wise_ft_cv_mse=[float(v) for v in c])
                for m, c in zip(mixes, curves)]


class FreezeFirstLayers(Strategy):
    name = "freeze_k"

    def regime(self, config, members, anchor):
        frozen = frozenset(f"hidden_{i}" for i in range(min(config.freeze_layers, config.depth)))
        return Regime([config.learning_rate] * members, frozen=[frozen] * members, anchor=anchor)


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
        correction = net(_to_network_units(spec, x))
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
        features = keras.layers.Concatenate(name="x_and_g")([_to_network_units(spec, x),
                                                             _outputs_to_network_units(spec, g)])
        return keras.Model(x, _to_user_units(spec, net(features)), name=net.name)


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
        low_fidelity = _outputs_to_network_units(spec, pretrained(x))
        features = keras.layers.Concatenate(name="x_and_low_fidelity")([_to_network_units(spec, x), low_fidelity])
        return keras.Model(x, _to_user_units(spec, net(features)), name=net.name)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy(), L2SP(), L2SPExtrapolation(), LinearProbeThenFineTune(), WiseFineTune(), FreezeFirstLayers(),
    Residual(), SimpleModelFeature(), MultiFidelity())}
BY_ARM: dict[str, Strategy] = {s.arm: s for s in STRATEGIES.values()}


def chosen_settings(config: StudyConfig) -> dict[str, tuple[float, ...]]:
    """What this run's strategies choose per model (a record's field), with the values they choose
    from: TensorBoard's hparams columns beside arm, system, volume and seed."""
    chosen = {}
    if "l2_sp_extrapolation" in config.transfer_strategy:
        chosen["l2_sp_alpha"] = tuple(config.l2_sp_alphas)
    if "wise_ft" in config.transfer_strategy:
        chosen["wise_ft_mix"] = WISE_FT_MIXES
    return chosen


def strategy_of_arm(arm: str) -> Strategy | None:
    """The strategy an arm trains (None for pretrain, baseline and oracle)."""
    return BY_ARM.get(arm)


# Helpers --------------------------------------------------------------------------------------
def simple_model_in_network_units(config: StudyConfig, x: np.ndarray) -> np.ndarray:
    """g at network-unit points x, in network units."""
    network = config.network
    g = system_function(config.reference(config.simple_name), config.system_params)
    return network.scale_outputs(np.asarray(g(network.unscale_inputs(x))))


def linear_probe(config: StudyConfig, pretrained: keras.Model, x: np.ndarray, y: np.ndarray) -> keras.Model:
    """The pretrained model with its output layer refitted by least squares on the last hidden
    layer's features of x (network units); the hidden layers are unchanged."""
    spec = config.network
    probe = models.build_mlp(spec, seed=0)
    layers = models.dense_layers(pretrained)
    for name, layer in models.dense_layers(probe).items():
        layer.set_weights(layers[name].get_weights())
    features = np.asarray(x, np.float64)
    for i in range(spec.depth):
        kernel, bias = layers[f"hidden_{i}"].get_weights()
        features = np.asarray(keras.activations.get(spec.activation)(features @ kernel + bias), np.float64)
    design = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    # Minimum-norm least squares, directions below 1e-6 of the largest singular value dropped
    # (dead ReLUs and near-collinear features): small weights that survive float32.
    solution = np.linalg.lstsq(design, np.asarray(y, np.float64), rcond=1e-6)[0]
    models.dense_layers(probe)["output"].set_weights([solution[:-1].astype(np.float32),
                                                      solution[-1].astype(np.float32)])
    return probe


def _to_network_units(spec: models.NetworkSpec, x):
    if not spec.normalised:
        return x
    return keras.layers.Rescaling(scale=[1.0 / s for s in spec.input_scale],
                                  offset=[-m / s for m, s in zip(spec.input_offset, spec.input_scale)])(x)


def _outputs_to_network_units(spec: models.NetworkSpec, y):
    if not spec.normalised:
        return y
    return keras.layers.Rescaling(scale=[1.0 / s for s in spec.output_scale],
                                  offset=[-m / s for m, s in zip(spec.output_offset, spec.output_scale)])(y)


def _to_user_units(spec: models.NetworkSpec, y):
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
