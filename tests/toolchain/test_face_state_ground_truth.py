"""``ims-opt eval face-state`` parts: the agreement figures and their baselines, the held-apart split read from the
recipe, and the closed-eye CEW faces through the real dev-cpu pipeline (a few images)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, shared

from ims_runtime.toolchain.face_state import ground_truth_eval


def test_agreement_reports_r_mae_and_both_constant_baselines():
    ref = np.array([10.0, 20.0, 30.0, 40.0, np.nan])
    got = ground_truth_eval.agreement(ref + 5.0, ref)
    assert got["n"] == 4 and got["r"] == pytest.approx(1.0) and got["mae"] == pytest.approx(5.0)
    assert got["baseline_zero_mae"] == pytest.approx(25.0)
    assert got["baseline_clip_mean_mae"] == pytest.approx(10.0)  # |ref - 25| averaged
    assert ground_truth_eval.agreement(-ref, ref)["r"] == pytest.approx(-1.0)


def test_a_constant_prediction_has_no_correlation_rather_than_a_made_up_one():
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    assert ground_truth_eval.agreement(np.zeros(4), ref)["r"] is None


def test_the_training_clips_come_from_the_recipe_so_the_rest_are_held_apart():
    trained = ground_truth_eval.trained_clips(REPO / "deploy" / "recipes" / "face-state.yaml")
    videos = {p.stem for p in shared("data", "videos").glob("*.mp4")}
    assert trained < videos and videos - trained  # at least one clip is held apart, and it is not a training clip


def test_closed_eye_faces_go_through_the_real_pipeline_with_the_always_open_baseline(detector_model, dev_spec_path):
    folder = shared("data", "cew_faces_closed", "images")
    got = ground_truth_eval.cew_closed_faces(dev_spec_path, folder, 4, log=lambda m: None)
    assert got["images"] == 4 and 1 <= got["faces_with_state"] <= 4
    assert 0.0 <= got["published_closed_share"] <= 1.0 and got["baseline_always_open_share"] == 0.0
    low, mid, high = got["openness_percentiles_5_50_95"]
    assert 0.0 <= low <= mid <= high <= 1.0
