"""The eye-state toolchain: training crops are the runtime's crops, the teachers' calibration helpers, export facts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared

from ims_runtime.stages.eye_state import EyeCropper
from ims_runtime.toolchain.eye_state import augment
from ims_runtime.toolchain.eye_state.train import Teacher, fit_logistic


def test_the_stored_wide_crop_centre_is_the_runtime_crop_on_a_real_frame(reference_detector):
    import cv2

    from ims_runtime.types import Frame

    cap = cv2.VideoCapture(str(shared("data", "videos", "video00.mp4")))
    ok, image = cap.read()
    assert ok
    face = reference_detector.detect(Frame(0, 0, image)).driver
    runtime = EyeCropper(32, 0.7).crop(image, face.landmarks_px).grey.copy()
    wide = EyeCropper(64, 1.4).crop(image, face.landmarks_px).grey      # as dataset.build stores it
    for eye in range(2):
        centre = augment.geometric(wide[eye], 32, augment.AugmentRecipe(), rng=None)
        # same centre, same pixel size, same sampling grid: the same pixels (up to rounding)
        assert np.abs(centre.astype(int) - runtime[eye].astype(int)).max() <= 1


def test_augmentation_is_seeded_and_keeps_size_and_type():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    wide = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    recipe = augment.AugmentRecipe(glasses_p=1.0, reflection_p=1.0, low_res_p=1.0, blur_p=1.0, noise_p=1.0)
    a = augment.photometric(augment.geometric(wide, 32, recipe, rng_a), recipe, rng_a)
    b = augment.photometric(augment.geometric(wide, 32, recipe, rng_b), recipe, rng_b)
    assert a.shape == (32, 32) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_balanced_logistic_puts_the_boundary_between_the_classes_whatever_their_counts():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(-2, 1, 50), rng.normal(2, 1, 950)]
    y = np.r_[np.zeros(50), np.ones(950)]
    a, b = fit_logistic(x, y)
    a_bal, b_bal = fit_logistic(x, y, balanced=True)
    assert a > 0 and a_bal > 0
    assert abs(-b_bal / a_bal) < 0.3            # symmetric classes: boundary near 0
    assert -b / a < -b_bal / a_bal - 0.3        # the 95 % prior pushes the plain fit's boundary towards the rare class


def test_combined_teacher_is_one_half_at_both_teachers_boundaries():
    teacher = Teacher(omz_weight=0.5, iris_a=1 / 0.03, iris_b=-0.2 / 0.03)
    assert teacher.p_open(np.array([0.5]), np.array([0.2]))[0] == pytest.approx(0.5)
    assert teacher.p_open(np.array([0.99]), np.array([0.05]))[0] < 0.05
    assert teacher.p_open(np.array([0.01]), np.array([0.35]))[0] > 0.95
