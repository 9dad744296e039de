"""PTQ determinism and step skipping on a small real recipe (RetinaFace at 320x192, a few real frames)."""

import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from conftest import shared

pytest.importorskip("torch")

from ims_runtime.toolchain import quantize as q
from ims_runtime.toolchain.recipe import load_recipe
from ims_runtime.toolchain.runner import RecipeRun

RECIPE = """
name: tiny
model: retinaface
input_size_px: [320, 192]
bases:
  official: {weights: retinaface/mobilenet0.25_Final.pth}
calibration: {clips: [video00.mp4], every_s: 4.0}
evaluation: {agreement_clips: [video04.mp4], every_s: 4.0}
variants:
  - {name: fp32, kind: fp32}
  - {name: int8, kind: ptq, method: METHOD}
"""


@pytest.mark.slow
def test_same_recipe_and_data_give_the_same_scales_and_unchanged_steps_are_skipped(tmp_path, monkeypatch):
    shared("models", "retinaface", "mobilenet0.25_Final.pth")
    monkeypatch.setenv("IMS_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(RECIPE).replace("METHOD", "minmax"))
    recipe = load_recipe(path)
    run = RecipeRun(recipe, path)
    model, _ = run.build(recipe.variants[1])
    scales = q.quantization_parameters(model)
    assert len(scales) > 20 and run.skipped == []

    # a fresh run of the same recipe skips the build; rebuilding from scratch gives identical parameters
    again = RecipeRun(recipe, path)
    again.build(recipe.variants[1])
    assert again.skipped == ["build int8"]
    rebuilt = q.quantize_static_qdq(run.preprocessed("official"), tmp_path / "again.onnx", run.calibration_tensors)
    assert q.quantization_parameters(rebuilt) == q.quantization_parameters(
        q.quantize_static_qdq(run.preprocessed("official"), tmp_path / "again2.onnx", run.calibration_tensors))

    # other data change the scales (the test can fail: the parameters really come from the frames)
    other = q.quantize_static_qdq(run.preprocessed("official"), tmp_path / "other.onnx",
                                  run.calibration_tensors[:1] * 0.5)
    assert q.quantization_parameters(other) != q.quantization_parameters(rebuilt)

    # a changed recipe section rebuilds
    path.write_text(textwrap.dedent(RECIPE).replace("METHOD", "percentile"))
    changed = RecipeRun(load_recipe(path), path)
    changed.build(load_recipe(path).variants[1])
    assert changed.skipped == []

    # the INT8 model runs in ONNX Runtime and has INT8 convolutions
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": run.calibration_tensors[:1]})
    assert [o.shape[-1] for o in outputs] == [4, 2, 10] and np.isfinite(outputs[0]).all()
