"""The driver's face, frame by frame, as ``ims-runtime replay --out RUN.jsonl`` published it.

One :class:`ReplayTrack` holds arrays (one row per replayed frame) of what the evaluations compare with ground
truth or teachers: the driver box and landmarks (which face the pipeline chose), eye openness and ``eyes.closed``,
head pose and gaze. Frames without a face (or with the face-state stage off) carry NaN / False.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ims_runtime import errors


@dataclass(frozen=True)
class ReplayTrack:
    """``frame_id`` (N,) int; ``present`` (N,) bool (a driver face was published); ``box_xyxy_px`` (N, 4) and
    ``landmarks_px`` (N, 5, 2) frame pixels; ``eye_open_left_right`` (N, 2) 0..1; ``eyes_closed`` (N,) bool (the
    stage's hysteresis decision); ``head_yaw_pitch_roll_deg`` (N, 3); ``gaze_pitch_yaw_rad`` (N, 2);
    ``reliable`` (N,) bool; ``t_capture_s`` (N,) seconds from the first frame; ``source`` the input's name."""

    source: str
    frame_id: np.ndarray
    t_capture_s: np.ndarray
    present: np.ndarray
    box_xyxy_px: np.ndarray
    landmarks_px: np.ndarray
    eye_open_left_right: np.ndarray
    eyes_closed: np.ndarray
    head_yaw_pitch_roll_deg: np.ndarray
    gaze_pitch_yaw_rad: np.ndarray
    reliable: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.frame_id)

    @property
    def fps(self) -> float:
        """Frame rate from the capture timestamps (the source's nominal rate in a replay)."""
        if self.frames < 2 or self.t_capture_s[-1] <= self.t_capture_s[0]:
            return float("nan")
        return float((self.frames - 1) / (self.t_capture_s[-1] - self.t_capture_s[0]))

    @property
    def eye_openness(self) -> np.ndarray:
        """(N,) mean openness of both eyes (what the stage's hysteresis reads); NaN without a face state."""
        return self.eye_open_left_right.mean(1)


def _nan(n: int, *shape: int) -> np.ndarray:
    return np.full((n, *shape), np.nan, np.float64)


def load_replay(path: Path) -> ReplayTrack:
    """Read a replay JSONL. Raises :class:`errors.IMSError` (``SOURCE_NOT_FOUND`` / ``SOURCE_UNREADABLE``) naming
    the file and line for a missing file or a line that is not a ``driver_state`` message."""
    path = Path(path)
    if not path.is_file():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"replay {path} not found",
                              "make it with: ims-runtime replay --spec deploy/specs/dev-cpu.yaml CLIP --out RUN.jsonl")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                face = row["face"]
                rows.append((row["frame_id"], row["t_capture_ns"], row.get("source", ""), face, row.get("eyes"),
                             row.get("head_pose"), row.get("gaze"), row.get("face_state")))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path} line {number}: not a driver_state message "
                                      f"({type(exc).__name__}: {exc})",
                                      "pass the JSONL written by `ims-runtime replay --out`") from exc
    n = len(rows)
    if n == 0:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"replay {path} holds no messages",
                              "re-run ims-runtime replay on the clip")
    box, marks, eyes, head, gaze = _nan(n, 4), _nan(n, 5, 2), _nan(n, 2), _nan(n, 3), _nan(n, 2)
    present, closed, reliable = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    for i, (_, _, _, face, eye, pose, direction, state) in enumerate(rows):
        if face.get("present"):
            present[i] = True
            box[i] = face["box_xyxy_px"]
            marks[i] = face["landmarks_px"]
        if eye:
            eyes[i] = (eye["left_open"], eye["right_open"])
            closed[i] = bool(eye["closed"])
        if pose:
            head[i] = (pose["yaw_deg"], pose["pitch_deg"], pose["roll_deg"])
        if direction:
            gaze[i] = (direction["pitch_rad"], direction["yaw_rad"])
        reliable[i] = bool(state and state.get("reliable"))
    t_ns = np.array([r[1] for r in rows], np.float64)
    return ReplayTrack(source=str(rows[0][2]), frame_id=np.array([r[0] for r in rows], np.int64),
                       t_capture_s=(t_ns - t_ns[0]) / 1e9, present=present, box_xyxy_px=box, landmarks_px=marks,
                       eye_open_left_right=eyes, eyes_closed=closed, head_yaw_pitch_roll_deg=head,
                       gaze_pitch_yaw_rad=gaze, reliable=reliable)
