"""Face-state and fatigue optimisation: INT8 agreement with FP32 on held-apart data, pruning, QAT export, and the
runner's step skipping for the new recipe families. Real models (models/), real footage (../shared), real ORT."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared

pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from ims_runtime.toolchain import quantize as q
from ims_runtime.toolchain.calibration import FrameSample
from ims_runtime.toolchain.face_state import compress
from ims_runtime.toolchain.face_state.optimise import (
    agreement,
    aligned_crops,
    crops_to_tensors,
    outputs,
)

FP32 = REPO / "models" / "face_state_v1.onnx"
#: held-apart INT8 (and QAT) outputs must track FP32 this closely: the recipe's limits (deploy/recipes/
#: face-state-opt.yaml, 2 deg) plus margin for the few crops / steps a unit test can afford
GAZE_TOLERANCE_DEG = 3.0
HEAD_TOLERANCE_DEG = 3.0


@pytest.fixture(scope="module")
def crops(detector_model) -> dict[str, np.ndarray]:
    """Wide aligned crops from calibration footage (video00) and the held-apart clip (video04)."""
    videos = shared("data", "videos")
    return {"cal": aligned_crops(FrameSample((videos / "video00.mp4",), every_s=1.0, max_per_clip=12), 112),
            "eval": aligned_crops(FrameSample((videos / "video04.mp4",), every_s=1.0, max_per_clip=6), 112)}


def test_int8_face_state_agrees_with_fp32_on_held_apart_crops(crops, tmp_path):
    assert len(crops["cal"]) >= 5 and len(crops["eval"]) >= 3
    cal = crops_to_tensors(FP32, crops["cal"], 112)
    pre = q.preprocess(FP32, tmp_path / "pre.onnx")
    int8 = q.quantize_static_qdq(pre, tmp_path / "int8.onnx", cal)
    held = crops_to_tensors(FP32, crops["eval"], 112)
    scores = agreement(outputs(int8, held), outputs(FP32, held), eye_closed_below=0.25)
    assert scores["gaze_error_deg_mean"] < GAZE_TOLERANCE_DEG
    assert scores["head_pose_mae_deg"] < HEAD_TOLERANCE_DEG
    assert scores["eye_state_agreement"] >= 0.9
    # the comparison can fail: a model that ignores its input is far from FP32
    constant = outputs(FP32, np.zeros_like(held))
    assert agreement(constant, outputs(FP32, held), 0.25)["gaze_error_deg_mean"] > scores["gaze_error_deg_mean"]
    assert (tmp_path / "int8.onnx").stat().st_size < 0.5 * FP32.stat().st_size


def test_pruning_really_removes_channels_and_keeps_the_outputs():
    import torch

    net = compress.folded_net_from_onnx(FP32)
    x = torch.zeros(1, 3, 112, 112)
    before_params = compress.count_params(net)
    before_channels = [seq[0].out_channels for seq in net.features]
    compress.prune(net, 0.3, 112)
    after_channels = [seq[0].out_channels for seq in net.features]
    assert compress.count_params(net) < 0.8 * before_params
    assert all(a < b for a, b in zip(after_channels, before_channels))
    assert compress.count_macs(net, 112) < 0.8 * compress.count_macs(compress.folded_net_from_onnx(FP32), 112)
    assert [t.shape for t in compress.FaceStateExport(net)(x)] == [(1, 2), (1, 3), (1, 2), (1, 1), (1, 1)]


def test_folded_rebuild_matches_the_onnx_model():
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
    session = ort.InferenceSession(str(FP32), providers=["CPUExecutionProvider"])
    net = compress.FaceStateExport(compress.folded_net_from_onnx(FP32))
    with torch.no_grad():
        for row in x:
            ours = [t.numpy() for t in net(torch.from_numpy(row[None]))]
            for a, b in zip(ours, session.run(None, {"face": row[None]})):
                np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.slow
def test_qat_export_runs_on_ort_cpu_and_tracks_fp32(crops, tmp_path):
    import onnx

    out = tmp_path / "qat.onnx"
    facts = compress.make_qat(FP32, out, crops["cal"], steps=6, crop_size_px=112, margin_px=16, metadata={})
    assert facts["qat_steps"] == 6
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    held = crops_to_tensors(FP32, crops["eval"], 112)
    scores = agreement(outputs(out, held), outputs(FP32, held), eye_closed_below=0.25)
    assert scores["gaze_error_deg_mean"] < GAZE_TOLERANCE_DEG
    assert scores["head_pose_mae_deg"] < HEAD_TOLERANCE_DEG


FATIGUE_RECIPE = """
name: tiny_fatigue
model: fatigue
limits: {level_agreement: 0.9}
bases:
  official: {weights: fatigue_tcn.onnx}
sequences: {calibration_seed: 7, calibration_count: 12, heldout_seed: 99, heldout_count: 20}
benchmark: {runs: 10, rounds: 1}
variants:
  - {name: fp32, kind: fp32}
  - {name: int8, kind: ptq, method: METHOD}
"""


def _fatigue_recipe(tmp_path: Path, method: str):
    from ims_runtime.toolchain.recipe import load_recipe

    path = tmp_path / "tiny_fatigue.yaml"
    path.write_text(textwrap.dedent(FATIGUE_RECIPE).replace("METHOD", method))
    return path, load_recipe(path)


def test_fatigue_recipe_scores_int8_and_skips_unchanged_steps(tmp_path, monkeypatch):
    from ims_runtime.toolchain.runner import RecipeRun

    monkeypatch.setenv("IMS_CACHE_DIR", str(tmp_path / "cache"))
    path, recipe = _fatigue_recipe(tmp_path, "minmax")
    summary = RecipeRun(recipe, path).run()
    fp32, int8 = summary["variants"]["fp32"], summary["variants"]["int8"]
    assert summary["skipped"] == []
    # FP32 scored against itself agrees exactly: the scoring compares like with like
    assert fp32["agreement"]["level_agreement"] == 1.0 and fp32["agreement"]["kss_mae_vs_fp32"] == 0.0
    assert int8["agreement"]["sequences"] == 20
    assert int8["within_limit"] == (int8["agreement"]["level_agreement"] >= 0.9)  # the recipe's limit decides
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert int8["latency"]["p50_ms"] > 0
    assert set(int8["headline"]) == {"level_agreement", "kss_mae_vs_fp32", "level_accuracy", "sequences"}

    again = RecipeRun(recipe, path).run()
    assert set(again["skipped"]) == {"build fp32", "build int8", "evaluate fp32", "evaluate int8"}

    path, changed = _fatigue_recipe(tmp_path, "percentile")
    rerun = RecipeRun(changed, path).run()
    assert "build int8" not in rerun["skipped"] and "build fp32" in rerun["skipped"]


def test_recipes_in_the_repository_load():
    from ims_runtime import errors
    from ims_runtime.toolchain.recipe import load_recipe

    for name in ("detector", "face-state-opt", "fatigue-opt"):
        load_recipe(REPO / "deploy" / "recipes" / f"{name}.yaml")
    with pytest.raises(errors.IMSError):  # the face-state TRAINING recipe is not an optimisation recipe
        load_recipe(REPO / "deploy" / "recipes" / "face-state.yaml")
