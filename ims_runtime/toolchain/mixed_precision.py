"""Accuracy-aware mixed precision: keep the fewest, most sensitive layers in float until the accuracy holds.

Sensitivity comes from ONNX Runtime's own QDQ debugging tools (``onnxruntime.quantization.qdq_loss_debug``): the
fully quantised model and the float model are run on a few held-apart frames with every activation exposed, and
each quantised tensor's signal-to-quantisation-noise ratio (SQNR, dB; higher = less damage) against its float
value is computed. Nodes producing the lowest-SQNR tensors are the candidates; :func:`search` excludes 1, 2, 4, ...
of them (``nodes_to_exclude`` → they stay float on the CPU) until ``accepts(model)`` says the accuracy drop is
within the recipe's limit, then returns that smallest set.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from ims_runtime.toolchain.calibration import TensorCalibrationReader


def conv_sensitivity(float_model: Path, qdq_model: Path, tensors: np.ndarray) -> list[tuple[str, float]]:
    """(Conv node name, SQNR dB of its output in the QDQ model vs float), most damaged first."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    input_name = onnx.load(str(float_model), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        float_aug = Path(tmp) / "float_aug.onnx"
        qdq_aug = Path(tmp) / "qdq_aug.onnx"
        modify_model_output_intermediate_tensors(str(float_model), str(float_aug))
        modify_model_output_intermediate_tensors(str(qdq_model), str(qdq_aug))
        float_acts = collect_activations(str(float_aug), TensorCalibrationReader(input_name, tensors))
        qdq_acts = collect_activations(str(qdq_aug), TensorCalibrationReader(input_name, tensors))
    errors_by_tensor = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    producers = {out: node.name for node in onnx.load(str(float_model)).graph.node if node.op_type == "Conv"
                 for out in node.output}
    ranked = [(producers[t], float(err["qdq_err"])) for t, err in errors_by_tensor.items()
              if t in producers and "qdq_err" in err]
    return sorted(ranked, key=lambda item: item[1])


def search(ranked_nodes: list[str], quantize: Callable[[list[str]], Path], accepts: Callable[[Path], bool],
           always_float: list[str] | None = None, max_excluded: int = 32) -> tuple[Path, list[str], list[dict]]:
    """Smallest prefix of ``ranked_nodes`` whose exclusion makes ``accepts`` true.

    Sizes 0, 1, 2, 4, ... are tried until one is accepted, then the gap to the last rejected size is bisected,
    so the answer is the smallest accepted prefix (assuming more float layers never hurt). Returns (model,
    excluded nodes, trial log). If no size up to ``max_excluded`` is accepted, the last trial is returned and the
    log says so; the caller reports it rather than pretending.
    """
    base = list(always_float or [])
    trials: list[dict] = []
    limit = min(max_excluded, len(ranked_nodes))

    def excluded_for(count: int) -> list[str]:
        return base + [n for n in ranked_nodes[:count] if n not in base]

    def trial(count: int) -> bool:
        ok = accepts(quantize(excluded_for(count)))
        trials.append({"excluded_sensitive": count, "accepted": ok})
        return ok

    rejected, count = -1, 0
    while not trial(count):
        rejected = count
        if count >= limit:
            return quantize(excluded_for(count)), excluded_for(count), trials
        count = 1 if count == 0 else min(count * 2, limit)
    accepted = count
    while accepted - rejected > 1:
        middle = (accepted + rejected) // 2
        if trial(middle):
            accepted = middle
        else:
            rejected = middle
    return quantize(excluded_for(accepted)), excluded_for(accepted), trials
