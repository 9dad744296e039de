"""The annotated video of a run: each recorded frame with what the pipeline said about it (driver box, landmarks,
gaze arrow, head axes, eye state, active alerts as a banner, frame time), encoded with PyAV in a format browsers
play: H.264 in MP4 when the PyAV wheel has an H.264 encoder (the PyPI wheel ships libx264), else VP9 in WebM.
OpenCV's wheel has no H.264 writer, which is why PyAV encodes. A strip of annotated keyframes (JPEG) is written
beside it as the fallback for a browser that cannot play either.

The frames are read with the runtime's own sources (:mod:`ims_runtime.pipeline.sources`), so frame *k* of the
video is the frame the message with ``frame_id`` *k* describes, and video time equals the run's ``t_s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ims_runtime import errors
from ims_runtime.atomic import atomic_output
from ims_runtime.pipeline.sources import FrameSource, ImageFolderSource, VideoFileSource
from ims_runtime.report.run_data import RunSeries, alert_events

#: (codec, container format, file suffix, MIME type for <video>), in order of preference
ENCODERS = (("libx264", "mp4", ".mp4", 'video/mp4; codecs="avc1.64001f"'),
            ("libvpx-vp9", "webm", ".webm", 'video/webm; codecs="vp9"'))
KEYFRAMES = 8
KEYFRAME_WIDTH_PX = 320
GREEN, RED, YELLOW, BLUE, WHITE = (80, 200, 80), (40, 40, 220), (0, 215, 255), (230, 140, 30), (255, 255, 255)


@dataclass
class Keyframe:
    frame_index: int
    t_s: float
    file: str
    caption: str


@dataclass
class VideoResult:
    """``file``: the video beside the page (None when no encoder was available); ``keyframes`` always."""

    file: str | None
    mime: str | None
    codec: str | None
    frames: int
    fps: float
    width_px: int
    height_px: int
    keyframes: list[Keyframe] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def pick_encoder() -> tuple[str, str, str, str] | None:
    """The first codec of :data:`ENCODERS` this PyAV build can encode with, or None."""
    for codec, fmt, suffix, mime in ENCODERS:
        try:
            av.codec.Codec(codec, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        return codec, fmt, suffix, mime
    return None


def open_recording(path: Path, fps: float | None) -> FrameSource:
    path = Path(path)
    return ImageFolderSource(path, fps=fps) if path.is_dir() else VideoFileSource(path)


def _rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation in image axes (x right, y down, z into the scene) for the message's conventions: yaw > 0 turns
    toward the image's right edge, pitch > 0 up, roll > 0 clockwise in the image."""
    y, p, r = np.radians([-yaw_deg, -pitch_deg, roll_deg])
    rot_y = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rot_z = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def _arrow(image: np.ndarray, origin: np.ndarray, vector_xy: np.ndarray, colour: tuple[int, int, int],
           thickness: int) -> None:
    tip = origin + vector_xy
    cv2.arrowedLine(image, tuple(int(v) for v in origin), tuple(int(v) for v in tip), colour, thickness,
                    cv2.LINE_AA, tipLength=0.2)


def _text(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def annotate(image_bgr: np.ndarray, series: RunSeries, i: int) -> np.ndarray:
    """Draw frame ``i``'s message onto a copy of the (already scaled) image; coordinates scaled by the caller."""
    image = image_bgr
    height_px = image.shape[0]
    scale = max(height_px / 360, 0.6)
    if series.face_present[i] and np.isfinite(series.box_xyxy_px[i]).all():
        x1, y1, x2, y2 = series.box_xyxy_px[i]
        reliable = series.reliable[i] != 0.0
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), GREEN if reliable else YELLOW, 2)
        for x, y in series.landmarks_px[i]:
            if np.isfinite(x):
                cv2.circle(image, (int(x), int(y)), 3, YELLOW, -1, cv2.LINE_AA)
        size_px = float(x2 - x1)
        if np.isfinite(series.head_yaw_deg[i]):
            rot = _rotation(series.head_yaw_deg[i], series.head_pitch_deg[i], series.head_roll_deg[i])
            nose = series.landmarks_px[i][2] if np.isfinite(series.landmarks_px[i][2]).all() \
                else np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            # head axes: x (face's right in the image) red, up green, forward (toward the camera) blue
            for axis, colour in (((1, 0, 0), RED), ((0, -1, 0), GREEN), ((0, 0, -1), BLUE)):
                _arrow(image, nose, (rot @ np.array(axis))[:2] * 0.35 * size_px, colour, 2)
        if np.isfinite(series.gaze_yaw_rad[i]) and np.isfinite(series.landmarks_px[i][:2]).all():
            eyes = series.landmarks_px[i][:2].mean(axis=0)
            rot = _rotation(math.degrees(series.gaze_yaw_rad[i]), math.degrees(series.gaze_pitch_rad[i]), 0.0)
            on_road = series.on_road[i] == 1.0
            _arrow(image, eyes, (rot @ np.array((0, 0, -1)))[:2] * 0.8 * size_px, GREEN if on_road else RED, 3)
        if np.isfinite(series.left_open[i]):
            closed = series.eyes_closed[i] == 1.0
            label = ("EYES CLOSED" if closed else "eyes open") + \
                f"  L {series.left_open[i]:.2f}  R {series.right_open[i]:.2f}"
            # under the box: the alert banner covers the top of the frame
            _text(image, label, (int(x1), min(int(y2) + int(20 * scale), height_px - int(30 * scale))),
                  RED if closed else WHITE, 0.5 * scale)
    alerts = series.active_alerts[i]
    if alerts:
        banner_px = int(34 * scale)
        cv2.rectangle(image, (0, 0), (image.shape[1], banner_px), (30, 30, 200), -1)
        text = "  ".join(f"{a['type'].upper()} L{a.get('level', 1)}" for a in alerts)
        _text(image, text, (10, int(banner_px * 0.7)), WHITE, 0.6 * scale)
    availability = series.availability[i]
    footer = f"t {series.t_s[i]:7.2f} s   frame {int(series.frame_id[i])}"
    if availability not in (None, "ok"):
        footer += f"   {availability}"
    _text(image, footer, (10, height_px - 12), WHITE, 0.55 * scale)
    return image


def _scaled_series(series: RunSeries, factor: float) -> RunSeries:
    """The series with pixel coordinates multiplied by ``factor`` (for a downscaled video)."""
    return dataclasses.replace(series, box_xyxy_px=series.box_xyxy_px * factor, landmarks_px=series.landmarks_px * factor)


def _keyframe_indices(series: RunSeries, count: int) -> dict[int, str]:
    """Evenly spaced frames plus each alert's onset frame: ``{frame index: caption}``."""
    n = series.frames
    chosen = {int(i): f"{series.t_s[int(i)]:.1f} s" for i in np.linspace(0, n - 1, min(count, n))}
    for event in alert_events(series)[:count]:
        i = int(np.clip(np.searchsorted(series.t_s, event.onset_s - 1e-9), 0, n - 1))
        chosen[i] = f"{series.t_s[i]:.1f} s · {event.type} onset"
    return dict(sorted(chosen.items()))


def write_annotated_video(series: RunSeries, recording: Path, out_dir: Path, max_width_px: int = 640,
                          keyframes: int = KEYFRAMES) -> VideoResult:
    """Read ``recording`` (the file or image folder the run was made from), draw each frame's message, encode the
    video into ``out_dir`` (atomically) and write the keyframe strip to ``out_dir/keyframes/``.

    Frames beyond the run (``replay --max-frames``) are not written; a frame with no message (dropped by a live
    scheduler) shows the latest earlier message."""
    source = open_recording(recording, fps=1 / series.frame_period_s)
    fps = float(source.nominal_fps or 1 / series.frame_period_s)
    encoder = pick_encoder()
    wanted = _keyframe_indices(series, keyframes)
    (out_dir / "keyframes").mkdir(parents=True, exist_ok=True)
    result = VideoResult(None, None, None, 0, fps, 0, 0)
    try:
        frames = source.frames()
        first = next(frames, None)
        if first is None:
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{recording} has no frame", "give the run's recording")
        height_px, width_px = first.image_bgr.shape[:2]
        factor = min(1.0, max_width_px / width_px)
        result.width_px, result.height_px = (round(width_px * factor / 2) * 2,
                                             round(height_px * factor / 2) * 2)
        scaled = _scaled_series(series, result.width_px / width_px)
        with _encoder(out_dir, encoder, result) as encode:
            message_index = 0
            for frame in itertools.chain([first], frames):
                while message_index + 1 < series.frames and series.frame_id[message_index + 1] <= frame.frame_id:
                    message_index += 1
                if frame.frame_id > series.frame_id[-1]:
                    break
                image = cv2.resize(frame.image_bgr, (result.width_px, result.height_px), interpolation=cv2.INTER_AREA)
                image = annotate(image, scaled, message_index)
                encode(image)
                if message_index in wanted and series.frame_id[message_index] == frame.frame_id:
                    _write_keyframe(image, out_dir, message_index, series, wanted, result)
    finally:
        source.close()
    return result


def _write_keyframe(image: np.ndarray, out_dir: Path, i: int, series: RunSeries, wanted: dict[int, str],
                    result: VideoResult) -> None:
    height_px = round(image.shape[0] * KEYFRAME_WIDTH_PX / image.shape[1])
    small = cv2.resize(image, (KEYFRAME_WIDTH_PX, height_px), interpolation=cv2.INTER_AREA)
    _ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    name = f"keyframes/frame{int(series.frame_id[i]):06d}.jpg"
    with atomic_output(out_dir / name, "wb") as handle:
        handle.write(jpeg.tobytes())
    result.keyframes.append(Keyframe(i, float(series.t_s[i]), name, wanted[i]))


@contextlib.contextmanager
def _encoder(out_dir: Path, encoder: tuple[str, str, str, str] | None,
             result: VideoResult) -> Iterator[Callable[[np.ndarray], None]]:
    """Yields ``encode(bgr_image)``; on a normal exit the video is complete and renamed into place (atomic), on an
    error nothing is left. Without an encoder it only counts frames (the keyframe strip is then the fallback)."""
    if encoder is None:
        def count(image: np.ndarray) -> None:
            result.frames += 1

        yield count
        return
    codec, fmt, suffix, mime = encoder
    result.file, result.mime, result.codec = "annotated" + suffix, mime, codec
    with atomic_output(out_dir / result.file, "wb") as handle:
        # written through the atomic handle (a seekable file): the MP4 index goes at the end, which a page beside
        # its video plays and seeks without trouble (faststart would need to reopen the file by name)
        container = av.open(handle, mode="w", format=fmt)
        try:
            rate = Fraction(result.fps).limit_denominator(1001)
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = result.width_px, result.height_px, "yuv420p"
            # small files for a page: x264 CRF 26 "veryfast"; VP9 constant quality 34 at realtime speed
            stream.options = {"crf": "26", "preset": "veryfast"} if codec == "libx264" else \
                {"crf": "34", "b": "0", "deadline": "realtime", "cpu-used": "8"}
            stream.thread_count = 1

            def encode(image: np.ndarray) -> None:
                frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                frame.pts = result.frames
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
                result.frames += 1

            yield encode
            container.mux(stream.encode(None))
        finally:
            container.close()
