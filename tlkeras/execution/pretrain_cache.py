"""The pretraining cache: a pretrained model is reused only when everything that determines it is
identical (the key hashes all of it, with the engine, TensorFlow and Keras versions)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import tensorflow as tf

from tlkeras.core.config import StudyConfig
from tlkeras.core.members import Member
from tlkeras.core.options import SweepOptions

ENGINE_VERSION = 1  # bump when a change alters trained weights: it invalidates the cache


def pretrain_cache_key(config: StudyConfig, seed: int) -> str:
    """Everything that determines a pretrained model, hashed (never reused when any differs)."""
    fields = dict(
        engine=ENGINE_VERSION, tensorflow=tf.__version__, keras=keras.__version__,
        simple_system=config.simple_name, simple_source=config.simple_source,
        num_inputs=config.input_dimension, num_outputs=config.output_dimension,
        normalisation=[list(config.input_offset), list(config.input_scale), list(config.output_offset),
                       list(config.output_scale)], eta=list(config.eta),
        theta=list(config.theta), y_tot=config.y_tot, big_domain=list(config.big_domain),
        pretrain_size=config.pretrain_size, synthetic_noise=config.synthetic_noise,
        width=config.width, depth=config.depth, activation=config.activation,
        learning_rate=config.learning_rate, batch_size=config.batch_size,
        pretrain_epochs=config.pretrain_epochs, seed=seed,
    )
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def pretrain_cache_folder(config: StudyConfig, options: SweepOptions, member: Member) -> Path | None:
    """Where the cache keeps a pretraining member's model (None: no cache)."""
    if options.cache_dir is None:
        return None
    return Path(options.cache_dir) / "pretrain" / pretrain_cache_key(config, member.seed)


def cache_entry_complete(folder: Path) -> bool:
    return (folder / "model.keras").is_file() and (folder / "losses.npy").is_file()
