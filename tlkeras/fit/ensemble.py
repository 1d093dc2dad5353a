"""A fitted model folder as an ensemble: load it, predict mean and spread, score it on new rows.

A folder written by `tlkeras fit` holds one plain `.keras` model per seed and arm and a
`manifest.json` naming them with the inputs, outputs, domain and noise estimate. Every member
takes and returns the user's units, so the ensemble is simply: mean and sample sd across members.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from tlkeras.core.errors import ModelFileError  # TensorFlow is imported when models are loaded
from tlkeras.systems.domains import Domain

MANIFEST = "manifest.json"
MAX_GRID_POINTS = 1_000_000
SIMPLE_MODEL_LAYER = "SimpleModelLayer"  # nn.layers: a member holding it calls g when it predicts


class Ensemble:
    """The members of one arm of a fitted model."""

    def __init__(self, models: list, manifest: dict, arm: str):
        self.models = models
        self.manifest = manifest
        self.arm = arm

    @property
    def inputs(self) -> list[str]:
        return list(self.manifest["inputs"])

    @property
    def outputs(self) -> list[str]:
        return list(self.manifest["outputs"])

    @property
    def domain(self) -> np.ndarray:
        """[inputs, 2]: low and high of every input."""
        return np.asarray(self.manifest["domain"], np.float64)

    @property
    def noise_sd(self) -> np.ndarray:
        """This arm's fitted measurement-noise estimate per output (zeros if the fit had no CV)."""
        noise = (self.manifest.get("noise_sd") or {}).get(self.arm) or {}
        return np.asarray([noise.get(name, 0.0) for name in self.outputs], np.float64)

    @staticmethod
    def load(folder: str | Path, arm: str | None = None) -> "Ensemble":
        """The ensemble of `arm` (default: the manifest's, the fit's first strategy) in a fitted model folder."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        arm = arm or manifest["default_arm"]
        if arm not in manifest["ensembles"] or not manifest["ensembles"][arm]:
            raise ModelFileError(f"model folder {folder} has no {arm!r} ensemble; it has "
                                 f"{', '.join(a for a, p in manifest['ensembles'].items() if p)}")
        return Ensemble.from_files([folder / p for p in manifest["ensembles"][arm]], manifest, arm)

    @staticmethod
    def from_files(paths: Sequence[Path], manifest: dict, arm: str) -> "Ensemble":
        from tlkeras.storage.persistence import load_model

        models = []
        for path in paths:
            model = load_model(path)
            shape = (int(model.input_shape[-1]), int(model.output_shape[-1]))
            if shape != (len(manifest["inputs"]), len(manifest["outputs"])):
                raise ModelFileError(f"model file {path} maps {shape[0]} inputs to {shape[1]} outputs; the "
                                     f"manifest names {len(manifest['inputs'])} and {len(manifest['outputs'])}")
            models.append(model)
        return Ensemble(models, manifest, arm)

    def member_predictions(self, x: np.ndarray) -> np.ndarray:
        """[members, points, outputs] in the user's units."""
        x = np.asarray(x, np.float32)
        return np.stack([np.asarray(m.predict_on_batch(x) if len(x) > 65536 else m(x, training=False), np.float64)
                         for m in self.models])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd) across members, each [points, outputs]; sd is the sample sd (0 for one member)."""
        predictions = self.member_predictions(x)
        sd = predictions.std(axis=0, ddof=1) if len(self.models) > 1 else np.zeros(predictions.shape[1:])
        return predictions.mean(axis=0), sd

    def evaluate(self, x: np.ndarray, y: np.ndarray, calibrated: dict | None = None) -> dict:
        """Per output, over all rows and separately over those inside and outside the measured
        region: L1 and RMSE of the ensemble mean, and the share of rows inside mean ± 2 sd with the
        noise estimate added (sd_total^2 = sd_ensemble^2 + noise^2) and without it; the raw
        Gaussian intervals N(mean, sd_total^2) at 50, 80, 90 and 95%: their coverage, the 90%
        interval's mean width and interval score, and the mean CRPS (`results.intervals`); with
        `calibrated` (level -> (lower, upper) at x, `fit.calibration`) the same of those intervals."""
        from tlkeras.results import intervals

        x = np.asarray(x, np.float64)
        mean, sd = self.predict(x)
        residuals = mean - np.asarray(y, np.float64)
        total = np.sqrt(sd**2 + self.noise_sd**2)
        inside = Domain.from_pairs(self.manifest["measured_region"]).contains(x)
        scores = {}
        for o, name in enumerate(self.outputs):
            scores[name] = {}
            for where, rows in (("all", np.ones(len(x), bool)), ("inside_measured", inside),
                                ("outside_measured", ~inside)):
                r, t, s = residuals[rows, o], total[rows, o], sd[rows, o]
                scores[name][where] = dict(
                    rows=int(rows.sum()),
                    l1=float(np.mean(np.abs(r))) if rows.any() else None,
                    rmse=float(np.sqrt(np.mean(r**2))) if rows.any() else None,
                    coverage_2sd=float(np.mean(np.abs(r) <= 2 * t)) if rows.any() else None,
                    coverage_2sd_without_noise=float(np.mean(np.abs(r) <= 2 * s)) if rows.any() else None)
                if rows.any():
                    m, y_rows = mean[rows, o], np.asarray(y, np.float64)[rows, o]
                    bands = {level: intervals.gaussian_interval(m, t, level) for level in intervals.LEVELS}
                    lower, upper = bands[0.9]
                    scores[name][where].update(
                        coverage_raw={f"{100 * level:g}": intervals.coverage(y_rows, *bands[level])
                                      for level in intervals.LEVELS},
                        width_90_raw=float(np.mean(upper - lower)),
                        interval_score_90_raw=float(np.mean(intervals.interval_score(y_rows, lower, upper, 0.9))),
                        crps_raw=float(np.mean(intervals.crps_gaussian(y_rows, m, t))))
                    if calibrated:
                        cal = {level: (lower[rows, o], upper[rows, o]) for level, (lower, upper) in calibrated.items()}
                        lower, upper = cal.get(0.9, (None, None))
                        scores[name][where].update(
                            coverage_calibrated={f"{100 * level:g}": intervals.coverage(y_rows, *cal[level])
                                                 for level in cal})
                        if lower is not None:
                            scores[name][where].update(
                                width_90=float(np.mean(upper - lower)),
                                interval_score_90=float(np.mean(intervals.interval_score(y_rows, lower, upper, 0.9))))
        return scores


def read_manifest(folder: Path) -> dict:
    """The manifest of a model folder; ModelFileError (one line) if it is missing or unreadable."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise ModelFileError(f"--model={folder} is not a folder (give the folder `tlkeras fit --out` wrote)")
    if not path.is_file():
        raise ModelFileError(f"--model={folder} holds no {MANIFEST}: not a finished `tlkeras fit` model folder")
    try:
        manifest = json.loads(path.read_text())
        for key in ("inputs", "outputs", "domain", "ensembles", "default_arm"):
            manifest[key]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{path} is not a valid manifest ({type(error).__name__}: {error})") from None
    return manifest


def simple_model_references(paths: Sequence[Path]) -> list[str]:
    """The references of the simple model g that the members in `paths` evaluate when they predict
    (their `SimpleModelLayer`s: residual and g_feature members), read from the `config.json` inside
    each `.keras` archive, without TensorFlow; [] for members that do not call g. A file that
    cannot be read here is left for `Ensemble.load` to report."""
    found: list[str] = []
    for path in paths:
        try:
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            continue
        for reference in _layer_references(config):
            if reference not in found:
                found.append(reference)
    return found


def _layer_references(node) -> list[str]:
    if isinstance(node, list):
        return [r for item in node for r in _layer_references(item)]
    if not isinstance(node, dict):
        return []
    if node.get("class_name") == SIMPLE_MODEL_LAYER or str(node.get("registered_name", "")).endswith(
            ">" + SIMPLE_MODEL_LAYER):
        reference = (node.get("config") or {}).get("reference")
        return [str(reference)] if reference else []
    return [r for value in node.values() for r in _layer_references(value)]


def arms_needing_simple_model(folder: Path, manifest: dict) -> dict[str, list[str]]:
    """Every arm of a model folder with members -> the references of g its members evaluate ([]: none)."""
    return {arm: simple_model_references([Path(folder) / p for p in paths])
            for arm, paths in manifest["ensembles"].items() if paths}


def grid_points(domain: np.ndarray, per_axis: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A regular grid over the domain [inputs, 2]: points [per_axis^inputs, inputs] (the first
    input varying slowest) and the axes."""
    domain = np.asarray(domain, np.float64)
    if per_axis ** len(domain) > MAX_GRID_POINTS:
        raise ValueError(f"--grid={per_axis} over {len(domain)} inputs is {per_axis ** len(domain):,} points; "
                         f"at most {MAX_GRID_POINTS:,} (use a smaller --grid or --inputs=points.csv)")
    axes = [np.linspace(low, high, per_axis) for low, high in domain]
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    return points, axes
