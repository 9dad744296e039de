"""QNN HTP backend: config and guard (fast), then real runs on Qualcomm's HTP simulator (``-m qnn``, slow).

Simulator tests use the real onnxruntime-qnn plugin, the project's INT8 QDQ RetinaFace (built from the official
weights and calibrated on video00/video01) and real frames from video02/video04, which calibration never saw.

Tolerance for HTP vs the ONNX Runtime CPU EP on the *same* INT8 model. HTP rounds requantisation differently from
the CPU EP (the quantised input already differs by up to half a step) and the differences grow through ~40
layers, so raw outputs differ by several quantisation steps; measured against the FP32 model, HTP's error is of the
same size as the CPU INT8 model's own. What must agree is the detection result:
  * every face the CPU INT8 run finds with score >= 0.8 is found on HTP (IoU >= 0.5),
  * matched faces: |score difference| <= 0.1 and median box IoU >= 0.9.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SPECS, cli, shared

from ims_runtime import errors
from ims_runtime.backends import open_chain
from ims_runtime.backends.ort_cpu import OrtCpuBackend, OrtCpuConfig
from ims_runtime.backends.qnn import CPU_EP, EP_NAME, QnnBackend, QnnConfig
from ims_runtime.stages.model import OpenedModel

INPUT_WH = (320, 192)
#: held-apart frames (clip, frame index): not used for calibration
TEST_FRAMES = (("video02.mp4", 10), ("video02.mp4", 130), ("video04.mp4", 10), ("video04.mp4", 90))

try:
    import onnxruntime_qnn  # noqa: F401

    HAVE_QNN = True
except ImportError:
    HAVE_QNN = False

needs_qnn = pytest.mark.skipif(not HAVE_QNN, reason="onnxruntime-qnn not installed (pip install '.[qnn]')")


# -- fast: config and guard ----------------------------------------------------------------------------------

def test_config_defaults_target_qcs8255_class_and_forbid_unknown_keys() -> None:
    cfg = QnnConfig()
    assert (cfg.soc_model, cfg.htp_arch, cfg.allow_cpu_fallback) == (52, 73, False)
    with pytest.raises(ValueError, match="extra"):
        QnnConfig(soc=52)  # type: ignore[call-arg]


def test_fp16_without_soc_model_is_rejected_at_validation() -> None:
    with pytest.raises(ValueError, match="fp16_precision needs soc_model"):
        QnnConfig(soc_model=None)
    assert QnnConfig(soc_model=None, fp16_precision=False).soc_model is None


def test_missing_plugin_gives_backend_unavailable_and_the_chain_moves_on(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    model = _tiny_model(tmp_path, ["Relu"])
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)  # makes `import onnxruntime_qnn` raise ImportError
    with pytest.raises(errors.IMSError) as info:
        QnnBackend(model, QnnConfig())
    assert info.value.code is errors.BACKEND_UNAVAILABLE
    assert "ims-runtime[qnn]" in (info.value.hint or "")
    opened = open_chain(model, [QnnConfig(), OrtCpuConfig()], "test")
    assert opened.backend.key == "ort_cpu" and opened.skipped[0]["code"] == "BACKEND_UNAVAILABLE"


# -- simulator ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's INT8 QDQ RetinaFace for QNN (the cached build if present, else built here, ~15 s)."""
    pytest.importorskip("onnx")
    from ims_runtime import paths

    cached = paths.find_file("retinaface_mnet025_int8_qnn_320x192.onnx")
    if cached is not None:
        return cached
    weights = paths.find_file("retinaface/mobilenet0.25_Final.pth")
    if weights is None:
        pytest.skip("RetinaFace weights not on IMS_MODEL_PATH")
    pytest.importorskip("torch")
    from ims_runtime.toolchain.export import export_retinaface
    from ims_runtime.toolchain.quantize import quantize_qnn
    from ims_runtime.toolchain.quantize_qnn import CALIBRATION_CLIPS, qnn_calibration_tensors

    folder = tmp_path_factory.mktemp("qnn_model")
    float_path = export_retinaface(weights, folder / "rf_fp32.onnx", INPUT_WH)
    tensors = qnn_calibration_tensors([shared("data", "videos", c) for c in CALIBRATION_CLIPS], INPUT_WH)
    return quantize_qnn(float_path, folder / "retinaface_mnet025_int8_qnn_320x192.onnx", tensors)


@pytest.fixture(scope="module")
def face_state_int8() -> Path:
    """The catalogue's face-state INT8 (built by `ims-runtime models build`), resolved before ``cache_dir``
    points IMS_CACHE_DIR at an empty folder."""
    from ims_runtime import catalog

    return catalog.resolve("face_state_v1_int8")


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IMS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _frames() -> list[np.ndarray]:
    import cv2

    frames = []
    for clip, index in TEST_FRAMES:
        capture = cv2.VideoCapture(str(shared("data", "videos", clip)))
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        capture.release()
        assert ok, f"cannot read {clip} frame {index}"
        frames.append(frame)
    return frames


def _tiny_model(folder: Path, ops: list[str]) -> Path:
    """A chain of unary float ops on a (1, 8) tensor, e.g. ["Relu", "Erf"]."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    names = ["x"] + [f"t{i}" for i in range(len(ops) - 1)] + ["y"]
    nodes = [helper.make_node(op, [names[i]], [names[i + 1]]) for i, op in enumerate(ops)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / f"tiny_{'_'.join(ops)}.onnx"
    onnx.save(model, path)
    return path


@needs_qnn
@pytest.mark.qnn
@pytest.mark.slow
def test_int8_detector_runs_entirely_on_htp_and_matches_cpu_int8(int8_model: Path, cache_dir: Path) -> None:
    from ims_runtime.spec.schema import DetectorSpec
    from ims_runtime.stages._retinaface_decode import iou_xyxy
    from ims_runtime.stages.face_detector import FaceDetector
    from ims_runtime.types import Frame

    htp = QnnBackend(int8_model, QnnConfig())
    assert htp.placement.nodes_by_device.get(EP_NAME, 0) > 400
    assert htp.placement.nodes_by_device.get(CPU_EP, 0) == 0
    assert htp.describe()["compute_precision"] == "qdq"
    spec = DetectorSpec(model=str(int8_model), input_size_px=INPUT_WH, precision="int8", score_threshold=0.5)
    on_htp = FaceDetector(spec, OpenedModel.from_backend(htp))
    on_cpu = FaceDetector(spec, OpenedModel.from_backend(OrtCpuBackend(int8_model, OrtCpuConfig())))
    ious, score_diffs, found = [], [], 0
    for index, image in enumerate(_frames()):
        frame = Frame(frame_id=index, t_capture_ns=0, image_bgr=image)
        cpu_faces, htp_faces = on_cpu.detect(frame).faces, on_htp.detect(frame).faces
        confident = [f for f in cpu_faces if f.score >= 0.8]
        found += len(confident)
        for face in confident:
            assert htp_faces, f"frame {TEST_FRAMES[index]}: HTP found no face, CPU INT8 found {face}"
            iou = iou_xyxy(np.array([face.box_xyxy_px]), np.array([f.box_xyxy_px for f in htp_faces]))[0]
            best = int(np.argmax(iou))
            assert iou[best] >= 0.5, f"frame {TEST_FRAMES[index]}: CPU face {face.box_xyxy_px} not found on HTP"
            ious.append(iou[best])
            score_diffs.append(abs(face.score - htp_faces[best].score))
    assert found >= 4, "the test frames should hold confident faces"
    assert max(score_diffs) <= 0.1, score_diffs
    assert float(np.median(ious)) >= 0.9, ious


@needs_qnn
@pytest.mark.qnn
@pytest.mark.slow
def test_context_cache_round_trip_and_stale_context_is_rebuilt(int8_model: Path, cache_dir: Path) -> None:
    feed = {"input": np.random.default_rng(0).normal(0, 40, (1, 3, INPUT_WH[1], INPUT_WH[0])).astype(np.float32)}
    first = QnnBackend(int8_model, QnnConfig())
    assert first.context_status == "built" and first.context_path is not None and first.context_path.is_file()
    reference = first.run(feed)
    second = QnnBackend(int8_model, QnnConfig())
    assert second.context_status == "hit" and second.context_path == first.context_path
    assert second.placement.nodes_by_device == first.placement.nodes_by_device  # from the sidecar
    for a, b in zip(reference, second.run(feed)):
        np.testing.assert_array_equal(a, b)
    # another SoC is another key, so another file: never a context compiled for the wrong chip
    other = QnnBackend(int8_model, QnnConfig(soc_model=43, htp_arch=73))
    assert other.context_status == "built" and other.context_path != first.context_path
    # a damaged (or foreign) context binary is discarded and rebuilt instead of failing at run time
    first.context_path.write_bytes(b"not an onnx model")
    rebuilt = QnnBackend(int8_model, QnnConfig())
    assert rebuilt.context_status == "built"
    np.testing.assert_array_equal(rebuilt.run(feed)[1], reference[1])


def _ims_opt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ims_runtime.toolchain.cli", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_ims_opt_compile_of_a_missing_model_is_a_coded_one_line_error(tmp_path: Path) -> None:
    result = _ims_opt("compile", "qnn", str(tmp_path / "nope.onnx"))
    assert result.returncode == errors.MODEL_NOT_FOUND.exit_code
    assert result.stderr.startswith("error[MODEL_NOT_FOUND]") and "Traceback" not in result.stderr


@needs_qnn
@pytest.mark.qnn
@pytest.mark.slow
def test_ims_opt_compile_fills_the_cache_entry_the_backend_then_loads(int8_model: Path, cache_dir: Path) -> None:
    """One QNN compiler: ``ims-opt compile qnn`` is the backend's own compile, so the runtime's first load with
    the same options (the spec defaults) is a cache hit on the file it wrote, and another SoC is another file."""
    def said(result: subprocess.CompletedProcess) -> str:  # the QNN library and the log also write to stdout
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip().splitlines()[-1]

    first = said(_ims_opt("compile", "qnn", str(int8_model)))
    assert first.startswith("compiled: ")
    context = Path(first.split(": ", 1)[1])
    assert context.parent == cache_dir / "qnn_context" and context.is_file()
    backend = QnnBackend(int8_model, QnnConfig())
    assert (backend.context_status, backend.context_path) == ("hit", context)
    backend.close()
    assert said(_ims_opt("compile", "qnn", str(int8_model))) == f"already in the cache: {context}"
    other = said(_ims_opt("compile", "qnn", str(int8_model), "--soc", "43"))
    assert other.startswith("compiled: ") and Path(other.split(": ", 1)[1]) != context


@needs_qnn
@pytest.mark.qnn
@pytest.mark.slow
def test_model_htp_cannot_place_is_refused_and_the_chain_falls_back(tmp_path: Path, cache_dir: Path) -> None:
    # Erf has no HTP implementation in QNN 2.51 (Relu has): the session would silently put it on the CPU
    model = _tiny_model(tmp_path, ["Relu", "Erf"])
    with pytest.raises(errors.IMSError) as info:
        QnnBackend(model, QnnConfig())
    assert info.value.code is errors.BACKEND_PLACEMENT
    assert "Erf x1" in info.value.message and "1 of 2 nodes" in info.value.message
    opened = open_chain(model, [QnnConfig(), OrtCpuConfig()], "test")
    assert opened.backend.key == "ort_cpu" and opened.chain_index == 1
    assert opened.skipped[0]["backend"] == "qnn_htp" and opened.skipped[0]["code"] == "BACKEND_PLACEMENT"
    # opting in to a mixed session: it opens, and says where the nodes run
    mixed = QnnBackend(model, QnnConfig(allow_cpu_fallback=True))
    assert mixed.placement.nodes_by_device == {EP_NAME: 1, CPU_EP: 1}
    x = np.linspace(-2, 2, 8, dtype=np.float32)[None]
    np.testing.assert_allclose(mixed.run({"x": x})[0], opened.backend.run({"x": x})[0], atol=2e-3)


@needs_qnn
@pytest.mark.qnn
@pytest.mark.slow
def test_replay_with_the_qcs8255_spec_runs_on_htp_and_matches_the_cpu_int8_run(int8_model: Path,
                                                                              tmp_path: Path) -> None:
    """The issue's acceptance run, shortened to 3 frames: `replay --spec deploy/specs/qcs8255-qnn.yaml CLIP`
    (the detector's part; the whole pipeline is tests/deploy/test_vehicle_specs.py)."""
    from ims_runtime import catalog

    clip = shared("data", "videos", "video02.mp4")
    env = {"IMS_CACHE_DIR": str(tmp_path / "cache")}
    common = ["--spec", str(SPECS / "qcs8255-qnn.yaml"), str(clip), "--max-frames", "3",
              "--set", f"stages.face_detector.model={int8_model}",
              "--set", f"stages.face_state.model={catalog.resolve('face_state_v1_int8_qnn')}"]
    htp = cli("replay", *common, "--out", str(tmp_path / "htp.jsonl"), env=env)
    assert htp.returncode == 0, htp.stderr[-2000:]
    # replay logs at warning level: a qnn_htp that did not open would log backend_fallback, a mixed session
    # qnn_partial_placement. Neither, with disable_cpu_ep_fallback on, means every node ran on HTP.
    assert "backend_fallback" not in htp.stderr and "qnn_partial_placement" not in htp.stderr
    cpu = cli("replay", *common, "--set", 'stages.face_detector.backends=[{"type": "ort_cpu"}]',
              "--out", str(tmp_path / "cpu.jsonl"), env=env)
    assert cpu.returncode == 0, cpu.stderr[-2000:]
    from ims_runtime.stages._retinaface_decode import iou_xyxy

    lines = [[json.loads(line)["face"] for line in (tmp_path / f"{n}.jsonl").read_text().splitlines()]
             for n in ("htp", "cpu")]
    assert len(lines[0]) == len(lines[1]) == 3
    for on_htp, on_cpu in zip(*lines):
        assert on_htp["present"] and on_cpu["present"]
        assert abs(on_htp["score"] - on_cpu["score"]) <= 0.1
        assert iou_xyxy(np.array([on_htp["box_xyxy_px"]]), np.array([on_cpu["box_xyxy_px"]]))[0, 0] >= 0.8


@needs_qnn
@pytest.mark.qnn
@pytest.mark.slow
def test_face_state_int8_runs_entirely_on_htp_and_matches_cpu_int8(reference_detector, face_state_int8: Path,
                                                                   cache_dir: Path) -> None:
    """The face-state INT8 artefact built for the HTP target (``face_state_v1_int8``, QDQ u8/s8): every node on
    the HTP, and on aligned crops of held-apart frames its outputs agree with the same model on the CPU EP to
    within a few quantisation steps: angles within 3 degrees on every crop and 1.5 degrees on average (measured:
    2.3 degrees at most, on one crop; for scale, INT8 vs FP32 on video04 is 1.1 degrees of gaze on average), eye
    openness within 0.05."""
    from ims_runtime.stages.alignment import align_face
    from ims_runtime.stages.face_state import FaceStateModel
    from ims_runtime.types import Frame

    model = face_state_int8
    htp_backend = QnnBackend(model, QnnConfig())
    assert htp_backend.placement.nodes_by_device.get(EP_NAME, 0) > 20
    assert htp_backend.placement.nodes_by_device.get(CPU_EP, 0) == 0
    on_htp = FaceStateModel(OpenedModel.from_backend(htp_backend), 112)
    on_cpu = FaceStateModel(OpenedModel.from_backend(OrtCpuBackend(model, OrtCpuConfig())), 112)
    angle_diffs_deg: list[float] = []
    for index, image in enumerate(_frames()):
        faces = reference_detector.detect(Frame(frame_id=index, t_capture_ns=0, image_bgr=image)).faces
        for face in faces[:1]:
            crop = align_face(image, face.landmarks_px, 112).crop_bgr
            cpu, htp = on_cpu.predict(crop), on_htp.predict(crop)
            gaze_deg = np.degrees(np.abs(np.subtract(cpu.gaze_pitch_yaw_rad, htp.gaze_pitch_yaw_rad)))
            head_deg = np.abs(np.subtract(cpu.head_yaw_pitch_roll_deg, htp.head_yaw_pitch_roll_deg))
            angle_diffs_deg += [*gaze_deg, *head_deg]
            assert max(gaze_deg.max(), head_deg.max()) <= 3.0, (TEST_FRAMES[index], cpu, htp)
            assert np.abs(np.subtract(cpu.eye_open_left_right, htp.eye_open_left_right)).max() <= 0.05
    assert len(angle_diffs_deg) >= 3 * 5
    assert float(np.mean(angle_diffs_deg)) <= 1.5, angle_diffs_deg
    htp_backend.close()
