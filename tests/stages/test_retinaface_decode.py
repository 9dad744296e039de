"""Priors, decoding, NMS and IoU against hand-computed cases."""

import numpy as np
import pytest

from ims_runtime.stages._retinaface_decode import (
    decode_boxes,
    decode_landmarks,
    iou_xyxy,
    make_priors,
    nms,
)


def test_prior_count_matches_the_network_output_for_640x384():
    # stride 8: 48x80 cells, 16: 24x40, 32: 12x20; two anchor sizes each → (3840 + 960 + 240) * 2
    assert make_priors(640, 384).shape == (10080, 4)


def test_prior_count_rounds_feature_maps_up_for_sizes_not_divisible_by_32():
    # 100x60 px: ceil(60/8)*ceil(100/8) = 8*13, ceil(60/16)*ceil(100/16) = 4*7, ceil(60/32)*ceil(100/32) = 2*4
    assert make_priors(100, 60).shape == ((8 * 13 + 4 * 7 + 2 * 4) * 2, 4)


def test_first_priors_are_the_top_left_cell_of_the_stride_8_map_with_both_sizes():
    priors = make_priors(64, 32)
    # cell centre (4, 4) px, anchor sizes 16 and 32 px, normalised by 64 x 32
    np.testing.assert_allclose(priors[0], [4 / 64, 4 / 32, 16 / 64, 16 / 32])
    np.testing.assert_allclose(priors[1], [4 / 64, 4 / 32, 32 / 64, 32 / 32])
    # then the next cell to the right
    np.testing.assert_allclose(priors[2], [12 / 64, 4 / 32, 16 / 64, 16 / 32])


def test_zero_offsets_decode_to_the_prior_box_itself():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    np.testing.assert_allclose(decode_boxes(np.zeros((1, 4), np.float32), priors), [[0.4, 0.3, 0.6, 0.7]],
                               atol=1e-6)


def test_offsets_shift_by_variance_times_prior_size_and_scale_exponentially():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    # dx = 1 → centre moves 0.1 * 0.2 = 0.02; dw = ln(2)/0.2 → width doubles to 0.4
    loc = np.array([[1.0, 0.0, np.log(2) / 0.2, 0.0]], np.float32)
    np.testing.assert_allclose(decode_boxes(loc, priors), [[0.52 - 0.2, 0.3, 0.52 + 0.2, 0.7]], atol=1e-6)


def test_landmarks_decode_around_the_prior_centre():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    landms = np.zeros((1, 10), np.float32)
    landms[0, 2:4] = [1.0, -1.0]  # second point: +0.1*0.2 in x, -0.1*0.4 in y
    points = decode_landmarks(landms, priors)
    assert points.shape == (1, 5, 2)
    np.testing.assert_allclose(points[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(points[0, 1], [0.52, 0.46], atol=1e-6)


def test_iou_of_half_overlapping_squares_is_one_third():
    assert iou_xyxy(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))[0, 0] == pytest.approx(1 / 3)


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    # boxes 0 and 1 overlap with IoU 81/119 = 0.68 > 0.4: only the higher-scoring box 1 survives
    assert nms(boxes, scores, 0.4, 10).tolist() == [1, 2]
    # with a threshold above their IoU both are kept
    assert sorted(nms(boxes, scores, 0.7, 10).tolist()) == [0, 1, 2]
    assert nms(boxes, scores, 0.4, 1).tolist() == [1]
