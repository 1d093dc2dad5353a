"""tlkeras: pretrain on a simple mechanistic model, fine-tune on a few real measurements.

Public entry points (imported on first use, so that `tlkeras.config` loads without TensorFlow):
- `StudyConfig` (the protocol), `run_study` (a whole sweep into a run directory);
- `load_model` / `predict` (reuse a saved `.keras` model);
- `build_mlp`, `build_stack`, `StackTrainer` (the network and the stacked engine);
- the modules `systems` and `data` (the mechanistic models and the sampling pipelines).
"""

import importlib

_EXPORTS = {
    "ConfigError": "tlkeras.config", "StudyConfig": "tlkeras.config", "NetworkSpec": "tlkeras.config",
    "StackTrainer": "tlkeras.engine", "build_mlp": "tlkeras.models", "build_stack": "tlkeras.models",
    "ModelFileError": "tlkeras.persistence", "load_model": "tlkeras.persistence",
    "predict": "tlkeras.persistence", "run_study": "tlkeras.study",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tlkeras' has no attribute {name!r}")
