"""tlkeras: pretrain on a simple mechanistic model, fine-tune on a few real measurements.

Public entry points:
- `StudyConfig` (the protocol), `run_study` (a whole sweep into a run directory);
- `load_model` / `predict` (reuse a saved `.keras` model);
- `build_mlp`, `build_stack`, `StackTrainer` (the network and the stacked engine);
- `systems`, `data` (the mechanistic models and the sampling pipelines).
"""

from tlkeras.config import ConfigError, StudyConfig
from tlkeras.engine import StackTrainer
from tlkeras.models import NetworkSpec, build_mlp, build_stack
from tlkeras.persistence import ModelFileError, load_model, predict
from tlkeras.study import run_study

__all__ = [
    "ConfigError", "ModelFileError", "NetworkSpec", "StackTrainer", "StudyConfig",
    "build_mlp", "build_stack", "load_model", "predict", "run_study",
]
