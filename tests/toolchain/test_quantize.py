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


@pytest.mark.slow
def test_weight_zero_points_and_fp16_float_weights_shrink_the_file_and_keep_the_computation(tmp_path, monkeypatch):
    """The two rewrites ``ims-opt`` applies after PTQ: dropping all-zero weight zero points changes nothing but the
    bytes; FP16 storage of the float layers' weights changes them only by FP16 rounding (ORT folds the Cast)."""
    import onnx

    shared("models", "retinaface", "mobilenet0.25_Final.pth")
    monkeypatch.setenv("IMS_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(RECIPE).replace("METHOD", "minmax"))
    run = RecipeRun(load_recipe(path), path)
    stem = ["/body/stage1/stage1.0/stage1.0.0/Conv", "/fpn/output2/output2.0/Conv"]
    plain = q.quantize_static_qdq(run.preprocessed("official"), tmp_path / "plain.onnx", run.calibration_tensors,
                                  nodes_to_exclude=stem, float_bias=True)
    x = run.calibration_tensors[:1]

    def outputs(proto: onnx.ModelProto) -> list[np.ndarray]:
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": x})

    reference = outputs(onnx.load(str(plain)))
    model = onnx.load(str(plain))
    assert q.drop_zero_weight_zero_points(model) > 0
    assert all(len(n.input) == 2 for n in model.graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8})
    assert all(np.array_equal(a, b) for a, b in zip(outputs(model), reference))

    size_before = len(model.SerializeToString())
    saved = q.store_float_weights_fp16(model)
    # the two float convs: 3*8*3*3 + 128*64 weights, 2 bytes saved each
    assert saved == 2 * (3 * 8 * 9 + 128 * 64)
    assert len(model.SerializeToString()) <= size_before - saved + 200
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert len(casts) == 2 and q.store_float_weights_fp16(model) == 0  # idempotent
    changed = outputs(model)
    moved = np.abs(changed[1] - reference[1])[0, :, 1]
    # FP16 rounding is ~5e-4 relative, but INT8 activations downstream can flip a rounding step and amplify it on
    # a few anchors (measured on WIDER: recall -0.68 pt, why the deployed detector keeps float32 weights)
    assert moved.max() > 0 and (moved > 1.5 / 255).mean() < 0.05
