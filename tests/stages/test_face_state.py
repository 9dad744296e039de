"""The face-state stage: the committed model's I/O contract, the stage on real frames of the held-apart clip,
the angle sign convention, eyes-closed hysteresis and the on-road decision (pure scenarios)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import cli, shared

from ims_runtime import catalog, errors, messages
from ims_runtime.spec.schema import FaceStateSpec, RoadZoneSpec
from ims_runtime.stages.face_state import OUTPUT_NAMES, EyeClosure, FaceStateStage
from ims_runtime.stages.model import OpenedModel
from ims_runtime.types import FaceDetection, Frame

HELD_APART = ("data", "videos", "video04.mp4")
#: a clip with several people turned clearly left and right; a training clip, used only to pin the *sign*
#: convention (accuracy on held-apart data is what `ims-opt eval face-state` reports)
TURNED_FACES = ("data", "videos", "video01.mp4")


@pytest.fixture(scope="module")
def model_path(dev_spec):
    """The face-state model the default spec deploys (its sign conventions are what these tests pin)."""
    return catalog.resolve(dev_spec.stages.face_state.model)


@pytest.fixture(scope="module")
def stage(dev_spec):
    s = FaceStateStage.from_spec(dev_spec.stages.face_state)
    yield s
    s.close()


def _frames(path, indices):
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    while len(out) < len(indices):
        ok, image = cap.read()
        if not ok:
            break
        if i in indices:
            out.append(Frame(i, 0, image))
        i += 1
    cap.release()
    return out


def _faces_and_mirror(detector, clip, indices):
    """(frame, faces, mirrored frame, its faces) for a few frames of ``clip``."""
    result = []
    for frame in _frames(shared(*clip), indices):
        mirrored = Frame(frame.frame_id, 0, np.ascontiguousarray(frame.image_bgr[:, ::-1]))
        result.append((frame, [f for f in detector.detect(frame).faces if f.height_px >= 60],
                       mirrored, [f for f in detector.detect(mirrored).faces if f.height_px >= 60]))
    return result


# The stage's own behaviour is pinned on the FP32 reference detector's landmarks (what the network was trained
# on). The deployed INT8 detector moves landmarks by a few pixels, and the network's confidence is sensitive to
# that on turned faces (video04 frame 120: 0.59 → 0.29): measured and reported in docs/face-state.md.
@pytest.fixture(scope="module")
def real_faces(reference_detector):
    return _faces_and_mirror(reference_detector, HELD_APART, {0, 40, 80, 120, 160})


@pytest.fixture(scope="module")
def turned_faces(reference_detector):
    return _faces_and_mirror(reference_detector, TURNED_FACES, {0, 50, 100, 150})


def test_model_io_contract(model_path):
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "face" and inp.shape == [1, 3, 112, 112] and inp.type == "tensor(float)"
    shapes = {o.name: o.shape for o in session.get_outputs()}
    assert shapes == {"gaze_pitch_yaw_rad": [1, 2], "head_yaw_pitch_roll_deg": [1, 3], "eye_open_left_right": [1, 2],
                      "mouth_open": [1, 1], "confidence": [1, 1]}
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["ims.model_family"] == "face_state" and meta["ims.input_normalisation"] == "(pixel - 127.5) / 127.5"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)
    outs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"face": x})))
    for name in ("eye_open_left_right", "mouth_open", "confidence"):
        assert ((outs[name] >= 0) & (outs[name] <= 1)).all()
    # the model is small enough for a vehicle SoC (issue: about <= 1.5 M parameters, <= 60 MMAC)
    assert int(meta["ims.params"]) <= 1_500_000 and int(meta["ims.macs"]) <= 60_000_000
    assert set(OUTPUT_NAMES) == set(shapes)


def test_committed_model_matches_its_manifest(model_path):
    manifest = json.loads((model_path.parent / "manifest.json").read_text())
    entry = manifest[model_path.name]
    assert entry["sha256"] == catalog.check_sha256(model_path, entry["sha256"])
    # held-apart figures per source: the whole clip video04 (never trained on), plus face folders' validation files
    assert "video04" in entry["data"]["clips_val"]
    assert set(entry["validation"]) == set(entry["data"]["clips_val"])
    assert all(figures["faces"] > 100 for figures in entry["validation"].values())


def test_stage_fills_every_field_on_real_faces(stage, real_faces):
    n = 0
    for frame, faces, _, _ in real_faces:
        for face in faces:
            message = messages.encode_face_state(stage.process(frame, face))
            n += 1
            values = [*message["gaze"].values(), *message["head_pose"].values(), *message["eyes"].values()]
            # the mouth output does not follow its teacher on held-apart faces: not published by default
            assert message["mouth"] is None
            assert all(np.isfinite(float(v)) for v in values)
            assert -np.pi / 2 < message["gaze"]["pitch_rad"] < np.pi / 2
            assert abs(message["head_pose"]["yaw_deg"]) < 90
            assert 0 <= message["eyes"]["left_open"] <= 1 and isinstance(message["eyes"]["closed"], bool)
            # real, clearly visible faces: reliable (face_state_v2 gives 0.43 on frame 80, the man laughing with his
            # eyes squeezed shut and his head turned ~60 degrees; every other face here > 0.9)
            assert message["face_state"]["reliable"] is True
    assert n >= 5


def test_mouth_is_published_only_when_the_spec_asks(model_path, real_faces):
    from ims_runtime.backends import open_chain
    from ims_runtime.backends.ort_cpu import OrtCpuConfig

    frame, faces = real_faces[0][0], real_faces[0][1]
    backend = open_chain(model_path, [OrtCpuConfig(type="ort_cpu")], "face_state").backend
    model = OpenedModel.from_backend(backend)
    assert FaceStateSpec().publish_mouth is False
    off = FaceStateStage(FaceStateSpec(), model).process(frame, faces[0])
    on = FaceStateStage(FaceStateSpec(publish_mouth=True), model).process(frame, faces[0])
    assert off.mouth_open is None and messages.encode_face_state(off)["mouth"] is None
    assert 0 <= on.mouth_open <= 1 and messages.encode_face_state(on)["mouth"] == {"open": round(on.mouth_open, 3)}
    backend.close()


def test_background_is_less_confident_than_a_face(stage, real_faces):
    frame, faces = real_faces[0][0], real_faces[0][1]
    face = max(faces, key=lambda f: f.area_px2)
    # the same landmark pattern moved to the top-left corner region (wall / ceiling in this clip)
    shift = np.array([40, 10], np.float32) - face.landmarks_px.min(0)
    background = FaceDetection(face.box_xyxy_px, face.score, face.landmarks_px + shift)
    assert stage.process(frame, background).confidence < stage.process(frame, face).confidence


def test_mirrored_faces_mirror_yaw_and_roll(stage, turned_faces):
    """Pins the sign convention: a left-right mirrored face has the opposite yaw and roll."""
    yaw, yaw_m, roll, roll_m = [], [], [], []
    for frame, faces, mirrored, faces_m in turned_faces:
        w = frame.image_bgr.shape[1]
        for face in faces:
            cx, cy = face.center_xy_px
            # the same person in the mirrored frame: the face whose centre is nearest the mirrored centre
            twin = min(faces_m, key=lambda f: (f.center_xy_px[0] - (w - cx)) ** 2 + (f.center_xy_px[1] - cy) ** 2)
            a, b = stage.process(frame, face), stage.process(mirrored, twin)
            yaw += [a.head_yaw_deg, a.gaze_yaw_rad * 57.3]
            yaw_m += [b.head_yaw_deg, b.gaze_yaw_rad * 57.3]
            roll.append(a.head_roll_deg)
            roll_m.append(b.head_roll_deg)
    yaw, yaw_m = np.array(yaw), np.array(yaw_m)
    assert np.corrcoef(yaw, yaw_m)[0, 1] < -0.7
    assert np.abs(yaw + yaw_m).mean() < 0.5 * np.abs(yaw - yaw_m).mean()
    assert np.abs(np.array(roll) + np.array(roll_m)).mean() < 0.5 * np.abs(np.array(roll) - np.array(roll_m)).mean()


def test_face_turned_toward_the_image_right_has_positive_yaw(stage, turned_faces):
    """Absolute sign: the nose tip right of the eyes' midpoint means the face turned toward the image's right."""
    pairs = []
    for frame, faces, mirrored, faces_m in turned_faces:
        pairs += [((f.landmarks_px[2, 0] - (f.landmarks_px[0, 0] + f.landmarks_px[1, 0]) / 2)
                   / np.linalg.norm(f.landmarks_px[1] - f.landmarks_px[0]), stage.process(mirrored, f).head_yaw_deg)
                  for f in faces_m]
        for face in faces:
            lm = face.landmarks_px
            nose_offset = (lm[2, 0] - (lm[0, 0] + lm[1, 0]) / 2) / np.linalg.norm(lm[1] - lm[0])
            pairs.append((nose_offset, stage.process(frame, face).head_yaw_deg))
    offsets, yaws = np.array(pairs).T
    assert np.corrcoef(offsets, yaws)[0, 1] > 0.6


def test_crop_size_must_match_the_model(model_path):
    from ims_runtime.backends import open_chain
    from ims_runtime.backends.ort_cpu import OrtCpuConfig

    backend = open_chain(model_path, [OrtCpuConfig(type="ort_cpu")], "face_state").backend
    with pytest.raises(errors.IMSError) as info:
        FaceStateStage(FaceStateSpec(crop_size_px=96), OpenedModel.from_backend(backend))
    assert info.value.code is errors.MODEL_CONTRACT


def test_face_lost_resets_the_eye_state(stage, real_faces):
    frame, faces = real_faces[0][0], real_faces[0][1]
    stage.eyes.closed = True
    assert stage.process(frame, None) is None and stage.eyes.closed is False
    assert stage.process(frame, faces[0]).confidence > 0.5  # a face again: a full state


# --- eyes closed with hysteresis: pure scenarios ----------------------------------------------------------------

def test_eye_closure_hysteresis_scenarios():
    eyes = EyeClosure(closed_below=0.25, open_above=0.4)
    assert eyes.update(0.8, 0.8) is False                 # open
    assert eyes.update(0.3, 0.3) is False                 # in the band, was open: stays open
    assert eyes.update(0.1, 0.2) is True                  # mean 0.15 < 0.25: closed
    assert eyes.update(0.35, 0.35) is True                # in the band, was closed: stays closed (no flicker)
    assert eyes.update(0.5, 0.4) is False                 # mean 0.45 > 0.4: open again
    assert eyes.update(0.0, 0.6) is False                 # one eye shut (a wink) keeps the mean in the band
    eyes.update(0.0, 0.0)
    eyes.reset()
    assert eyes.closed is False
    with pytest.raises(ValueError):
        EyeClosure(0.5, 0.4)


def test_spec_rejects_an_inverted_hysteresis_band():
    with pytest.raises(ValueError):
        FaceStateSpec(eye_closed_below=0.5, eye_open_above=0.3)


# --- on road: the stage decides with the policy's zone (one definition of the zone) -----------------------------

def test_on_road_uses_the_policys_zone_and_mounting_offset(model_path, real_faces):
    """The same face is on the road for a zone centred where it looks and off it for a zone centred 45 degrees
    away (a camera mounted far to the side)."""
    import math

    from ims_runtime.backends import open_chain
    from ims_runtime.backends.ort_cpu import OrtCpuConfig

    frame, faces = real_faces[0][0], real_faces[0][1]
    face = max(faces, key=lambda f: f.area_px2)
    backend = open_chain(model_path, [OrtCpuConfig(type="ort_cpu")], "face_state").backend
    probe = FaceStateStage(FaceStateSpec(), OpenedModel.from_backend(backend)).process(frame, face)
    centred = RoadZoneSpec(center_yaw_rad=probe.gaze_yaw_rad, center_pitch_rad=probe.gaze_pitch_rad)
    away = RoadZoneSpec(center_yaw_rad=probe.gaze_yaw_rad + math.radians(45), center_pitch_rad=probe.gaze_pitch_rad)
    assert FaceStateStage(FaceStateSpec(), OpenedModel.from_backend(backend), road_zone=centred).process(frame, face).on_road is True
    assert FaceStateStage(FaceStateSpec(), OpenedModel.from_backend(backend), road_zone=away).process(frame, face).on_road is False


def test_unreliable_state_feeds_nothing_to_the_temporal_stage(stage, real_faces):
    frame, faces = real_faces[0][0], real_faces[0][1]
    from dataclasses import replace

    from ims_runtime.pipeline.pipeline import face_observation, frame_signals
    from ims_runtime.types import Detections

    state = stage.process(frame, faces[0])
    face = face_observation(Detections(faces=[faces[0]], driver_index=0))
    measured = {"gaze_pitch_rad", "gaze_yaw_rad", "on_road", "head_yaw_deg", "head_pitch_deg", "left_open",
                "right_open"}
    assert measured <= set(frame_signals(frame, face, state).to_dict())
    assert not measured & set(frame_signals(frame, face, replace(state, reliable=False)).to_dict())


# --- the whole runtime path --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_replay_fills_face_state_on_every_frame_with_a_face(tmp_path, dev_spec_path, detector_model):
    out = tmp_path / "out.jsonl"
    result = cli("replay", "--spec", str(dev_spec_path), str(shared(*HELD_APART)), "--out", str(out),
                 "--max-frames", "20")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    with_face = [m for m in lines if m["face"]["present"]]
    assert len(with_face) >= 15
    for m in lines:
        assert "face_state" not in m["stages_off"]
        if m["face"]["present"]:
            assert set(m["gaze"]) == {"pitch_rad", "yaw_rad", "on_road"}
            assert set(m["head_pose"]) == {"yaw_deg", "pitch_deg", "roll_deg"}
            assert set(m["eyes"]) == {"left_open", "right_open", "closed"}
            assert m["mouth"] is None   # stages.face_state.publish_mouth is off in the dev spec
            assert m["latency_ms"]["face_state"] > 0
        else:
            assert m["gaze"] is None
