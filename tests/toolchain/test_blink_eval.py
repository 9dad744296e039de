"""Blink ground truth and its evaluation: episode-matching scenarios (pure), the annotation format's validation,
the committed annotations against their real clips, and ``ims-opt eval blinks`` / ``ims-opt annotate blinks-sheet``
end to end on a short real replay (dev-cpu spec, real detector and face-state model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, shared

from ims_runtime import errors
from ims_runtime.toolchain.face_state import blink_eval, blink_truth
from ims_runtime.toolchain.face_state.blink_truth import BlinkTruth, load_truth, parse_truth

CLOSED, DOWNCAST, EXCLUDED, OPEN = blink_truth.CLOSED, blink_truth.DOWNCAST, blink_truth.EXCLUDED, blink_truth.OPEN

ANNOTATIONS = REPO / "deploy" / "annotations" / "blinks"


def labels(n: int, closed=(), downcast=(), excluded=()) -> np.ndarray:
    out = np.full(n, OPEN, np.int8)
    for value, ranges in ((CLOSED, closed), (DOWNCAST, downcast), (EXCLUDED, excluded)):
        for s, e in ranges:
            out[s:e + 1] = value
    return out


def truth(frames: int = 1500, fps: float = 25.0, closed=(), downcast=(), excluded=()) -> BlinkTruth:
    return BlinkTruth(clip="x.mp4", fps=fps, frames=frames, annotated_face="test", closed_ranges=tuple(closed),
                      downcast_ranges=tuple(downcast), excluded_ranges=tuple(excluded), method="test")


def closed_at(n: int, *ranges) -> np.ndarray:
    out = np.zeros(n, bool)
    for s, e in ranges:
        out[s:e + 1] = True
    return out


# --- episodes and matching -------------------------------------------------------------------------------------

def test_episodes_are_the_maximal_closed_runs_including_at_the_clip_edges():
    assert blink_eval.episodes(closed_at(10, (0, 1), (4, 4), (8, 9))) == [(0, 1), (4, 4), (8, 9)]
    assert blink_eval.episodes(np.zeros(5, bool)) == []


def test_a_blink_overlapped_by_one_frame_is_found_and_nothing_is_false():
    got = blink_eval.match_episodes([(10, 14)], [(14, 16)], labels(30, closed=[(10, 14)]), tolerance_frames=0)
    assert (got["found"], got["missed"], got["false"]) == (1, 0, 0)


def test_a_decision_one_frame_late_is_found_only_within_the_tolerance():
    lab = labels(30, closed=[(10, 14)])
    assert blink_eval.match_episodes([(10, 14)], [(15, 17)], lab, tolerance_frames=1)["found"] == 1
    strict = blink_eval.match_episodes([(10, 14)], [(15, 17)], lab, tolerance_frames=0)
    assert (strict["found"], strict["missed"], strict["false"]) == (0, 1, 1)


def test_a_closure_reported_in_open_footage_is_a_false_closure():
    got = blink_eval.match_episodes([(10, 14)], [(10, 12), (20, 21)], labels(30, closed=[(10, 14)]))
    assert (got["found"], got["false"]) == (1, 1)


def test_a_closure_touching_excluded_frames_is_not_judged():
    got = blink_eval.match_episodes([], [(18, 21)], labels(30, excluded=[(20, 25)]))
    assert (got["false"], got["unjudged_excluded"]) == (0, 1)


def test_a_closure_wholly_while_looking_down_is_counted_apart_from_false_ones():
    lab = labels(40, downcast=[(5, 20)])
    inside = blink_eval.match_episodes([], [(8, 10)], lab)
    assert (inside["false"], inside["false_downcast"]) == (0, 1)
    straddling = blink_eval.match_episodes([], [(19, 23)], lab)  # reaches into open frames: a false closure
    assert (straddling["false"], straddling["false_downcast"]) == (1, 0)


def test_one_long_closure_spanning_two_blinks_finds_both():
    got = blink_eval.match_episodes([(10, 12), (16, 18)], [(9, 19)], labels(30, closed=[(10, 12), (16, 18)]))
    assert (got["found"], got["missed"], got["false"]) == (2, 0, 0)


def test_false_closures_per_minute_count_only_open_footage_and_recalls_are_per_frame():
    # 1500 frames at 25 fps: 1 min; 500 frames are downcast, so 40 s of open footage (minus 5 closed frames)
    t = truth(closed=[(100, 104)], downcast=[(1000, 1499)])
    decided = closed_at(1500, (102, 106), (300, 301), (600, 600), (1200, 1210))
    s = blink_eval.score(decided, t)
    open_frames = 1500 - 500 - 5
    assert s["found"] == 1 and s["false"] == 2 and s["false_downcast"] == 1
    assert s["false_per_open_minute"] == pytest.approx(2 / (open_frames / 25 / 60))
    assert s["closed_recall"] == pytest.approx(3 / 5)
    assert s["open_recall"] == pytest.approx(1 - 5 / open_frames)  # 105, 106, 300, 301, 600
    assert s["balanced_accuracy"] == pytest.approx((3 / 5 + 1 - 5 / open_frames) / 2)
    assert s["downcast_closed_share"] == pytest.approx(11 / 500)


def test_the_always_open_baseline_finds_nothing_and_has_no_closed_recall():
    s = blink_eval.score(np.zeros(1500, bool), truth(closed=[(100, 104), (400, 407)]))
    assert (s["found"], s["missed"], s["false"], s["closed_recall"], s["open_recall"]) == (0, 2, 0, 0.0, 1.0)
    assert s["balanced_accuracy"] == 0.5


# --- the annotation format -------------------------------------------------------------------------------------

GOOD = {"format": "ims-blinks/1", "clip": "video00.mp4", "fps": 25, "frames": 100, "annotated_face": "driver",
        "closed_ranges": [[10, 12]], "downcast_ranges": [[40, 50]], "excluded_ranges": [[0, 5]], "method": "looked"}


def test_a_well_formed_annotation_parses_to_frame_labels():
    t = parse_truth(GOOD)
    lab = t.frame_labels()
    assert lab[11] == CLOSED and lab[45] == DOWNCAST and lab[3] == EXCLUDED and lab[20] == OPEN
    assert t.first_frames(11).closed_ranges == ((10, 10),)


@pytest.mark.parametrize("change, field", [
    ({"frames": "100"}, "frames"),                              # wrong type
    ({"closed_ranges": [[10, 120]]}, "closed_ranges[0]"),       # past the end
    ({"closed_ranges": [[12, 10]]}, "closed_ranges[0]"),        # start after end
    ({"closed_ranges": [[10, "x"]]}, "closed_ranges[0]"),       # not integers
    ({"closed_ranges": [[3, 4]]}, "excluded_ranges[0]"),        # an excluded range overlaps a closed one
    ({"format": "ims-blinks/0"}, "format"),
    ({"closed_range": []}, "closed_range"),                     # a typo'd field name
    ({"_drop": "method"}, "method"),                            # missing
])
def test_a_malformed_annotation_is_a_coded_error_naming_the_file_and_the_field(tmp_path, change, field):
    data = {**GOOD, **{k: v for k, v in change.items() if k != "_drop"}}
    data.pop(change.get("_drop", "-"), None)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(errors.IMSError) as caught:
        load_truth(path)
    assert caught.value.code is errors.SOURCE_UNREADABLE
    assert str(path) in caught.value.message and f"'{field}'" in caught.value.message


def test_a_file_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "ims-blinks/1",\n "clip": }')
    with pytest.raises(errors.IMSError, match="line 2") as caught:
        load_truth(path)
    assert caught.value.code is errors.SOURCE_UNREADABLE


def test_every_committed_annotation_matches_its_real_clip():
    files = sorted(ANNOTATIONS.glob("*.json"))
    assert len(files) == 4
    for path in files:
        t = load_truth(path)
        capture = cv2.VideoCapture(str(shared("data", "videos", t.clip)))
        count, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        assert (t.frames, t.fps) == (count, pytest.approx(fps)), path.name
        assert t.closed_ranges, f"{path.name}: every shared clip has at least one closure"
        assert "looked" in t.method.lower() or "looking" in t.method.lower()


# --- end to end on a real replay -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def short_replay(tmp_path_factory, detector_model, dev_spec_path) -> Path:
    """The first 60 frames of video00 through dev-cpu.yaml (the annotated blink at frames 52-54 is in them)."""
    out = tmp_path_factory.mktemp("blinks") / "video00_60.jsonl"
    subprocess.run([sys.executable, "-m", "ims_runtime.cli", "replay", "--spec", str(dev_spec_path),
                    str(shared("data", "videos", "video00.mp4")), "--max-frames", "60", "--out", str(out),
                    "--no-progress"], check=True, capture_output=True, cwd=REPO)
    return out


def ims_opt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ims_runtime.toolchain.cli", *args], capture_output=True, text=True,
                          cwd=REPO, check=False)


def test_eval_blinks_scores_a_real_replay_with_its_baselines(short_replay, tmp_path):
    out = tmp_path / "blinks.json"
    run = ims_opt("eval", "blinks", "--replay", str(short_replay), "--truth", str(ANNOTATIONS / "video00.json"),
                  "--teacher", "--json", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["truth"]["frames"] == 60 and result["truth"]["closure_episodes"] == 1
    scores = result["scores"]
    assert set(scores) == {"published_closed", "openness_below_0.25", "baseline_always_open",
                           "teacher_omz_open_closed_eye"}
    baseline = scores["baseline_always_open"]
    assert (baseline["found"], baseline["false"], baseline["open_recall"]) == (0, 0, 1.0)
    for s in scores.values():
        assert s["found"] + s["missed"] == 1 and 0.0 <= s["open_recall"] <= 1.0
    assert "published_closed" in run.stdout and "baseline_always_open" in run.stdout


def test_eval_blinks_refuses_the_annotation_of_another_clip(short_replay):
    run = ims_opt("eval", "blinks", "--replay", str(short_replay), "--truth", str(ANNOTATIONS / "video01.json"))
    assert run.returncode == errors.SOURCE_UNREADABLE.exit_code
    assert run.stderr.startswith("error[SOURCE_UNREADABLE]") and "video01.mp4" in run.stderr
    assert "Traceback" not in run.stderr


def test_blinks_sheet_tiles_the_requested_frames(short_replay, tmp_path):
    run = ims_opt("annotate", "blinks-sheet", str(shared("data", "videos", "video00.mp4")), "--replay",
                  str(short_replay), "--out", str(tmp_path), "--frames", "50", "59", "--columns", "5", "--rows", "2")
    assert run.returncode == 0, run.stderr
    sheets = sorted(tmp_path.glob("video00_*.png"))
    assert [p.name for p in sheets] == ["video00_0050.png"]
    image = cv2.imread(str(sheets[0]))
    assert image.shape == (2 * (64 + 16), 5 * 176, 3)
    assert image[:64, :176].std() > 5  # a real eye strip, not an empty tile
