"""Detector QAT (ims_runtime/toolchain/detector_qat.py): the quantizable RetinaFace computes exactly what the official
network does before fake quantisation; a few QAT steps + convert + export give a QDQ ONNX that ONNX Runtime loads
and the runtime's detector stage uses to find the driver's face on held-apart footage (video04). Real weights, real
footage, real ORT; the step count is tiny — training for real is ``ims-opt run deploy/recipes/detector.yaml``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import shared

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from ims_runtime.toolchain import detector_qat
from ims_runtime.toolchain.models.retinaface import load_official

INPUT_WH = (320, 192)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def official() -> Path:
    return shared("models", "retinaface", "mobilenet0.25_Final.pth")


def _frames(clip: str, indices: tuple[int, ...]) -> list[np.ndarray]:
    import cv2

    frames = []
    capture = cv2.VideoCapture(str(shared("data", "videos", clip)))
    for index in indices:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, f"cannot read {clip} frame {index}"
        frames.append(frame)
    capture.release()
    return frames


def _letterboxed(image: np.ndarray) -> torch.Tensor:
    from ims_runtime.stages.face_detector import Letterboxer

    return torch.from_numpy(Letterboxer(INPUT_WH)(image)[0].copy())


def test_quantizable_network_loads_the_official_keys_and_computes_the_same_float_outputs(official: Path) -> None:
    reference = load_official(str(official))
    net = detector_qat.quantizable_from(reference)
    assert set(net.state_dict()) == set(reference.state_dict())  # same keys: the official file loads strictly
    x = _letterboxed(_frames("video04.mp4", (0,))[0])
    for train in (False, True):  # eval: softmaxed conf; train: raw logits (what distillation sees)
        reference.train(train)
        net.train(train)
        with torch.no_grad():
            for a, b in zip(reference(x), net(x)):
                torch.testing.assert_close(b, a, rtol=0, atol=0)
    # SSH's ReLU moved into the branches, so each of them fuses to Conv+BN+ReLU; LeakyReLU stays separate
    groups = detector_qat.fusion_groups(net)
    assert sum(len(g) == 3 for g in groups) == 9 and len(groups) == 47


@pytest.mark.slow
def test_a_few_qat_steps_export_a_qdq_onnx_the_detector_stage_runs(official: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from ims_runtime.spec.schema import DetectorSpec
    from ims_runtime.stages._retinaface_decode import iou_xyxy
    from ims_runtime.stages.face_detector import FaceDetector
    from ims_runtime.types import Frame

    out = tmp_path / "qat.onnx"
    facts = detector_qat.make_qat(official, official, out, _frames("video00.mp4", (0, 60, 120, 180)), steps=4,
                                  input_wh_px=INPUT_WH, metadata={"ims.variant": "test"})
    assert facts["observers_frozen_at"] == 3 and len(facts["distill_loss_first_last"]) == 2

    ops = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops["QuantizeLinear"] >= 40 and ops["DequantizeLinear"] >= 90  # every conv's input and weight
    assert ops["Conv"] == 56 and ops["LeakyRelu"] == 38 and ops["Softmax"] == 1
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    fused = Counter(n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node)
    assert fused["QLinearConv"] >= 50  # ORT really runs it in INT8

    def detector(model: Path) -> FaceDetector:
        return FaceDetector.from_spec(DetectorSpec(model=str(model), input_size_px=INPUT_WH, precision="int8"))

    fp32 = tmp_path / "fp32.onnx"
    from ims_runtime.toolchain.export import export_retinaface

    export_retinaface(official, fp32, INPUT_WH)
    qat, reference = detector(out), detector(fp32)
    assert qat.backend.metadata["ims.precision"] == "int8"
    for index, image in enumerate(_frames("video04.mp4", (10, 90))):  # held apart: never trained on
        frame = Frame(frame_id=index, t_capture_ns=0, image_bgr=image)
        want, got = reference.detect(frame), qat.detect(frame)
        assert want.driver_index is not None and got.driver_index is not None
        box = np.array([got.faces[got.driver_index].box_xyxy_px])
        assert iou_xyxy(box, np.array([want.faces[want.driver_index].box_xyxy_px]))[0] >= 0.7
    qat.close()
    reference.close()


def test_float_stem_stays_float_and_quantisation_starts_after_it(official: Path) -> None:
    from torch import nn

    net = detector_qat.prepare(detector_qat.quantizable_from(load_official(str(official))), "body.stage1.1.2")
    stem, depthwise, pointwise = net.body.stage1[0][0], net.body.stage1[1][0], net.body.stage1[1][3]
    assert type(stem) is nn.Conv2d and type(depthwise) is nn.Conv2d  # float, BN folded into the bias
    assert stem.bias is not None and not hasattr(stem, "weight_fake_quant")
    assert hasattr(pointwise, "weight_fake_quant")  # everything after the cut is fake-quantised
    assert isinstance(net.quant, nn.Identity)
    assert isinstance(net.body.stage1[1][2][1], torch.ao.quantization.QuantStub)
    assert detector_qat.module_of_onnx_node("/body/stage1/stage1.1/stage1.1.2/LeakyRelu") == "body.stage1.1.2"
    with pytest.raises(ValueError, match="not a layer of body.stage1"):
        detector_qat.prepare(detector_qat.quantizable_from(load_official(str(official))), "fpn.output1.0")
