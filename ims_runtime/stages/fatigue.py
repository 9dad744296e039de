"""Fatigue stage: the temporal network (ONNX, run through the backend chain) and the rule-based reference.

Input of the network: the last ``window_s`` of eye signals in ``bin_s`` time bins, shape ``(1, 3, n_bins)``
float32, channels (mean openness 0..1, closed fraction 0..1, bin valid 0/1), oldest bin first; empty bins are
zeros with valid = 0 (gaps are marked, not filled). Outputs: ``kss`` (1, 1) KSS-equivalent 1..9 and
``level_logits`` (1, 3) for alert / drowsy / severe. Made by ``ims-opt train fatigue`` (models/manifest.json).

The rule-based estimator turns PERCLOS and mean blink duration into a KSS-equivalent through two monotone tables
(thresholds from the literature, see :data:`PERCLOS_TO_KSS`), so anyone can check what the model is compared to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ims_runtime import catalog, errors
from ims_runtime.backends import Backend, open_chain
from ims_runtime.spec.schema import FatigueStageSpec
from ims_runtime.temporal.features import FatigueFeatures

LEVELS = ("alert", "drowsy", "severe")
#: KSS-equivalent boundaries between the levels: drowsy ≈ KSS 7, severe ≈ KSS ≥ 8 (DDAW's must-warn level)
LEVEL_EDGES_KSS = (6.5, 7.5)

#: PERCLOS (P80, 60 s) → KSS: > 0.15 is the widely used drowsy threshold (Wierwille et al. 1994; Dinges & Grace
#: 1998), so 0.15 maps to the drowsy/severe boundary region and 0.25 to KSS 9
PERCLOS_TO_KSS = ((0.0, 0.05, 0.10, 0.15, 0.25), (1.0, 5.0, 6.5, 7.5, 9.0))
#: mean blink duration (ms) → KSS: alert ≈ 100–150 ms, drowsy > 200–300 ms (Ingre et al. 2006; Schleicher et al.
#: 2008; Caffier et al. 2003)
BLINK_MS_TO_KSS = ((100.0, 140.0, 165.0, 200.0, 250.0, 320.0), (1.0, 5.0, 6.0, 7.0, 8.0, 9.0))


def level_for_kss(kss: float) -> str:
    return LEVELS[int(np.searchsorted(LEVEL_EDGES_KSS, kss, side="right"))]


def rule_based_kss(features: FatigueFeatures) -> float | None:
    """KSS-equivalent = the larger of the PERCLOS and the blink-duration readings; None without enough data."""
    if features.perclos is None:
        return None
    kss = float(np.interp(features.perclos, *PERCLOS_TO_KSS))
    if features.mean_blink_ms is not None:
        kss = max(kss, float(np.interp(features.mean_blink_ms, *BLINK_MS_TO_KSS)))
    return kss


def classifier_input(eye_bins: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(n_bins, 2)`` eye bins + ``(n_bins,)`` valid → the network's ``(1, 3, n_bins)`` float32 input."""
    x = np.empty((1, 3, eye_bins.shape[0]), dtype=np.float32)
    x[0, 0:2] = eye_bins.T
    x[0, 2] = valid
    return x


@dataclass(frozen=True)
class ModelEstimate:
    kss_equivalent: float
    #: probabilities of alert / drowsy / severe
    level_probs: tuple[float, float, float]

    @property
    def level(self) -> str:
        return LEVELS[int(np.argmax(self.level_probs))]


class FatigueClassifier:
    """The ONNX fatigue network behind a backend chain. Checks that the model's window matches the spec's."""

    def __init__(self, backend: Backend, window_s: float, bin_s: float) -> None:
        self.backend = backend
        self.n_bins = round(window_s / bin_s)
        meta = backend.metadata
        for key, want in (("ims.window_s", window_s), ("ims.bin_s", bin_s)):
            if key in meta and abs(float(meta[key]) - want) > 1e-9:
                raise errors.IMSError(errors.MODEL_CONTRACT,
                                      f"{backend.model_path.name} was trained with {key}={meta[key]}, "
                                      f"the spec says {want}", "use the spec's window that the model was "
                                      "trained with, or retrain (`ims-opt train fatigue`)")
        self._input_name = backend.inputs[0].name
        names = [o.name for o in backend.outputs]
        if names[:2] != ["kss", "level_logits"]:
            raise errors.IMSError(errors.MODEL_CONTRACT, f"fatigue model outputs {names}, expected "
                                  "['kss', 'level_logits']", "export it with `ims-opt train fatigue`")

    @classmethod
    def from_spec(cls, spec: FatigueStageSpec, spec_dir: Path | None = None) -> FatigueClassifier:
        path = catalog.resolve(spec.model, spec_dir)
        catalog.check_sha256(path, spec.sha256)
        opened = open_chain(path, list(spec.backends), stage="fatigue")
        return cls(opened.backend, spec.window.window_s, spec.window.bin_s)

    def estimate(self, eye_bins: np.ndarray, valid: np.ndarray) -> ModelEstimate:
        if eye_bins.shape[0] != self.n_bins:
            raise ValueError(f"expected {self.n_bins} bins, got {eye_bins.shape[0]}")
        kss, logits = self.backend.run({self._input_name: classifier_input(eye_bins, valid)})[:2]
        z = logits[0].astype(np.float64)
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        return ModelEstimate(float(kss.reshape(-1)[0]), (float(probs[0]), float(probs[1]), float(probs[2])))

    def close(self) -> None:
        self.backend.close()
