"""How each kind of variant is made from a recipe's float base (called by the runner, which handles skipping).

:data:`BUILDERS` maps a variant ``kind`` (the recipe schema's choices) to the function that writes it; every
variant is then finished the same way (:func:`_finish`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from ims_runtime import errors
from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.toolchain import quantize as q
from ims_runtime.toolchain.evaluate import wider_scores, wider_split
from ims_runtime.toolchain.mixed_precision import conv_sensitivity, search
from ims_runtime.toolchain.onnx_stats import compact_names
from ims_runtime.toolchain.recipe import VariantSpec
from ims_runtime.toolchain.run_context import RunContext
from ims_runtime.toolchain.shared_data import shared_dir

#: a variant builder: writes ``out`` for the variant from the run's float base, returns facts for the report
Builder = Callable[[RunContext, VariantSpec, Path, dict[str, object]], dict[str, Any]]


#: bump when :func:`_finish` changes what it writes, so stamped artefacts are rebuilt (part of every variant's key)
FINISH_VERSION = 2  # 2: all-zero weight zero points dropped


def _finish(path: Path, variant: VariantSpec, facts: dict[str, Any]) -> None:
    """Shorten the graph's names, drop symmetric weights' all-zero zero points (ORT CPU variants: the QNN flavour
    keeps the quantiser's graph as it is) and, if the variant asks, store its float layers' weights as FP16.

    Idempotent (a finished file has short names and no float32 float-layer weights left), so the mixed-precision
    search can finish each trial — it must score exactly what ships — and the builder can finish the result."""
    model = compact_names(onnx.load(str(path)))
    if variant.kind in ("ptq", "mixed"):
        q.drop_zero_weight_zero_points(model)
    if variant.float_weights == "fp16" and variant.kind in ("ptq", "mixed"):
        saved = q.store_float_weights_fp16(model)
        if saved:  # 0 on the second pass over a mixed-precision trial that was already finished
            facts["float_weights_fp16_saved_bytes"] = saved
    atomic_write_bytes(path, model.SerializeToString())


def build_variant(run: RunContext, variant: VariantSpec, out: Path) -> dict[str, Any]:
    """Write ``out`` for ``variant``; return facts for the report (excluded layers, search log, ...)."""
    builder = BUILDERS.get(variant.kind)
    if builder is None:  # the recipe schema lists the kinds, and a test checks BUILDERS covers them
        raise errors.IMSError(errors.SPEC_INVALID, f"unknown variant kind {variant.kind!r}",
                              f"known: {', '.join(sorted(BUILDERS))}")
    meta: dict[str, object] = {"ims.recipe": run.recipe.name, "ims.variant": variant.name}
    facts = builder(run, variant, out, meta)
    _finish(out, variant, facts)
    return facts


def _fp32(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    """The float base itself: the yardstick every other variant is scored and timed against."""
    atomic_write_bytes(out, run.float_model(variant.base).read_bytes())
    return {}


def _fp16(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    q.convert_fp16(run.float_model(variant.base), out, meta)
    return {}


def _dynamic(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    q.quantize_dynamic_int8(run.preprocessed(variant.base), out, meta)
    return {}


def _ptq(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    q.quantize_static_qdq(run.preprocessed(variant.base), out, run.calibration_tensors, variant.method,
                          nodes_to_exclude=variant.keep_float, float_bias=variant.float_bias, metadata=meta)
    return {"kept_float": variant.keep_float}


def _qnn(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    q.quantize_qnn(run.preprocessed(variant.base), out, run.calibration_tensors,
                   activation_bits=variant.activation_bits, weight_bits=variant.weight_bits, metadata=meta)
    return {}


def _qat(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    return dict(run.build_qat(variant, out, meta))  # the family's own training (its adapter)


def _mixed(run: RunContext, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
    """Full INT8, rank Conv layers by quantisation SQNR, keep the fewest in float that meet the accuracy limit."""
    pre = run.preprocessed(variant.base)
    reference = run.results.get("fp32")
    if reference is None:
        raise errors.IMSError(errors.SPEC_INVALID, "mixed precision needs the fp32 variant evaluated first",
                              "keep the fp32 variant in the recipe")
    ev = run.recipe.evaluation
    split = wider_split(ev)
    wider_dir = shared_dir() / "data" / ev.wider

    def search_scores(model: Path) -> dict[str, Any]:
        return {"wider": wider_scores(model, run.recipe.input_size_px, wider_dir, ev.min_height_px,
                                      ev.operating_threshold, split, "search")}

    if split is not None:
        # the limit is judged against FP32 (this base's float model) on the same search images; the report
        # part stays unseen by every trial
        reference = search_scores(run.float_model(variant.base))
    with tempfile.TemporaryDirectory() as tmp:
        full = q.quantize_static_qdq(pre, Path(tmp) / "full.onnx", run.calibration_tensors, variant.method,
                                     nodes_to_exclude=variant.keep_float, float_bias=variant.float_bias)
        # sensitivity on a few calibration frames: it ranks layers, it does not measure accuracy
        ranked = conv_sensitivity(pre, full, run.calibration_tensors[::8][:8])
        trial = Path(tmp) / "trial.onnx"
        trial_facts: dict[str, Any] = {}

        def quantize(excluded: list[str]) -> Path:
            q.quantize_static_qdq(pre, trial, run.calibration_tensors, variant.method, nodes_to_exclude=excluded,
                                  float_bias=variant.float_bias, metadata=meta)
            # FP16 storage of the float layers moves borderline scores (measured: recall -0.68 pt on the deployed
            # layer set), so each trial is scored as it will ship
            _finish(trial, variant, trial_facts)
            return trial

        def accepts(model: Path) -> bool:
            scores = search_scores(model)
            ok = run.within_limit(scores, reference)
            print(f"    trial: AP {scores['wider']['ap']:.4f} recall {scores['wider']['recall']:.4f} -> "
                  f"{'within' if ok else 'outside'} the limit", flush=True)
            return ok

        model, excluded, trials = search([name for name, _ in ranked], quantize, accepts,
                                         always_float=variant.keep_float)
        atomic_write_bytes(out, model.read_bytes())
    return {**trial_facts, "kept_float": excluded, "sensitivity_sqnr_db": ranked[:10], "search": trials,
            "selected_on": (f"WIDER search part ({reference['wider']['images']} images, split by file-name hash, "
                            f"salt {split.salt!r}); the report quotes the other part"
                            if split is not None else "WIDER subset (the same data the variant is then scored on)")}


#: variant ``kind`` → builder (keys = the recipe schema's ``VariantSpec.kind`` choices)
BUILDERS: dict[str, Builder] = {
    "fp32": _fp32,
    "fp16": _fp16,
    "dynamic": _dynamic,
    "ptq": _ptq,
    "mixed": _mixed,
    "qnn": _qnn,
    "qat": _qat,
}
