"""Blinks on video against ground truth (``blink_truth``): closure episodes found / missed / false, false closures
per minute of open-eyed footage, and per-frame agreement, for any per-frame "closed" decision.

**Episode rule.** An episode is a maximal run of consecutive frames decided (or annotated) closed. A true episode
is *found* when at least one predicted episode shares a frame with it after the true range is widened by
``tolerance_frames`` on each side (the annotation's onset/offset is uncertain by about a frame, and the stage's
hysteresis may lag). A predicted episode that touches no widened true episode is *false*, unless it touches a
frame annotated ``excluded`` (not judged) or lies wholly in ``downcast`` frames (counted apart as a closure
reported while looking down). False closures per minute = false episodes / minutes of open-annotated frames.

**Per frame.** Over frames annotated open or closed only: closed recall (closed frames decided closed), open
recall (open frames decided open), balanced accuracy (their mean). Downcast frames: the share decided closed.

:func:`evaluate_replay` is the entry point for other tools (the eye-state model's evaluation): a replay JSONL (or
a loaded :class:`ReplayTrack`) and a truth file in, a JSON-ready dict out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ims_runtime import errors
from ims_runtime.toolchain.face_state.blink_truth import (
    CLOSED,
    DOWNCAST,
    EXCLUDED,
    OPEN,
    BlinkTruth,
    load_truth,
)
from ims_runtime.toolchain.face_state.replay_track import ReplayTrack, load_replay

Range = tuple[int, int]

#: the eye-closure threshold of the stage's hysteresis in deploy/specs/*.yaml (stages.face_state.eye_closed_below)
DEFAULT_OPENNESS_THRESHOLD = 0.25
DEFAULT_TOLERANCE_FRAMES = 1


def episodes(closed: np.ndarray) -> list[Range]:
    """Maximal runs of True in a (N,) bool array, as inclusive (start, end) ranges."""
    padded = np.concatenate([[False], np.asarray(closed, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _overlaps(a: Range, b: Range) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def match_episodes(truth: list[Range], predicted: list[Range], labels: np.ndarray,
                   tolerance_frames: int = DEFAULT_TOLERANCE_FRAMES) -> dict[str, int]:
    """Count found / missed true episodes and false / excluded / downcast predicted episodes (rule: module doc).

    ``labels`` (N,) per-frame annotation (OPEN, CLOSED, DOWNCAST, EXCLUDED) for the excluded / downcast tests."""
    widened = [(s - tolerance_frames, e + tolerance_frames) for s, e in truth]
    found = sum(any(_overlaps(t, p) for p in predicted) for t in widened)
    false = unjudged = downcast = 0
    for start, end in predicted:
        if any(_overlaps(t, (start, end)) for t in widened):
            continue
        span = labels[start:end + 1]
        if (span == EXCLUDED).any():
            unjudged += 1
        elif (span == DOWNCAST).all():
            downcast += 1
        else:
            false += 1
    return {"true_episodes": len(truth), "found": found, "missed": len(truth) - found,
            "predicted_episodes": len(predicted), "false": false, "false_downcast": downcast,
            "unjudged_excluded": unjudged}


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def score(closed: np.ndarray, truth: BlinkTruth, tolerance_frames: int = DEFAULT_TOLERANCE_FRAMES) -> dict:
    """All blink figures for one per-frame decision ``closed`` (N,) bool, N = ``truth.frames``."""
    closed = np.asarray(closed, bool)
    if len(closed) != truth.frames:
        raise ValueError(f"{len(closed)} decisions for a clip of {truth.frames} frames")
    labels = truth.frame_labels()
    result: dict = match_episodes(list(truth.closed_ranges), episodes(closed), labels, tolerance_frames)
    open_frames = int((labels == OPEN).sum())
    open_minutes = open_frames / truth.fps / 60.0
    result["open_minutes"] = open_minutes
    result["false_per_open_minute"] = _ratio(result["false"], open_minutes)
    result["found_share"] = _ratio(result["found"], result["true_episodes"])
    closed_recall = _ratio((closed & (labels == CLOSED)).sum(), (labels == CLOSED).sum())
    open_recall = _ratio((~closed & (labels == OPEN)).sum(), open_frames)
    result["closed_recall"] = closed_recall
    result["open_recall"] = open_recall
    result["balanced_accuracy"] = (None if closed_recall is None or open_recall is None
                                   else (closed_recall + open_recall) / 2)
    result["downcast_closed_share"] = _ratio((closed & (labels == DOWNCAST)).sum(), (labels == DOWNCAST).sum())
    return result


def truth_counts(truth: BlinkTruth) -> dict:
    labels = truth.frame_labels()
    return {"clip": truth.clip, "frames": truth.frames, "fps": truth.fps, "closure_episodes": len(truth.closed_ranges),
            "closed_frames": int((labels == CLOSED).sum()), "open_frames": int((labels == OPEN).sum()),
            "downcast_frames": int((labels == DOWNCAST).sum()), "excluded_frames": int((labels == EXCLUDED).sum())}


def decisions(track: ReplayTrack, frames: int, openness_threshold: float,
              teacher_closed_p: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-frame closed decisions to score, (frames,) bool each, indexed by frame number: the published
    ``eyes.closed``, published openness below a threshold, the "always open" baseline and, if given, the OMZ
    teacher (closed probability > 0.5). A frame the replay has no face state for is "not closed"."""
    def by_frame(values: np.ndarray) -> np.ndarray:
        out = np.zeros(frames, bool)
        keep = track.frame_id < frames
        out[track.frame_id[keep]] = values[keep]
        return out

    openness = np.nan_to_num(track.eye_openness, nan=1.0)
    result = {"published_closed": by_frame(track.eyes_closed),
              f"openness_below_{openness_threshold:g}": by_frame(openness < openness_threshold),
              "baseline_always_open": np.zeros(frames, bool)}
    if teacher_closed_p is not None:
        result["teacher_omz_open_closed_eye"] = by_frame(np.nan_to_num(teacher_closed_p, nan=0.0) > 0.5)
    return result


def evaluate_replay(replay: Path | ReplayTrack, truth: Path | BlinkTruth,
                    openness_threshold: float = DEFAULT_OPENNESS_THRESHOLD,
                    teacher_closed_p: np.ndarray | None = None,
                    tolerance_frames: int = DEFAULT_TOLERANCE_FRAMES) -> dict:
    """Blink figures of one replay against one annotation: ``{"truth": counts, "rule": ..., "scores": {name:
    figures}}`` with the published decision, the openness threshold, "always open" and (optional) the teacher's
    per-frame closed probability (N,) aligned with the replay's rows."""
    track = replay if isinstance(replay, ReplayTrack) else load_replay(replay)
    truth = truth if isinstance(truth, BlinkTruth) else load_truth(truth)
    if track.source and Path(track.source).name != truth.clip:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"the replay is of {Path(track.source).name} but the "
                              f"annotation is of {truth.clip}", "pass the annotation of the replayed clip")
    replayed = int(track.frame_id.max()) + 1
    if replayed > truth.frames:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"the replay has frame {replayed - 1} but the annotation of "
                              f"{truth.clip} only {truth.frames} frames", "re-annotate or pass the right files")
    truth = truth.first_frames(replayed)  # a replay made with --max-frames is scored on its frames only
    per_frame = decisions(track, truth.frames, openness_threshold, teacher_closed_p)
    labels = truth.frame_labels()
    openness = np.full(truth.frames, np.nan)
    openness[track.frame_id] = track.eye_openness

    def mean_openness(label: int) -> float | None:
        values = openness[(labels == label) & np.isfinite(openness)]
        return float(values.mean()) if len(values) else None

    return {"truth": truth_counts(truth), "replay_frames": track.frames,
            "frames_with_face_state": int(np.isfinite(track.eye_openness).sum()),
            "mean_openness": {"open_frames": mean_openness(OPEN), "closed_frames": mean_openness(CLOSED),
                              "downcast_frames": mean_openness(DOWNCAST)},
            "rule": f"episode found when a predicted episode overlaps the true range widened by {tolerance_frames} "
                    "frame(s) each side",
            "scores": {name: score(closed, truth, tolerance_frames) for name, closed in per_frame.items()}}


def pooled(results: Mapping[str, dict]) -> dict[str, dict]:
    """Sum the episode counts and open minutes of several clips' :func:`evaluate_replay` results per decision;
    per-frame recalls are not pooled (they are per clip)."""
    out: dict[str, dict] = {}
    for result in results.values():
        for name, s in result["scores"].items():
            name = "openness_below" if name.startswith("openness_below") else name
            acc = out.setdefault(name, {"true_episodes": 0, "found": 0, "false": 0, "false_downcast": 0,
                                        "open_minutes": 0.0})
            for key in acc:
                acc[key] += s[key]
    for acc in out.values():
        acc["found_share"] = _ratio(acc["found"], acc["true_episodes"])
        acc["false_per_open_minute"] = _ratio(acc["false"], acc["open_minutes"])
    return out


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_table(results: Mapping[str, dict]) -> str:
    """One row per clip and decision."""
    lines = [(f"{'clip':<12}{'decision':<30}{'found':>8}{'false':>7}{'false/min':>10}{'closed rec':>11}"
              f"{'open rec':>9}{'bal acc':>8}{'downcast→closed':>16}")]
    for clip, result in results.items():
        for name, s in result["scores"].items():
            lines.append(f"{clip:<12}{name:<30}{s['found']:>4}/{s['true_episodes']:<3}{s['false']:>7}"
                         f"{_fmt(s['false_per_open_minute']):>10}{_fmt(s['closed_recall']):>11}"
                         f"{_fmt(s['open_recall']):>9}{_fmt(s['balanced_accuracy']):>8}"
                         f"{_fmt(s['downcast_closed_share']):>16}")
    return "\n".join(lines)
