"""Detector evaluation: AP maths on hand cases, the gt parser, and the real detector on the WIDER subset."""

import json

import numpy as np
import pytest
from conftest import cli, shared

from ims_runtime.eval.detector_eval import _match, average_precision, parse_gt


def test_ap_is_one_when_every_detection_is_right_and_all_faces_are_found():
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == pytest.approx(1.0)


def test_ap_with_a_false_positive_ranked_first():
    # ranks: FP, TP → precision at recall 1 is 1/2; all-point interpolation gives 0.5
    assert average_precision(np.array([0.9, 0.8]), np.array([False, True]), 1) == pytest.approx(0.5)


def test_ap_counts_missed_faces():
    # one of two faces found, with precision 1 → AP 0.5
    assert average_precision(np.array([0.9]), np.array([True]), 2) == pytest.approx(0.5)


def test_matching_ignores_detections_on_ignore_regions_and_matches_each_face_once():
    gt = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], float)
    counted = np.array([True, False])  # the second face is an ignore region (too small, invalid, ...)
    det = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [100, 100, 110, 110], [300, 300, 310, 310]], float)
    outcome, matched = _match(det, gt, counted)
    # TP, duplicate → FP, on the ignore region → ignored, nowhere → FP
    assert outcome.tolist() == [1, 0, -1, 0]
    assert matched.tolist() == [0, -1, -1, -1]


def test_parse_gt_reads_every_image_and_box():
    images = parse_gt(shared("data", "widerface_val_subset", "gt.txt"))
    assert len(images) == 120
    first = images[0]
    assert first.path.endswith("0_Parade_Parade_0_194.jpg") and first.boxes_xyxy_px.shape == (5, 4)
    np.testing.assert_allclose(first.boxes_xyxy_px[0], [45.1, 127.5, 45.1 + 49.6, 127.5 + 38.1])


def test_parse_gt_names_the_line_of_a_format_error(tmp_path):
    from ims_runtime import errors
    path = tmp_path / "gt.txt"
    path.write_text("a.jpg\n2\n1 2 3 4 0 0 0 easy\n")
    with pytest.raises(errors.IMSError) as info:
        parse_gt(path)
    assert "gt.txt:4:" in info.value.message and "lists 2 faces" in info.value.message


def test_eval_detector_on_the_real_wider_subset(tmp_path, dev_spec_path, detector_model):
    root = shared("data", "widerface_val_subset")
    out = tmp_path / "scores.json"
    result = cli("eval-detector", "--spec", str(dev_spec_path), "--images", str(root / "images"), "--gt",
                 str(root / "gt.txt"), "--json", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    assert scores["images"] == 120 and scores["faces_counted"] > 500
    # the pretrained detector finds most easy faces and far fewer hard (small, occluded) ones
    assert scores["recall_by_subset"]["easy"] > 0.5
    assert scores["recall_by_subset"]["easy"] > scores["recall_by_subset"]["hard"]
    assert 0.3 < scores["average_precision"] <= 1.0


def test_eval_detector_evaluates_each_image_on_its_own_even_with_a_tracking_spec(tmp_path, dev_spec_path,
                                                                                  detector_model):
    """Before: dev-cpu.yaml's tracking carried the driver from one WIDER image into the next (recall 0.381
    instead of 0.4205 on the subset). Now the spec with tracking scores exactly like the same spec without it."""
    root = shared("data", "widerface_val_subset")
    runs, notes = {}, {}
    for name, extra in (("tracking", []), ("plain", ["--set", "stages.face_detector.tracking=null"])):
        out = tmp_path / f"{name}.json"
        result = cli("eval-detector", "--spec", str(dev_spec_path), *extra, "--images", str(root / "images"),
                     "--gt", str(root / "gt.txt"), "--json", str(out), timeout=300)
        assert result.returncode == 0, result.stderr
        runs[name], notes[name] = json.loads(out.read_text()), result.stderr
    assert "tracking is off" in notes["tracking"] and "tracking is off" not in notes["plain"]
    for key in ("recall_at_threshold", "average_precision", "faces_counted"):
        assert runs["tracking"][key] == runs["plain"][key], key
