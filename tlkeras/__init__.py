"""tlkeras: pretrain on a simple mechanistic model, fine-tune on a few real measurements.

Public entry points (imported on first use, so that `import tlkeras` loads no TensorFlow):
- `StudyConfig` (the protocol), `run_study` (a whole sweep into a run directory);
- `load_model` / `predict` (reuse a saved `.keras` model);
- `build_mlp`, `build_stack`, `StackTrainer` (the network and the stacked engine);
- `Ensemble` (a model folder written by `tlkeras fit`);
- the subpackages: `tlkeras.systems` (the mechanistic models), `tlkeras.nn.data` (the sampling
  pipelines), and the rest by concern (docs/architecture.md).
"""

import importlib

_EXPORTS = {
    "ConfigError": "tlkeras.core.errors", "StudyConfig": "tlkeras.core.config", "NetworkSpec": "tlkeras.core.network",
    "StackTrainer": "tlkeras.nn.engine", "build_mlp": "tlkeras.nn.models", "build_stack": "tlkeras.nn.models",
    "ModelFileError": "tlkeras.core.errors", "load_model": "tlkeras.storage.persistence",
    "predict": "tlkeras.storage.persistence", "run_study": "tlkeras.execution.study",
    "Ensemble": "tlkeras.fit.ensemble",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tlkeras' has no attribute {name!r}")
