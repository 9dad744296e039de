"""Eye state on eye crops (issue 13): CEW metrics, the committed model against a constant on real CEW patches,
crop geometry, the face-state hook, and a runtime path without torch."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from conftest import REPO, cli, shared

from ims_runtime import errors
from ims_runtime.backends.ort_cpu import OrtCpuConfig
from ims_runtime.eval import eye_state_eval as ev
from ims_runtime.stages.eye_state import EyeCropper, EyeStateModel

ONE_THREAD = [OrtCpuConfig(type="ort_cpu", threads=1)]


# --- metrics (pure) ---------------------------------------------------------------------------------------------

def test_recall_metrics_count_each_class_on_its_own():
    is_open = np.array([True, True, True, True, False, False])
    p_open = np.array([0.9, 0.6, 0.5, 0.1, 0.2, 0.7])   # opens: 3 of 4 called open; closed: 1 of 2 called closed
    m = ev.recall_metrics(p_open, is_open)
    assert m["open_recall"] == pytest.approx(0.75)
    assert m["closed_recall"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx(0.625)
    assert (m["n_open"], m["n_closed"]) == (4, 2)


def test_constant_open_baseline_has_balanced_accuracy_one_half_whatever_the_class_counts():
    is_open = np.array([True] * 9 + [False])
    m = ev.recall_metrics(np.ones(10), is_open)
    assert (m["open_recall"], m["closed_recall"], m["balanced_accuracy"]) == (1.0, 0.0, 0.5)


def test_a_missing_class_gives_nan_recall_and_mismatched_shapes_raise():
    m = ev.recall_metrics(np.array([0.9, 0.2]), np.array([True, True]))
    assert math.isnan(m["closed_recall"]) and m["n_closed"] == 0
    with pytest.raises(ValueError):
        ev.recall_metrics(np.ones(3), np.ones(2, bool))


def test_auc_is_one_for_perfect_separation_zero_reversed_and_one_half_for_ties():
    is_open = np.array([False, False, True, True])
    assert ev.auc(np.array([0.1, 0.2, 0.8, 0.9]), is_open) == pytest.approx(1.0)
    assert ev.auc(np.array([0.9, 0.8, 0.2, 0.1]), is_open) == pytest.approx(0.0)
    assert ev.auc(np.full(4, 0.5), is_open) == pytest.approx(0.5)
    assert ev.auc(np.array([0.1, 0.5, 0.5, 0.9]), is_open) == pytest.approx(0.875)


def test_a_folder_without_the_cew_layout_is_a_coded_error(tmp_path):
    (tmp_path / "openLeftEyes").mkdir()
    with pytest.raises(errors.IMSError) as info:
        ev.load_cew(tmp_path)
    assert info.value.code is errors.SOURCE_NOT_FOUND and "closedLeftEyes" in info.value.message


# --- the committed model on real CEW patches (evaluation only) ---------------------------------------------------

@pytest.fixture(scope="module")
def eye_model() -> EyeStateModel:
    model = EyeStateModel.open("eye_state_v1", None, ONE_THREAD)
    yield model
    model.close()


def test_eye_model_beats_the_constant_on_a_cew_subsample(eye_model):
    patches = ev.load_cew(shared("data", "cew")).subsample(8)
    model = ev.recall_metrics(ev.model_p_open(eye_model, patches), patches.is_open)
    constant = ev.recall_metrics(ev.constant_open(patches), patches.is_open)
    assert model["n_closed"] > 50 and model["n_open"] > 50
    assert model["balanced_accuracy"] > constant["balanced_accuracy"] + 0.15, (model, constant)
    assert ev.auc(ev.model_p_open(eye_model, patches), patches.is_open) > 0.8


def test_eye_model_declares_its_contract(eye_model):
    meta = eye_model.backend.metadata
    assert meta["ims.model_family"] == "eye_state"
    assert eye_model.size_px == 32 and eye_model.iod_ratio == pytest.approx(float(meta["ims.eye_crop_iod_ratio"]))
    assert float(meta["ims.macs_per_eye"]) <= 5e6


def test_a_face_state_model_is_refused_as_eye_model():
    with pytest.raises(errors.IMSError) as info:
        EyeStateModel.open("face_state_v1", None, ONE_THREAD)
    assert info.value.code is errors.MODEL_CONTRACT


# --- crop geometry ------------------------------------------------------------------------------------------------

def _marked_frame(centres_xy: list[tuple[float, float]], values: list[int]) -> np.ndarray:
    image = np.full((240, 320, 3), 128, np.uint8)
    for (x, y), v in zip(centres_xy, values):
        cv2.circle(image, (round(x), round(y)), 3, (v, v, v), -1)
    return image


def _blob_xy(grey: np.ndarray, value: int) -> tuple[float, float]:
    ys, xs = np.nonzero(np.abs(grey.astype(int) - value) < 40)
    return float(xs.mean()), float(ys.mean())


@pytest.mark.parametrize("tilt_deg", [0.0, 20.0, -35.0])
def test_cropper_centres_each_crop_on_its_eye_and_levels_the_eye_line(tilt_deg):
    iod = 80.0
    left = np.array([120.0, 110.0])
    right = left + iod * np.array([math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))])
    landmarks = np.array([left, right, [160, 150], [130, 180], [190, 180]], np.float32)
    image = _marked_frame([tuple(left), tuple(right)], [255, 0])
    # a crop 2.5x the inter-ocular distance wide shows both marks: its own at the centre, the other one level
    cropper = EyeCropper(64, iod_ratio=2.5)
    crops = cropper.crop(image, landmarks)
    s, px_per_iod = 64, 64 / 2.5
    own0, other0 = _blob_xy(crops.grey[0], 255), _blob_xy(crops.grey[0], 0)
    own1, other1 = _blob_xy(crops.grey[1], 0), _blob_xy(crops.grey[1], 255)
    for own in (own0, own1):
        assert own == pytest.approx((s / 2, s / 2), abs=1.0)
    assert other0 == pytest.approx((s / 2 + px_per_iod, s / 2), abs=1.0)   # image-right eye to the right, level
    assert other1 == pytest.approx((s / 2 - px_per_iod, s / 2), abs=1.0)
    assert crops.iod_px == pytest.approx(iod, rel=1e-4)


def test_cropper_gives_the_same_crop_from_a_grey_frame_and_its_three_channel_copy():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    landmarks = np.array([[60, 50], [100, 56], [80, 75], [65, 95], [95, 95]], np.float32)
    cropper = EyeCropper(32)
    from_grey = cropper.crop(grey, landmarks).grey.copy()
    from_bgr = cropper.crop(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), landmarks).grey
    assert np.abs(from_grey.astype(int) - from_bgr.astype(int)).max() <= 1


# --- the face-state hook on real footage ------------------------------------------------------------------------

def test_face_state_takes_eye_openness_from_the_eye_model_when_configured(reference_detector, eye_model):
    from ims_runtime.spec.schema import FaceStateSpec
    from ims_runtime.stages.face_state import FaceStateStage
    from ims_runtime.types import Frame

    cap = cv2.VideoCapture(str(shared("data", "videos", "video04.mp4")))
    ok, image = cap.read()
    assert ok
    frame = Frame(0, 0, image)
    face = reference_detector.detect(frame).driver
    assert face is not None
    stage = FaceStateStage.from_spec(FaceStateSpec(eye_model="eye_state_v1"))
    plain = FaceStateStage.from_spec(FaceStateSpec())
    try:
        state = stage.process(frame, face)
        expected = eye_model.predict(image, face.landmarks_px)
        assert (state.left_eye_open, state.right_eye_open) == pytest.approx(expected, abs=1e-5)
        assert state.gaze_yaw_rad == pytest.approx(plain.process(frame, face).gaze_yaw_rad, abs=1e-6)
        assert stage.describe()["eye_model"]["sha256"] == eye_model.model.sha256
    finally:
        stage.close()
        plain.close()


def test_replay_with_the_dev_spec_shows_eyes_closed_on_an_annotated_blink(tmp_path, dev_spec_path):
    """video02 (a training clip: a regression check, not an accuracy figure) has one hand-annotated closure;
    the eye model must publish ``eyes.closed`` inside it, the face-state network's own eyes do not."""
    truth = json.loads((REPO / "deploy" / "annotations" / "blinks" / "video02.json").read_text())
    first, last = truth["closed_ranges"][0]
    clip = shared("data", "videos", "video02.mp4")
    closed = {}
    for name, extra in (("eye_model", []), ("face_state_only", ["--set", "stages.face_state.eye_model=null"])):
        out = tmp_path / f"{name}.jsonl"
        result = cli("replay", "--spec", str(dev_spec_path), *extra, str(clip), "--out", str(out),
                     "--max-frames", str(last + 2), "--no-progress", timeout=300)
        assert result.returncode == 0, result.stderr[-500:]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        closed[name] = [r["frame_id"] for r in rows if r.get("eyes", {}).get("closed")]
    assert any(first <= f <= last for f in closed["eye_model"]), closed
    assert not any(first <= f <= last for f in closed["face_state_only"]), closed
