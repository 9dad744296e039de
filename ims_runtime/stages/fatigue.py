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

from ims_runtime.contract import FatigueState
from ims_runtime.spec.schema import FatigueStageSpec
from ims_runtime.stages.model import ModelContract, OpenedModel, open_model
from ims_runtime.temporal.features import FatigueFeatures, TemporalFeatures

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


def classifier_input(eye_bins: np.ndarray, valid: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(n_bins, 2)`` eye bins + ``(n_bins,)`` valid → the network's ``(1, 3, n_bins)`` float32 input (written
    into ``out`` when given: the stage reuses one buffer, which the backend binds once)."""
    x = np.empty((1, 3, eye_bins.shape[0]), dtype=np.float32) if out is None else out
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

    CONTRACT = ModelContract("fatigue_tcn", ("kss", "level_logits"), "stages.fatigue.model")

    def __init__(self, model: OpenedModel, window_s: float, bin_s: float) -> None:
        self.model = model
        self.backend = model.backend
        self.n_bins = round(window_s / bin_s)
        meta = self.backend.metadata
        for key, want in (("ims.window_s", window_s), ("ims.bin_s", bin_s)):
            if key in meta and abs(float(meta[key]) - want) > 1e-9:
                raise model.contract_error(f"trained with {key}={meta[key]}, the spec says {want}: use the spec's "
                                           "window the model was trained with, or retrain (`ims-opt train "
                                           "fatigue`)", self.CONTRACT.spec_field)
        self._input_name = self.backend.inputs[0].name
        self._input = np.empty((1, 3, self.n_bins), np.float32)  # reused every call (bound once by ort_cpu)
        names = [o.name for o in self.backend.outputs]
        self._kss, self._logits = names.index("kss"), names.index("level_logits")

    @classmethod
    def from_spec(cls, spec: FatigueStageSpec, spec_dir: Path | None = None) -> FatigueClassifier:
        model = open_model(spec.model, spec.sha256, list(spec.backends), "fatigue", cls.CONTRACT, spec_dir)
        try:
            return cls(model, spec.window.window_s, spec.window.bin_s)
        except BaseException:
            model.backend.close()
            raise

    def warmup(self, runs: int = 3) -> None:
        self.backend.warmup({self._input_name: np.zeros((1, 3, self.n_bins), np.float32)}, runs)

    def estimate(self, eye_bins: np.ndarray, valid: np.ndarray) -> ModelEstimate:
        if eye_bins.shape[0] != self.n_bins:
            raise ValueError(f"expected {self.n_bins} bins, got {eye_bins.shape[0]}")
        outs = self.backend.run({self._input_name: classifier_input(eye_bins, valid, self._input)})
        kss, logits = outs[self._kss], outs[self._logits]
        z = logits[0].astype(np.float64)
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        return ModelEstimate(float(kss.reshape(-1)[0]), (float(probs[0]), float(probs[1]), float(probs[2])))

    def close(self) -> None:
        self.backend.close()


class FatigueStage:
    """The pipeline's fatigue stage: the temporal window's features → :class:`FatigueState`.

    The network (``estimator: model``) runs every ``run_interval_s`` (its input is a 60 s window, so running it on
    every frame would change nothing between runs); the rule-based estimate is computed on every frame beside it.
    """

    name = "fatigue"

    def __init__(self, spec: FatigueStageSpec, classifier: FatigueClassifier | None) -> None:
        self.spec = spec
        self.classifier = classifier
        self._model: ModelEstimate | None = None
        self._next_run_ns: int | None = None

    @classmethod
    def from_spec(cls, spec: FatigueStageSpec, spec_dir: Path | None = None) -> FatigueStage:
        classifier = FatigueClassifier.from_spec(spec, spec_dir) if spec.estimator == "model" else None
        return cls(spec, classifier)

    @property
    def backend_skips(self) -> list[dict[str, object]]:
        return self.classifier.model.backend_skips if self.classifier is not None else []

    def warmup(self, runs: int = 3) -> None:
        if self.classifier is not None:
            self.classifier.warmup(runs)

    def reset(self) -> None:
        self._model = None
        self._next_run_ns = None

    def process(self, t_ns: int, features: FatigueFeatures, temporal: TemporalFeatures) -> FatigueState:
        """The estimate at ``t_ns`` from this frame's ``features`` (the network reads ``temporal``'s eye window)."""
        rules_kss = rule_based_kss(features)
        if self.classifier is not None and (self._next_run_ns is None or t_ns >= self._next_run_ns):
            enough = features.perclos is not None
            self._model = self.classifier.estimate(*temporal.eye_window(t_ns)) if enough else None
            self._next_run_ns = t_ns + int(self.spec.run_interval_s * 1e9)
        if self.classifier is not None:
            kss, source = (self._model.kss_equivalent if self._model else None), "model"
        else:
            kss, source = rules_kss, "rules"
        # the network's regression head is not bounded: clip to the scale so the contract's range holds
        kss = None if kss is None else min(9.0, max(1.0, kss))
        return FatigueState(valid=kss is not None, level=level_for_kss(kss) if kss is not None else "unknown",
                            kss_equivalent=kss, source=source, rules_kss_equivalent=rules_kss,
                            level_probs=self._model.level_probs if self._model is not None else None,
                            features=features)

    def describe(self) -> dict[str, object]:
        if self.classifier is None:
            return {"backend": None, "estimator": "rules", "precision": None}
        model = self.classifier.model
        return {**self.classifier.backend.describe(), "precision": model.running_precision(self.spec.precision),
                "sha256": model.sha256, "fallbacks": self.backend_skips}

    def close(self) -> None:
        if self.classifier is not None:
            self.classifier.close()
