"""Alignment maths: the least-squares similarity, the template, roll sign, and the angle frame changes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ims_runtime.stages.alignment import (
    TEMPLATE_112,
    align_face,
    crop_to_image_angles,
    image_to_crop_angles,
    rotate_gaze,
    similarity_lstsq,
    template_px,
)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle_deg,scale,tx,ty", [(0, 1, 0, 0), (17, 2.5, 300, -40), (-35, 0.4, 12, 900)])
def test_similarity_recovers_an_exact_transform(angle_deg, scale, tx, ty):
    truth = _similarity(angle_deg, scale, tx, ty)
    src = np.array([[10, 20], [80, 25], [45, 60], [20, 95], [75, 90]], float)
    assert np.allclose(similarity_lstsq(src, _apply(truth, src)), truth, atol=1e-9)


def test_similarity_never_reflects():
    src = TEMPLATE_112
    mirrored = src * [-1, 1]
    m = similarity_lstsq(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_template_is_mirror_symmetric():
    mirrored = TEMPLATE_112[[1, 0, 2, 4, 3]].copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]
    assert np.allclose(mirrored, TEMPLATE_112)
    assert np.allclose(template_px(224), TEMPLATE_112 * 2)


def test_align_maps_landmarks_onto_the_template_and_reports_roll():
    # a face tilted 20 degrees clockwise in the image (y down: a positive standard angle turns clockwise on screen)
    image_from_template = _similarity(20, 1.7, 400, 200)
    landmarks = _apply(image_from_template, TEMPLATE_112)
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    aligned = align_face(image, landmarks, 112)
    assert aligned.crop_bgr.shape == (112, 112, 3)
    assert np.allclose(_apply(aligned.matrix, landmarks), TEMPLATE_112, atol=1e-6)
    assert aligned.roll_deg == pytest.approx(20, abs=1e-6)
    assert aligned.scale == pytest.approx(1 / 1.7)
    # the pixels really come from where the matrix says: compare with an independent warp
    expected = cv2.warpAffine(image, aligned.matrix, (112, 112), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(aligned.crop_bgr, expected)


def test_wide_crop_centre_is_the_plain_crop():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)
    landmarks = _apply(_similarity(-8, 1.3, 120, 90), TEMPLATE_112)
    plain = align_face(image, landmarks, 112).crop_bgr
    wide = align_face(image, landmarks, 112, margin_px=16).crop_bgr
    # the same sampling positions; warpAffine's fixed-point interpolation may differ by one grey level
    assert np.abs(wide[16:128, 16:128].astype(int) - plain).max() <= 1


def test_grey_input_is_replicated():
    grey = np.full((200, 200), 77, np.uint8)
    crop = align_face(grey, _apply(_similarity(0, 1, 40, 40), TEMPLATE_112), 64).crop_bgr
    assert crop.shape == (64, 64, 3) and (crop == 77).all()


def test_rotate_gaze_turns_about_the_optical_axis():
    # looking right (yaw > 0); the head's frame turned 90 degrees clockwise on screen → the gaze now points down
    pitch, yaw = rotate_gaze(0.0, math.radians(30), 90)
    assert pitch == pytest.approx(-math.radians(30), abs=1e-9)
    assert yaw == pytest.approx(0, abs=1e-9)
    # into the camera stays into the camera
    assert rotate_gaze(0.0, 0.0, 45) == pytest.approx((0.0, 0.0))


@pytest.mark.parametrize("roll", [-25.0, 0.0, 13.0])
def test_crop_and_image_frames_are_inverse(roll):
    gaze, head = (0.2, -0.4), (10.0, -5.0, 3.0)
    g, h = crop_to_image_angles(*image_to_crop_angles(gaze, head, roll), roll)
    assert g == pytest.approx(gaze, abs=1e-9) and h == pytest.approx(head, abs=1e-9)
    assert crop_to_image_angles(gaze, head, roll)[1][2] == pytest.approx(head[2] + roll)


def test_closed_form_similarity_equals_umeyamas_svd_solution_without_reflection():
    """The closed form replaced an SVD (Umeyama 1991, reflection excluded): both are the least-squares proper
    similarity, so they must agree on arbitrary, noisy point sets (including ones a reflection would fit better)."""
    def umeyama(src, dst):
        src_mean, dst_mean = src.mean(0), dst.mean(0)
        src_c, dst_c = src - src_mean, dst - dst_mean
        u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
        d = np.ones(2)
        if np.linalg.det(u) * np.linalg.det(vt) < 0:
            d[1] = -1
        rotation = u @ np.diag(d) @ vt
        scale = (s * d).sum() / ((src_c ** 2).sum() / len(src))
        m = np.empty((2, 3))
        m[:, :2] = scale * rotation
        m[:, 2] = dst_mean - scale * rotation @ src_mean
        return m

    rng = np.random.default_rng(3)
    for i in range(500):
        src = rng.normal(size=(5, 2)) * rng.uniform(1, 100) + rng.uniform(-500, 500, 2)
        dst = rng.normal(size=(5, 2)) * 40 if i % 2 else _apply(_similarity(rng.uniform(-60, 60), 1.3, 5, 9), src)
        dst = dst + rng.normal(size=(5, 2))
        assert np.allclose(similarity_lstsq(src, dst), umeyama(src, dst), rtol=1e-9, atol=1e-9)
