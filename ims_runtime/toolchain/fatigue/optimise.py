"""``ims-opt run deploy/recipes/fatigue-opt.yaml``: the fatigue classifier's adapter for the optimisation runner.

Data: eye-openness sequences from the project's generator (:mod:`.generator`), binned exactly as the runtime bins
them (:func:`.train.sequence_input`). Calibration and held-apart sequences come from two different seeds (the
recipe's ``sequences``), neither of them the training seed. Scores are agreement with FP32 on the held-apart
sequences: the fatigue level (the runtime's KSS boundaries, :func:`level_for_kss`) and the KSS-equivalent, plus
each variant's level accuracy against the generator's truth for reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime.spec.schema import FatigueWindowSpec
from ims_runtime.stages.fatigue import LEVEL_EDGES_KSS
from ims_runtime.toolchain.adapters import ModelAdapter
from ims_runtime.toolchain.benchmark import cpu_session
from ims_runtime.toolchain.run_context import RunContext
from ims_runtime.toolchain.stamps import is_fresh, stamp_key, write_stamp


def _sequences(run: RunContext, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (N, 3, T) float32, generator KSS (N,)) for ``cal`` or ``heldout``, cached next to the artefacts."""
    from ims_runtime.toolchain.fatigue.train import generated  # imports torch: only a cache miss needs it

    spec = run.recipe.sequences
    assert spec is not None  # load_recipe checks
    seed, count = ((spec.calibration_seed, spec.calibration_count) if which == "cal"
                   else (spec.heldout_seed, spec.heldout_count))
    cache = run.out / f"sequences_{which}.npz"
    key = stamp_key("sequences", seed, count, FatigueWindowSpec().model_dump())
    if not is_fresh(cache, key):
        sequences, x = generated(count, seed, FatigueWindowSpec())
        with cache.open("wb") as f:
            np.savez(f, x=x.astype(np.float32), kss=np.array([s.kss for s in sequences], np.float32))
        write_stamp(cache, key)
    with np.load(cache) as data:
        return data["x"], data["kss"]


def kss_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    """(N, 3, T) → (N,) KSS-equivalent on ONNX Runtime CPU, one sequence at a time (as the runtime runs it)."""
    session = cpu_session(model)
    name = session.get_inputs()[0].name
    return np.array([session.run(["kss"], {name: row[None]})[0][0, 0] for row in x], np.float64)


def levels(kss: np.ndarray) -> np.ndarray:
    return np.searchsorted(LEVEL_EDGES_KSS, kss, side="right")  # the runtime's level_for_kss, vectorised


class FatigueAdapter(ModelAdapter):
    columns = (("level agreement vs FP32", "level_agreement", "{level_agreement:.4f}"),
               ("KSS MAE vs FP32", "kss_mae_vs_fp32", "{kss_mae_vs_fp32:.3f}"),
               ("level accuracy vs truth", "level_accuracy", "{level_accuracy:.4f}"))

    def data_description(self, run: RunContext) -> dict[str, Any]:
        assert run.recipe.sequences is not None
        return {"sequences": run.recipe.sequences.model_dump(), "generator": "ims_runtime.toolchain.fatigue.generator"}

    def calibration_tensors(self, run: RunContext) -> np.ndarray:
        return _sequences(run, "cal")[0]

    def export_float(self, run: RunContext, base_name: str, weights: Path, out: Path) -> None:
        shutil.copyfile(weights, out)  # the project's FP32 model is already the float ONNX

    def evaluate(self, run: RunContext, model: Path, reference: Path) -> dict[str, Any]:
        x, truth = _sequences(run, "heldout")
        pred, ref = kss_outputs(model, x), kss_outputs(reference, x)
        return {"agreement": {"sequences": len(x), "level_agreement": float((levels(pred) == levels(ref)).mean()),
                              "kss_mae_vs_fp32": float(np.abs(pred - ref).mean()),
                              "kss_max_abs_vs_fp32": float(np.abs(pred - ref).max()),
                              "level_accuracy": float((levels(pred) == levels(truth)).mean())}}

    def within_limit(self, run: RunContext, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        limit = run.recipe.limits.level_agreement
        return limit is None or scores["agreement"]["level_agreement"] >= limit

    def headline(self, scores: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
        a = scores["agreement"]
        return {k: a[k] for k in ("level_agreement", "kss_mae_vs_fp32", "level_accuracy", "sequences")}
