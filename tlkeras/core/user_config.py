"""A config whose systems are a lab's own: references resolved and probed, units normalised.

`resolve_user_systems` turns the references of a `StudyConfig` into absolute ones, imports and
probes each function once (`user_systems.probe`) and fills the dimensions and source hashes;
`with_normalisation` fixes the units the networks learn in. Both raise `ConfigError` with one
line, before any work. Free of TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from tlkeras.core.config import StudyConfig, _show
from tlkeras.core.errors import ConfigError
from tlkeras.systems import user as user_systems
from tlkeras.systems.domains import Domain
from tlkeras.systems.measurements import MEASURED


def resolve_user_systems(config: StudyConfig, report: Callable[[str], None] | None = None) -> StudyConfig:
    """`config` with its user systems made absolute, loaded and probed once on the big domain
    (see `user_systems.probe`; `report` is told before each import and probe): fills num_inputs
    (as given, else one per theta), num_outputs and the source hashes. Raises ConfigError (one
    line naming the function and the fault)."""
    if not config.uses_references:
        return config
    num_inputs = config.num_inputs or len(config.theta)
    try:
        domain = Domain.from_values(config.big_domain, num_inputs)
    except ValueError as error:
        raise ConfigError(f"big_domain={_show(config.big_domain)} is not allowed: {error}") from None
    resolved, outputs, sources = [], {}, []
    for name in (config.simple_system, *config.systems):
        if name == MEASURED:
            resolved.append(name)
            sources.append("")
            continue
        if not user_systems.is_reference(name):
            if num_inputs != len(config.theta):
                raise ConfigError(f"num_inputs={num_inputs} is not allowed: the built-in system {name!r} "
                                  f"has {len(config.theta)} inputs (one per theta value)")
            resolved.append(name)
            outputs[name] = len(config.eta)
            sources.append("")
            continue
        try:
            reference = user_systems.absolute_reference(name)
            outputs[name] = user_systems.probe(reference, domain, num_inputs, report)
            sources.append(user_systems.source_sha256(reference))
        except user_systems.SystemReferenceError as error:
            raise ConfigError(str(error)) from None
        resolved.append(reference)
    if len(set(outputs.values())) > 1:
        shown = ", ".join(f"{name} {count}" for name, count in outputs.items())
        raise ConfigError(f"the systems must have the same number of outputs; they have: {shown}")
    return dataclasses.replace(
        config, simple_system=resolved[0], systems=tuple(resolved[1:]), num_inputs=num_inputs,
        num_outputs=next(iter(outputs.values())), simple_source=sources[0], system_sources=tuple(sources[1:]))


NORMALISATION_POINTS = 4096


def with_normalisation(config: StudyConfig) -> StudyConfig:
    """`config` with networks that work in normalised units and speak the user's at the edges:
    inputs scaled by the big domain's centre and half-width, outputs by the mean and sd of the
    simple model over it (so transfer starts at g's scale, whatever the units). For user systems;
    the study's built-in runs keep plain MLPs (and their numbers)."""
    from tlkeras.systems.mechanistic import system_function

    box = config.big_box
    low, high = box.bounds(config.input_dimension)
    x = np.random.default_rng(0x5CA1E).uniform(low, high, size=(NORMALISATION_POINTS, config.input_dimension))
    try:
        y = np.asarray(system_function(config.simple_system, config.system_params)(x), np.float64)
    except user_systems.SystemReferenceError as error:  # the probe's points were fine, these not
        raise ConfigError(f"{error} (on {NORMALISATION_POINTS} points of the domain, after the probe)") from None
    y = y.reshape(len(x), -1)
    sd = y.std(axis=0)
    scale = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(y.mean(axis=0))), sd, 1.0)
    return dataclasses.replace(
        config, input_offset=tuple(((low + high) / 2).tolist()), input_scale=tuple(((high - low) / 2).tolist()),
        output_offset=tuple(y.mean(axis=0).tolist()), output_scale=tuple(scale.tolist()))
