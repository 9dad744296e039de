"""The compressed models ``ims-opt`` makes — QAT (detector, face-state) and structured pruning (detector,
face-state) — run in the runtime itself: the replay CLI, i.e. the whole pipeline (detector → alignment →
face-state → fatigue → policy) on a real clip, with the model swapped in through ``--set``.

Step counts are tiny (a few distillation steps): this checks that the artefacts keep the stages' contracts (input
name and layout, output names, metadata) and run on ORT CPU inside the pipeline — not their accuracy, which
``ims-opt run`` measures on held-apart data (docs/optimisation.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SPECS, cli, shared

pytest.importorskip("torch")

FRAMES = 12
FACE_STATE_FP32 = REPO / "models" / "face_state_v1.onnx"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _replay(tmp_path: Path, name: str, *overrides: str) -> list[dict]:
    out = tmp_path / f"{name}.jsonl"
    args = [a for o in overrides for a in ("--set", o)]
    result = cli("replay", "--spec", str(SPECS / "dev-cpu-fp32.yaml"), str(shared("data", "videos", "video04.mp4")),
                 "--out", str(out), "--max-frames", str(FRAMES), *args, timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, detector_model) -> list[dict]:
    return _replay(tmp_path_factory.mktemp("fp32"), "fp32")


def _frames(clip: str, count: int) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(shared("data", "videos", clip)))
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok
        frames.append(frame)
        for _ in range(29):  # about one frame a second
            capture.grab()
    capture.release()
    return frames


def _driver_found_like_the_reference(messages: list[dict], reference: list[dict], min_iou: float) -> None:
    from ims_runtime.stages._retinaface_decode import iou_xyxy

    assert len(messages) == len(reference) == FRAMES
    for got, want in zip(messages, reference):
        assert got["valid"] and got["face"]["present"], got["frame_id"]
        iou = iou_xyxy(np.array([got["face"]["box_xyxy_px"]]), np.array([want["face"]["box_xyxy_px"]]))[0]
        assert iou >= min_iou, (got["frame_id"], got["face"]["box_xyxy_px"], want["face"]["box_xyxy_px"])


@pytest.mark.slow
def test_qat_and_pruned_detectors_run_in_the_pipeline(tmp_path, reference):
    from ims_runtime.toolchain import detector_qat
    from ims_runtime.toolchain.bases import export_base
    from ims_runtime.toolchain.detector_pruning import prune_retinaface, save_pruned
    from ims_runtime.toolchain.distill import DistillConfig, distill
    from ims_runtime.toolchain.models.retinaface import load_official
    from ims_runtime.toolchain.recipe import BaseSpec

    official = shared("models", "retinaface", "mobilenet0.25_Final.pth")
    footage = _frames("video00.mp4", 4)  # calibration footage only; the replay runs video04

    qat = tmp_path / "detector_qat.onnx"  # dynamic height/width, like the deployed ORT CPU detector
    detector_qat.make_qat(official, official, qat, footage, steps=4, input_wh_px=None,
                          metadata={"ims.variant": "test"})

    teacher = load_official(str(official))
    student = prune_retinaface(load_official(str(official)), 0.3)
    distill(student, teacher, footage, DistillConfig(steps=2, batch=2))
    weights = tmp_path / "pruned30.pth"
    save_pruned(student, weights)
    pruned = export_base(BaseSpec(weights=weights.name, prune_ratio=0.3), weights, tmp_path / "detector_pruned30.onnx",
                         (640, 384))

    qat_run = _replay(tmp_path, "qat", f"stages.face_detector.model={qat}", "stages.face_detector.precision=int8")
    _driver_found_like_the_reference(qat_run, reference, min_iou=0.7)
    assert qat_run[0]["stage_backends"]["face_detector"] == {"backend": "ort_cpu", "precision": "int8"}
    # a few distillation steps cannot repair a 30 % pruning (measured: no face above the threshold even after 30;
    # the recipe distils 600): here it must load, keep the stage's contract and run every frame
    pruned_run = _replay(tmp_path, "pruned", f"stages.face_detector.model={pruned}")
    assert len(pruned_run) == FRAMES and all(m["valid"] and m["latency_ms"]["face_detector"] > 0 for m in pruned_run)
    assert pruned_run[0]["stage_backends"]["face_detector"] == {"backend": "ort_cpu", "precision": "fp32"}


@pytest.mark.slow
def test_qat_and_pruned_face_state_models_run_in_the_pipeline(tmp_path, reference):
    from ims_runtime.toolchain.calibration import FrameSample
    from ims_runtime.toolchain.face_state import compress
    from ims_runtime.toolchain.face_state.optimise import MARGIN_PX, aligned_crops

    crops = aligned_crops(FrameSample((shared("data", "videos", "video00.mp4"),), every_s=1.0, max_per_clip=8), 112)
    qat, pruned = tmp_path / "face_state_qat.onnx", tmp_path / "face_state_pruned30.onnx"
    compress.make_qat(FACE_STATE_FP32, qat, crops, steps=6, crop_size_px=112, margin_px=MARGIN_PX, metadata={})
    facts = compress.make_pruned(FACE_STATE_FP32, pruned, crops, 0.3, steps=10, crop_size_px=112,
                                 margin_px=MARGIN_PX)
    assert facts["after"]["params"] < 0.7 * facts["before"]["params"]

    for model, precision in ((qat, "int8"), (pruned, "fp32")):
        run = _replay(tmp_path, model.stem, f"stages.face_state.model={model}",
                      f"stages.face_state.precision={precision}")
        _driver_found_like_the_reference(run, reference, min_iou=0.99)  # same detector: same faces
        assert run[0]["stage_backends"]["face_state"] == {"backend": "ort_cpu", "precision": precision}
        for got in run:  # the face-state outputs arrive, decoded in their documented ranges (docs/messages.md)
            gaze, eyes = got["gaze"], got["eyes"]
            assert all(abs(gaze[k]) <= np.pi / 2 for k in ("pitch_rad", "yaw_rad")), (got["frame_id"], gaze)
            assert all(0.0 <= eyes[k] <= 1.0 for k in ("left_open", "right_open")), (got["frame_id"], eyes)
            assert type(eyes["closed"]) is bool
