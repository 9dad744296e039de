"""Contact sheets for annotating blinks by eye: the driver's eye region of every frame, tiled with frame numbers.

``ims-opt annotate blinks-sheet CLIP --replay RUN.jsonl --out DIR`` writes ``DIR/<clip>_NN.png``, each a grid of
levelled both-eye strips (``eye_crops.eye_strip``) of the face the pipeline published as the driver, in frame
order. Under each strip: the frame number, the driver box's centre x (a jump means the pipeline switched to
another face) and, with ``--teacher``, the OMZ open/closed-eye teacher's closed probability (a *proposal* to
look at, never the annotation). A frame without a driver face is a grey tile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import errors
from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.toolchain.face_state.eye_crops import OmzEyeState, eye_strip
from ims_runtime.toolchain.face_state.replay_track import ReplayTrack, load_replay

TILE_WH = (176, 64)
LABEL_PX = 16


def read_frames(clip: Path) -> list[np.ndarray]:
    """Every frame of a video as BGR uint8 (the clips here are a few hundred 720p frames)."""
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"cannot open video {clip}", "pass a readable video file")
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def teacher_closed_per_frame(frames: list[np.ndarray], track: ReplayTrack,
                             teacher: OmzEyeState | None = None) -> np.ndarray:
    """(N,) OMZ teacher's closed probability (mean of both eyes) of the driver face per replayed frame; NaN
    without a face."""
    teacher = teacher or OmzEyeState.find()
    out = np.full(track.frames, np.nan)
    for i, frame_id in enumerate(track.frame_id):
        if track.present[i] and frame_id < len(frames):
            out[i] = teacher.face_closed_probability(frames[frame_id], track.landmarks_px[i])
    return out


def _tile(image: np.ndarray | None, label: str, highlight: bool, tile_wh: tuple[int, int]) -> np.ndarray:
    w, h = tile_wh
    tile = np.full((h + LABEL_PX, w, 3), 40, np.uint8)
    if image is not None:
        tile[:h] = image
    if highlight:  # the teacher proposes "closed": a red frame to draw the eye, not a decision
        cv2.rectangle(tile, (0, 0), (w - 1, h - 1), (0, 0, 255), 2)
    cv2.putText(tile, label, (2, h + LABEL_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def write_sheets(clip: Path, replay: Path, out_dir: Path, columns: int = 10, rows: int = 10,
                 teacher: bool = False, propose_above: float = 0.5, frames_range: tuple[int, int] | None = None,
                 face: bool = False, tile_width_px: int = TILE_WH[0],
                 log: Callable[[str], None] = print) -> list[Path]:
    """Write the contact sheets of one clip (or of the inclusive ``frames_range``); returns their paths.

    ``face``: taller tiles showing brows to mouth (context for a strip that is ambiguous: looking down vs
    closed, a squint in a laugh)."""
    tile_wh = (tile_width_px, tile_width_px if face else tile_width_px * TILE_WH[1] // TILE_WH[0])
    track = load_replay(replay)
    frames = read_frames(clip)
    if track.frames > len(frames):
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"replay {replay} has {track.frames} frames but {clip} only "
                              f"{len(frames)}", "pass the clip the replay was made from")
    closed_p = teacher_closed_per_frame(frames, track) if teacher else np.full(track.frames, np.nan)
    first, last = frames_range or (0, int(track.frame_id[-1]))
    tiles, shown = [], []
    for i, frame_id in enumerate(track.frame_id):
        if not first <= frame_id <= last:
            continue
        shown.append(int(frame_id))
        crop, label = None, f"{frame_id} --"
        if track.present[i]:
            box = track.box_xyxy_px[i]
            crop = eye_strip(frames[frame_id], track.landmarks_px[i], box, tile_wh, 1.6 if face else 1.0)
            label = f"{frame_id} x{(box[0] + box[2]) / 2:.0f}"
            if teacher:
                label += f" c{closed_p[i]:.2f}"
        tiles.append(_tile(crop, label, bool(closed_p[i] > propose_above), tile_wh))
    per_sheet = columns * rows
    written = []
    for k in range(0, len(tiles), per_sheet):
        chunk = tiles[k:k + per_sheet]
        chunk += [np.zeros_like(tiles[0])] * (per_sheet - len(chunk))
        grid = np.vstack([np.hstack(chunk[r * columns:(r + 1) * columns]) for r in range(rows)])
        ok, png = cv2.imencode(".png", grid)
        if not ok:
            raise errors.IMSError(errors.OUTPUT_UNWRITABLE, "PNG encoding failed", "check OpenCV's image codecs")
        path = out_dir / f"{clip.stem}{'_face' if face else ''}_{shown[k]:04d}.png"
        atomic_write_bytes(path, png.tobytes())
        written.append(path)
        log(f"wrote {path} (frames {shown[k]}–{shown[min(k + per_sheet, len(shown)) - 1]})")
    return written
