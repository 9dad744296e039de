"""Camera-blocked detection: scenario tests on real footage made covered, black or saturated, through the real
replay command (a written MP4, the dev-cpu pipeline), plus the check's time hysteresis as pure scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import cli

from ims_runtime.spec.schema import CameraCheckSpec
from ims_runtime.stages.camera_check import CameraBlockedCheck

FPS = 30
NS = 1_000_000_000


def _covered(frame: np.ndarray) -> np.ndarray:
    """A hand over the lens: the scene blurred beyond recognition and most light gone."""
    return (cv2.GaussianBlur(frame, (0, 0), 25) * 0.12).astype(np.uint8)


def _lens_cap(frame: np.ndarray) -> np.ndarray:
    """A lens cap / black image: sensor noise around black level."""
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(4, 2, frame.shape), 0, 255).astype(np.uint8)


def _saturated(frame: np.ndarray) -> np.ndarray:
    """A light shone into the lens: everything clipped to white."""
    return cv2.GaussianBlur(np.clip(frame.astype(np.int32) * 4 + 120, 0, 255).astype(np.uint8), (0, 0), 8)


def _dimmed(frame: np.ndarray) -> np.ndarray:
    """Night-time without IR: a quarter of the light, the scene still visible — not blocked."""
    return (frame * 0.25).astype(np.uint8)


def write_clip(path: Path, source: Path, spans: list[tuple[int, object]]) -> list[bool]:
    """Write ``path`` (MP4, 30 fps) from ``source``'s frames: each span is (frame count, transform or None).
    Returns, per written frame, whether it was transformed."""
    cap = cv2.VideoCapture(str(source))
    ok, frame = cap.read()
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    altered = []
    for count, transform in spans:
        for _ in range(count):
            if not ok:  # loop the clip if it is shorter
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = cap.read()
            writer.write(transform(frame) if transform else frame)
            altered.append(transform is not None)
            ok, frame = cap.read()
    writer.release()
    cap.release()
    return altered


def replay(tmp_path: Path, clip: Path) -> list[dict]:
    out = tmp_path / "run.jsonl"
    run = cli("replay", "--spec", "deploy/specs/dev-cpu.yaml", str(clip), "--out", str(out), "--no-progress",
              timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def first(lines: list[dict], start: int, predicate) -> int | None:
    return next((i for i in range(start, len(lines)) if predicate(lines[i])), None)


def has_alert(line: dict, kind: str) -> bool:
    return any(a["type"] == kind for a in line["alerts"])


@pytest.mark.parametrize("transform", [_covered, _lens_cap, _saturated], ids=["hand_over_lens", "lens_cap",
                                                                               "saturated"])
def test_blocked_lens_raises_camera_blocked_and_clears_when_uncovered(tmp_path, clip, detector_model, transform):
    """2 s of the real clip, 5 s blocked, 3 s uncovered. camera_blocked is set within blocked_after_s (+ a frame)
    of the covering, the policy's camera_blocked alert follows camera_blocked_after_s later, the frames are marked
    invalid meanwhile, and both clear within clear_after_s of uncovering."""
    check, policy_after_s = CameraCheckSpec(), 3.0
    video = tmp_path / "covered.mp4"
    write_clip(video, clip, [(2 * FPS, None), (5 * FPS, transform), (3 * FPS, None)])
    lines = replay(tmp_path, video)
    assert len(lines) == 10 * FPS
    cover, uncover = 2 * FPS, 7 * FPS
    assert not any(line["camera_blocked"] for line in lines[:cover])
    assert all(line["valid"] for line in lines[:cover])
    blocked_at = first(lines, cover, lambda line: line["camera_blocked"])
    assert blocked_at is not None and (blocked_at - cover) / FPS <= check.blocked_after_s + 2 / FPS
    assert all(line["camera_blocked"] and not line["valid"] and "camera_blocked" in line["degraded"]
               for line in lines[blocked_at:uncover])
    alert_at = first(lines, cover, lambda line: has_alert(line, "camera_blocked"))
    assert alert_at is not None and alert_at < uncover
    assert abs((alert_at - blocked_at) / FPS - policy_after_s) <= 2 / FPS
    assert lines[uncover - 1]["availability"] != "ok"
    cleared_at = first(lines, uncover, lambda line: not line["camera_blocked"])
    assert cleared_at is not None and (cleared_at - uncover) / FPS <= check.clear_after_s + 2 / FPS
    assert not any(line["camera_blocked"] or has_alert(line, "camera_blocked") for line in lines[cleared_at:])
    assert lines[-1]["valid"] and lines[-1]["face"]["present"]


def test_dim_but_visible_scene_is_not_blocked(tmp_path, clip, detector_model):
    video = tmp_path / "dim.mp4"
    write_clip(video, clip, [(4 * FPS, _dimmed)])
    lines = replay(tmp_path, video)
    assert not any(line["camera_blocked"] for line in lines)


# --- the check's time hysteresis: pure scenarios ---------------------------------------------------------------

def _frames(check: CameraBlockedCheck, image: np.ndarray, face: bool, start_s: float, seconds: float) -> list[bool]:
    n = round(seconds * FPS)
    return [check.update(int((start_s + i / FPS) * NS), image, face) for i in range(n)]


def test_a_hand_passing_the_lens_for_half_a_second_is_ignored():
    check = CameraBlockedCheck(CameraCheckSpec(blocked_after_s=1.0, clear_after_s=0.5))
    black, scene = np.zeros((90, 160, 3), np.uint8), np.random.default_rng(1).integers(0, 255, (90, 160, 3), np.uint8)
    assert not any(_frames(check, black, False, 0.0, 0.5))
    assert not any(_frames(check, scene, False, 0.5, 1.0))


def test_a_face_in_view_is_never_blocked_even_in_a_dark_frame():
    check = CameraBlockedCheck(CameraCheckSpec())
    assert not any(_frames(check, np.zeros((90, 160, 3), np.uint8), True, 0.0, 3.0))


def test_blocked_needs_blocked_after_s_and_clears_after_clear_after_s():
    check = CameraBlockedCheck(CameraCheckSpec(blocked_after_s=1.0, clear_after_s=0.5))
    black, scene = np.zeros((90, 160, 3), np.uint8), np.random.default_rng(1).integers(0, 255, (90, 160, 3), np.uint8)
    states = _frames(check, black, False, 0.0, 2.0)
    assert states.index(True) == FPS  # exactly 1.0 s after the first blocked frame
    states = _frames(check, scene, False, 2.0, 1.0)
    assert states.index(False) == FPS // 2
