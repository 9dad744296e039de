"""Optimisation recipes (``deploy/recipes/*.yaml``): what to build from which model, for which target, measured how.

A recipe names the float source, the calibration data, the held-apart evaluation data, the largest accepted
accuracy drop and the variants to build. ``ims-opt run RECIPE`` (:mod:`ims_runtime.toolchain.runner`) builds
every variant, skipping those whose inputs have not changed. Strict schema: a typo in a key is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from ims_runtime import errors
from ims_runtime.spec.schema import StrictModel


class CalibrationSpec(StrictModel):
    clips: list[str] = Field(description="clip file names under $IMS_SHARED_DIR/data/videos used to calibrate")
    every_s: float = Field(0.5, gt=0, description="one frame every this many seconds of each clip")


class WiderSplitSpec(StrictModel):
    """How the WIDER images are divided between decisions and the report (``ims_runtime/eval/data_split.py``)."""

    search_share: float = Field(0.5, gt=0, lt=1, description="fraction of images (by a sha256 of the file name) "
                                "the accuracy-aware search may decide on; the rest is only reported")
    salt: str = Field("ims-wider-split-v1", min_length=1, description="names the split; another salt draws "
                      "another, independent split")


class EvaluationSpec(StrictModel):
    wider: str | None = Field("widerface_val_subset", description="WIDER-style folder under $IMS_SHARED_DIR/data")
    wider_split: WiderSplitSpec | None = Field(
        None, description="divide WIDER into a search part (what the mixed-precision search decides on) and a "
        "report part (every variant's quoted accuracy and its within-limit verdict); without it the search "
        "decides on the images the report quotes")
    agreement_clips: list[str] = Field(description="held-apart clips for agreement with FP32 (never calibrated on)")
    every_s: float = Field(0.5, gt=0, description="one frame every this many seconds of each agreement clip")
    min_height_px: float = Field(16.0, ge=0, description="WIDER faces shorter than this (px) are ignored")
    operating_threshold: float = Field(0.6, gt=0, lt=1, description="detector score threshold used for recall")


class BenchmarkSpec(StrictModel):
    runs: int = Field(200, ge=10, description="timed calls per variant (count)")
    rounds: int = Field(10, ge=1, description="interleaved rounds the runs are split into (count)")
    threads: int = Field(1, ge=1, description="ONNX Runtime intra-op threads (count)")


class SequenceSpec(StrictModel):
    """Generated eye-openness sequences (the fatigue classifier's data): seeded streams of the project's generator."""

    calibration_seed: int = Field(description="generator seed of the calibration sequences")
    calibration_count: int = Field(200, ge=10, description="calibration sequences (count)")
    heldout_seed: int = Field(description="generator seed of the held-apart sequences (never calibrated on)")
    heldout_count: int = Field(800, ge=10, description="held-apart sequences (count)")


class AgreementLimits(StrictModel):
    """Largest accepted disagreement with FP32 for models scored by agreement (face-state, fatigue)."""

    gaze_error_deg: float | None = Field(None, gt=0, description="mean gaze angular error vs FP32 (degrees)")
    head_pose_mae_deg: float | None = Field(None, gt=0, description="head yaw/pitch/roll MAE vs FP32 (degrees)")
    eye_state_agreement: float | None = Field(None, gt=0, le=1, description="share of eyes with the same "
                                              "open/closed state as FP32 (fraction)")
    level_agreement: float | None = Field(None, gt=0, le=1, description="share of sequences with the same "
                                          "fatigue level as FP32 (fraction)")


class BaseSpec(StrictModel):
    weights: str = Field(description="float weights, looked up on the model search path (detector: PyTorch "
                         ".pth; face-state, fatigue: the project's FP32 .onnx)")
    activation: Literal["leaky_relu", "relu"] = Field("leaky_relu", description="activation of the network")
    dynamic_shape: bool = Field(False, description="export with dynamic height/width (ORT CPU: the detector's "
                                "tracking re-detects in square crops of another size); false = static input_size_px "
                                "(QNN, TensorRT)")
    distill_steps: int = Field(0, ge=0, description="if the weights are missing: self-distillation steps to make "
                               "them from the official model (0 = they must exist); pruned bases: distillation "
                               "fine-tuning steps after pruning")
    prune_ratio: float = Field(0.0, ge=0, lt=1, description="structured pruning: share of channels removed from "
                               "every prunable layer by torch-pruning (0 = none; face-state, detector)")


class VariantSpec(StrictModel):
    name: str = Field(description="variant name (file: <recipe>_<name>.onnx in the cache)")
    kind: Literal["fp32", "fp16", "dynamic", "ptq", "mixed", "qnn", "qat"] = Field(
        description="how it is made")
    base: str = Field("official", description="which float base (key of `bases`) it starts from")
    method: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="calibration method")
    keep_float: list[str] = Field(default_factory=list, description="ONNX node names kept in float (detector "
                                  "qat: only a prefix of the backbone, e.g. the stem)")
    float_bias: bool = Field(False, description="keep Conv biases float32 instead of int32 with per-channel scale "
                             "and zero point (4 instead of 12 bytes per channel; ORT CPU still fuses QLinearConv)")
    float_weights: Literal["fp32", "fp16"] = Field("fp32", description="storage of the weights of layers kept in "
                                                   "float (ptq, mixed): fp16 halves their bytes; ONNX Runtime casts "
                                                   "them to float32 once at load, so compute stays float32")
    activation_bits: Literal[8, 16] = Field(8, description="QNN activation bits")
    weight_bits: Literal[4, 8] = Field(8, description="QNN weight bits")
    steps: int = Field(300, ge=1, description="QAT: self-distillation training steps (count)")


class Recipe(StrictModel):
    name: str = Field(description="recipe name; prefixes every artefact")
    model: Literal["retinaface", "face_state", "fatigue"] = Field(description="network family (picks the adapter "
                                                                  "in families.py)")
    target: Literal["ort_cpu", "qnn_htp", "tensorrt"] = Field("ort_cpu", description="deployment target")
    input_size_px: tuple[int, int] = Field((640, 384), description="static network input width, height (px)")
    max_accuracy_drop: float = Field(0.01, gt=0, lt=1, description="largest accepted absolute drop of AP and "
                                     "recall (fraction, 0.01 = 1 percentage point) against FP32")
    bases: dict[str, BaseSpec] = Field(description="float models the variants start from; `official` required")
    calibration: CalibrationSpec | None = Field(None, description="video calibration data (detector, face-state)")
    evaluation: EvaluationSpec | None = Field(None, description="video evaluation data (detector, face-state)")
    sequences: SequenceSpec | None = Field(None, description="generated sequences (fatigue)")
    limits: AgreementLimits = Field(default_factory=AgreementLimits, description="agreement limits vs FP32 "
                                    "(face-state, fatigue; the detector uses max_accuracy_drop)")
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec)
    variants: list[VariantSpec]
    deploy: str | None = Field(None, description="variant recommended for deployment on the target")


def load_recipe(path: Path) -> Recipe:
    if not path.is_file():
        raise errors.IMSError(errors.SPEC_NOT_FOUND, f"recipe {path} does not exist", "see deploy/recipes/")
    try:
        recipe = Recipe.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise errors.IMSError(errors.SPEC_INVALID, f"{path}: {exc}", "fix the recipe") from exc
    names = [v.name for v in recipe.variants]
    if len(set(names)) != len(names) or "official" not in recipe.bases:
        raise errors.IMSError(errors.SPEC_INVALID, f"{path}: variant names must be unique and `bases` must have "
                              "`official`", "fix the recipe")
    video = recipe.calibration is not None and recipe.evaluation is not None
    if (recipe.model == "fatigue") == video or (recipe.model == "fatigue" and recipe.sequences is None):
        raise errors.IMSError(errors.SPEC_INVALID, f"{path}: `{recipe.model}` needs "
                              + ("`sequences`" if recipe.model == "fatigue" else "`calibration` and `evaluation`"),
                              "fix the recipe")
    return recipe
