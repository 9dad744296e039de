"""Blink ground truth: closed-eye frame ranges per clip, one small JSON file per clip (``deploy/annotations/blinks``).

Format (``"format": "ims-blinks/1"``); frame numbers are 0-based decoded-frame indices, ranges inclusive::

    {
      "format": "ims-blinks/1",
      "clip": "video00.mp4",             # file name under $IMS_SHARED_DIR/data/videos (the videos stay there)
      "fps": 25,                         # the clip's frame rate
      "frames": 433,                     # decoded frame count
      "annotated_face": "...",           # whose eyes: the face the pipeline publishes as the driver, and how
      "closed_ranges": [[52, 54], ...],  # both eyes closed: lids cover the pupils
      "downcast_ranges": [[36, 165]],    # eyes open but looking down: lids lowered, open/closed not certain from
                                         # the pixels; scored apart (a closure reported here is a "looking down"
                                         # false alarm), never counted as open or closed footage
      "excluded_ranges": [[0, 27]],      # not judged (eyes not visible: face turned away, another person, blur)
      "method": "...",                   # how the ranges were made (looked at, proposals used)
      "notes": "..."                     # optional
    }

Every frame not in a range is *open*. Ranges may not overlap one another. :func:`load_truth` validates all of it
and raises ``SOURCE_UNREADABLE`` naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ims_runtime import errors

FORMAT = "ims-blinks/1"
OPEN, CLOSED, DOWNCAST, EXCLUDED = 0, 1, 2, 3
_RANGE_FIELDS = {"closed_ranges": CLOSED, "downcast_ranges": DOWNCAST, "excluded_ranges": EXCLUDED}
_REQUIRED = {"format": str, "clip": str, "fps": (int, float), "frames": int, "annotated_face": str,
             "closed_ranges": list, "method": str}


@dataclass(frozen=True)
class BlinkTruth:
    """One clip's annotation. Ranges are (start, end) inclusive frame indices."""

    clip: str
    fps: float
    frames: int
    annotated_face: str
    closed_ranges: tuple[tuple[int, int], ...]
    downcast_ranges: tuple[tuple[int, int], ...]
    excluded_ranges: tuple[tuple[int, int], ...]
    method: str
    notes: str = ""

    def first_frames(self, frames: int) -> BlinkTruth:
        """The annotation of the first ``frames`` frames only (ranges cut there): for a replay with
        ``--max-frames``."""
        def cut(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
            return tuple((s, min(e, frames - 1)) for s, e in ranges if s < frames)

        return replace(self, frames=min(frames, self.frames), closed_ranges=cut(self.closed_ranges),
                       downcast_ranges=cut(self.downcast_ranges), excluded_ranges=cut(self.excluded_ranges))

    def frame_labels(self) -> np.ndarray:
        """(frames,) int8: OPEN, CLOSED, DOWNCAST or EXCLUDED per frame."""
        labels = np.full(self.frames, OPEN, np.int8)
        for name, value in _RANGE_FIELDS.items():
            for start, end in getattr(self, name):
                labels[start:end + 1] = value
        return labels


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field '{field}': {problem}")


def _ranges(data: dict, name: str, frames: int) -> tuple[tuple[int, int], ...]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise _Invalid(name, f"must be a list of [start, end] pairs, not {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        ok = (isinstance(item, list) and len(item) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in item))
        if not ok:
            raise _Invalid(f"{name}[{i}]", f"must be [start, end] with integer frame indices, not {item!r}")
        start, end = item
        if not 0 <= start <= end < frames:
            raise _Invalid(f"{name}[{i}]", f"[{start}, {end}] must satisfy 0 <= start <= end < frames ({frames})")
        out.append((start, end))
    return tuple(sorted(out))


def parse_truth(data: object) -> BlinkTruth:
    """Validate a decoded annotation. Raises ``_Invalid`` (field + problem); :func:`load_truth` adds the file."""
    if not isinstance(data, dict):
        raise _Invalid("<top level>", "must be a JSON object")
    for name, kind in _REQUIRED.items():
        if name not in data:
            raise _Invalid(name, "missing")
        if not isinstance(data[name], kind) or isinstance(data[name], bool):
            raise _Invalid(name, f"has the wrong type ({type(data[name]).__name__})")
    if data["format"] != FORMAT:
        raise _Invalid("format", f"is {data['format']!r}; this reader knows {FORMAT!r}")
    if data["frames"] <= 0 or data["fps"] <= 0:
        raise _Invalid("frames" if data["frames"] <= 0 else "fps", "must be positive")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_RANGE_FIELDS) - {"notes"})
    if unknown:
        raise _Invalid(unknown[0], "unknown field (a typo?)")
    frames = data["frames"]
    ranges = {name: _ranges(data, name, frames) for name in _RANGE_FIELDS}
    owner = np.full(frames, "", object)
    for name, items in ranges.items():
        for i, (start, end) in enumerate(items):
            taken = [o for o in owner[start:end + 1] if o]
            if taken:
                raise _Invalid(f"{name}[{i}]", f"[{start}, {end}] overlaps {taken[0]}")
            owner[start:end + 1] = f"{name}[{i}]"
    return BlinkTruth(clip=data["clip"], fps=float(data["fps"]), frames=frames, annotated_face=data["annotated_face"],
                      closed_ranges=ranges["closed_ranges"], downcast_ranges=ranges["downcast_ranges"],
                      excluded_ranges=ranges["excluded_ranges"], method=data["method"],
                      notes=str(data.get("notes", "")))


def load_truth(path: Path) -> BlinkTruth:
    """Read and validate one annotation file (see the module docstring for the format)."""
    path = Path(path)
    if not path.is_file():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"blink annotation {path} not found",
                              "pass a file from deploy/annotations/blinks/")
    try:
        return parse_truth(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path}: not JSON (line {exc.lineno}: {exc.msg})",
                              "fix the file's JSON syntax") from exc
    except _Invalid as exc:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{path}: {exc}",
                              f"see the format in ims_runtime/toolchain/face_state/blink_truth.py ({FORMAT})") from exc
