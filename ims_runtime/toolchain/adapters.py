"""Per-model-family parts of ``ims-opt run``: where the float model comes from, what the calibration tensors are,
how a variant is scored against FP32 and what "within the limit" means.

The runner (:mod:`.runner`) and the variant builders (:mod:`.variants`) are shared by every family; only this
small interface differs (the table of families is :data:`ims_runtime.toolchain.families.ADAPTERS`). ``retinaface`` is scored on WIDER (AP, recall) plus agreement on a held-apart clip;
``face_state`` (:mod:`.face_state.optimise`) and ``fatigue`` (:mod:`.fatigue.optimise`) are scored by agreement
with FP32 on held-apart data (they have no independent ground truth here beyond their teachers/generator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime import errors, paths
from ims_runtime.toolchain.calibration import fixed_rate_frames, letterboxed_tensors
from ims_runtime.toolchain.evaluate import agreement_with_reference, wider_scores, wider_split
from ims_runtime.toolchain.recipe import VariantSpec
from ims_runtime.toolchain.run_context import RunContext
from ims_runtime.toolchain.shared_data import shared_dir


class ModelAdapter:
    """What differs between model families. Every method gets the :class:`RunContext` for data and paths."""

    #: columns of the report/console table: (header, key in :meth:`headline`, format)
    columns: tuple[tuple[str, str, str], ...] = ()

    def data_description(self, run: RunContext) -> dict[str, Any]:
        """What the calibration data is (goes into every stamp key and the manifest)."""
        return {"calibration": run.calibration.describe(), "evaluation": run.agreement.describe()}

    def calibration_tensors(self, run: RunContext) -> np.ndarray:
        raise NotImplementedError

    def base_weights(self, run: RunContext, base_name: str) -> Path:
        """The float weights of a base (found on the model search path)."""
        base = run.recipe.bases[base_name]
        found = paths.find_file(base.weights)
        if found is None:
            raise errors.IMSError(errors.MODEL_NOT_FOUND, f"base {base_name}: {base.weights} not found",
                                  "set IMS_MODEL_PATH or run from the repository root")
        return found

    def export_float(self, run: RunContext, base_name: str, weights: Path, out: Path) -> None:
        raise NotImplementedError

    def evaluate(self, run: RunContext, model: Path, reference: Path) -> dict[str, Any]:
        raise NotImplementedError

    def within_limit(self, run: RunContext, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        raise NotImplementedError

    def headline(self, scores: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
        """The few numbers of a variant for the console, manifest and report (deltas against FP32 included)."""
        raise NotImplementedError

    def build_qat(self, run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
        raise errors.IMSError(errors.SPEC_INVALID, f"QAT is not implemented for {run.recipe.model}",
                              "use kind: qat only in the face-state recipe")


class DetectorAdapter(ModelAdapter):
    columns = (("AP (Δ pt)", "ap", "{ap:.4f} ({ap_delta_pt:+.2f})"),
               ("recall (Δ pt)", "recall", "{recall:.4f} ({recall_delta_pt:+.2f})"),
               ("agreement found / IoU / lm px", "found_share",
                "{found_share:.3f} / {mean_box_iou:.3f} / {mean_landmark_error_px:.2f}"))

    def __init__(self) -> None:
        self._agreement_frames: list[np.ndarray] | None = None  # decoded once per run (the adapter is per run)

    def calibration_tensors(self, run: RunContext) -> np.ndarray:
        return letterboxed_tensors(run.calibration, run.recipe.input_size_px)

    # bases.py and detector_qat.py import torch: loaded only by the steps that export or train, so that a run whose
    # artefacts are all stamped fresh, and `ims-opt report`, start without it
    def base_weights(self, run: RunContext, base_name: str) -> Path:
        from ims_runtime.toolchain.bases import ensure_base_weights

        return ensure_base_weights(run, base_name)

    def export_float(self, run: RunContext, base_name: str, weights: Path, out: Path) -> None:
        from ims_runtime.toolchain.bases import export_base

        export_base(run.recipe.bases[base_name], weights, out, run.recipe.input_size_px)

    def build_qat(self, run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
        """QAT of the variant's base, self-distilled from the official FP32 model on the calibration clips
        (:mod:`.detector_qat`); a ``dynamic_shape`` base gives a dynamic-shape export, ``keep_float`` a float stem."""
        from ims_runtime.toolchain.detector_qat import make_qat

        base = run.recipe.bases[variant.base]
        if base.activation != "leaky_relu":
            raise errors.IMSError(errors.SPEC_INVALID, f"variant {variant.name}: detector QAT needs a LeakyReLU base",
                                  "use base: official or official_dynamic")
        images = [image for _, _, image in fixed_rate_frames(run.calibration)]
        size = None if base.dynamic_shape else run.recipe.input_size_px
        return make_qat(self.base_weights(run, variant.base), self.base_weights(run, "official"), out, images,
                        variant.steps, size, meta, keep_float=variant.keep_float)

    def evaluate(self, run: RunContext, model: Path, reference: Path) -> dict[str, Any]:
        ev = run.recipe.evaluation
        assert ev is not None  # load_recipe checks
        if self._agreement_frames is None:
            self._agreement_frames = [image for _, _, image in fixed_rate_frames(run.agreement)]
        result: dict[str, Any] = {}
        if ev.wider:
            # with a split, the quoted accuracy (and the within-limit verdict) comes from the report part only:
            # images no decision (the mixed-precision search) ever saw
            result["wider"] = wider_scores(model, run.recipe.input_size_px, shared_dir() / "data" / ev.wider,
                                           ev.min_height_px, ev.operating_threshold, wider_split(ev), "report")
        result["agreement"] = agreement_with_reference(model, reference, self._agreement_frames,
                                                       run.recipe.input_size_px, ev.operating_threshold)
        return result

    def within_limit(self, run: RunContext, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        """Absolute drops of WIDER AP and recall both within ``max_accuracy_drop``."""
        limit = run.recipe.max_accuracy_drop
        w, r = scores["wider"], reference["wider"]
        return (r["ap"] - w["ap"]) <= limit and (r["recall"] - w["recall"]) <= limit

    def headline(self, scores: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
        w, r, a = scores["wider"], reference["wider"], scores["agreement"]
        return {"ap": w["ap"], "recall": w["recall"], "ap_delta_pt": 100 * (w["ap"] - r["ap"]),
                "recall_delta_pt": 100 * (w["recall"] - r["recall"]), "found_share": a["found_share"],
                "mean_box_iou": a["mean_box_iou"], "mean_landmark_error_px": a["mean_landmark_error_px"]}

