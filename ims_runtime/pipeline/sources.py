"""Frame sources: a video file, a folder of images, or a camera, all yielding :class:`~ims_runtime.types.Frame`.

Timestamps: files derive ``t_capture_ns`` from the frame index and frame rate, so two replays of one file are
identical; a camera stamps ``time.monotonic_ns()`` at grab. A camera that disappears is reopened with exponential
backoff; each outage is reported through ``on_outage`` and never raises out of ``frames()`` (``serve`` keeps
retrying), unless ``fail_fast`` is set (``replay`` of a camera fails at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import structlog

from ims_runtime import errors
from ims_runtime.spec.schema import SourceSpec
from ims_runtime.types import Frame

log = structlog.get_logger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
NS_PER_S = 1_000_000_000


def to_grey_bgr(image_bgr: np.ndarray) -> np.ndarray:
    """Imitate a monochrome NIR camera: luminance replicated to three channels (the detector expects 3)."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _ensure_bgr(image: np.ndarray, grey: bool) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return to_grey_bgr(image) if grey else image


class FrameSource:
    """Base class: iterate ``frames()``; ``close()`` is safe to call twice."""

    name = "source"

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    @property
    def nominal_fps(self) -> float | None:
        return None

    def close(self) -> None:
        pass


class VideoFileSource(FrameSource):
    def __init__(self, path: Path, fps: float | None = None, grey: bool = False, loop: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"video file {self.path} does not exist",
                                  "check the path given as INPUT / --source")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"cannot open video {self.path}",
                                  "is it a video file OpenCV can decode (mp4v, MJPG)?")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"video {self.path} has no decodable frame",
                                  "the file is empty, truncated or in a codec this OpenCV build lacks")
        self._first: np.ndarray | None = first
        file_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps or (file_fps if file_fps and file_fps > 0 else 30.0))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self.grey = grey
        self.loop = loop
        self.name = self.path.name

    @property
    def nominal_fps(self) -> float:
        return self._fps

    def frames(self) -> Iterator[Frame]:
        index = 0  # frame_id and timestamps keep counting across loops, so they stay monotonic
        while self._cap is not None:
            if self._first is not None:
                ok, image = True, self._first
                self._first = None
            else:
                ok, image = self._cap.read()
            if not ok or image is None:
                if not self.loop:
                    return
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._cap.read()
                if not ok:
                    return
            yield Frame(index, round(index * NS_PER_S / self._fps), _ensure_bgr(image, self.grey), self.name)
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource(FrameSource):
    def __init__(self, folder: Path, fps: float | None = None, grey: bool = False, loop: bool = False) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"image folder {self.folder} does not exist",
                                  "check the path given as INPUT / --source")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                                  f"in {self.folder}")
        # like a video's first frame: fail now if nothing decodes, instead of "succeeding" with zero frames
        if not any(cv2.haveImageReader(str(p)) and cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None
                   for p in self.files):
            raise errors.IMSError(errors.SOURCE_UNREADABLE, f"none of the {len(self.files)} image files in "
                                  f"{self.folder} can be decoded", "check the files (truncated or not images?)")
        self._fps = float(fps or 10.0)
        self.grey = grey
        self.loop = loop
        self.name = self.folder.name
        self.frame_count = len(self.files)

    @property
    def nominal_fps(self) -> float:
        return self._fps

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            for path in self.files:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    log.warning("image_unreadable", path=str(path))
                    continue
                yield Frame(index, round(index * NS_PER_S / self._fps), _ensure_bgr(image, self.grey), path.name)
                index += 1
            if not self.loop:
                return


class CameraSource(FrameSource):
    """A V4L2 (or any OpenCV) camera, reopened with exponential backoff when it disappears.

    ``open_capture`` is the seam tests use to stand in for a device that cannot exist here: it must behave like
    ``cv2.VideoCapture`` (``isOpened``, ``read``, ``set``, ``release``).
    """

    def __init__(self, device: str | int, width_px: int | None = None, height_px: int | None = None,
                 fps: float | None = None, grey: bool = False, backoff_s: tuple[float, float] = (0.5, 8.0),
                 fail_fast: bool = False, on_outage: Callable[[dict], None] | None = None,
                 open_capture: Callable[[str | int], object] | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.device = device
        self.width_px, self.height_px, self.fps = width_px, height_px, fps
        self.grey = grey
        self.backoff_s = backoff_s
        self.fail_fast = fail_fast
        self.on_outage = on_outage or (lambda event: None)
        self._open_capture = open_capture or (lambda dev: cv2.VideoCapture(dev))
        self.should_stop = should_stop
        self.name = str(device)
        self.outages = 0
        self._cap: object | None = None

    @property
    def nominal_fps(self) -> float | None:
        return self.fps

    def _open(self) -> bool:
        cap = self._open_capture(self.device)
        if not cap.isOpened():  # type: ignore[attr-defined]
            cap.release()  # type: ignore[attr-defined]
            return False
        if self.width_px:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width_px)  # type: ignore[attr-defined]
        if self.height_px:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height_px)  # type: ignore[attr-defined]
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)  # type: ignore[attr-defined]
        self._cap = cap
        return True

    def _reconnect(self, reason: str) -> bool:
        """Reopen until it works or ``should_stop``; report the outage. False when stopping."""
        self.outages += 1
        started = time.monotonic()
        wait = self.backoff_s[0]
        attempts = 0
        while not self.should_stop():
            attempts += 1
            if self._open():
                self.on_outage({"event": "camera_recovered", "device": self.name, "attempts": attempts,
                                "outage_s": round(time.monotonic() - started, 3)})
                return True
            if self.fail_fast:
                raise errors.IMSError(errors.SOURCE_CAMERA_NOT_PRESENT, f"camera {self.name} is not present",
                                      "check the device path / index and permissions")
            self.on_outage({"event": "camera_lost", "device": self.name, "reason": reason,
                            "attempts": attempts, "retry_in_s": wait})
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not self.should_stop():
                time.sleep(min(0.05, wait))
            wait = min(wait * 2, self.backoff_s[1])
        return False

    def frames(self) -> Iterator[Frame]:
        index = 0
        if not self._open() and not self._reconnect("not present at start"):
            return
        while not self.should_stop():
            ok, image = self._cap.read()  # type: ignore[union-attr]
            if not ok or image is None:
                self._cap.release()  # type: ignore[union-attr]
                self._cap = None
                if not self._reconnect("read failed"):
                    return
                continue
            yield Frame(index, time.monotonic_ns(), _ensure_bgr(image, self.grey), self.name)
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()  # type: ignore[attr-defined]
            self._cap = None


def _looks_like_camera(text: str) -> bool:
    return text.startswith("/dev/video") or text.isdigit()


def open_source(spec: SourceSpec, override: str | None = None, *, fail_fast_camera: bool = False,
                on_outage: Callable[[dict], None] | None = None, loop: bool | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> FrameSource:
    """Build the source from the spec, or from a command-line ``override`` (file, folder, /dev/videoN or N)."""
    grey = spec.color == "grey"
    loop = spec.loop if loop is None else loop
    if override is not None:
        if _looks_like_camera(override):
            device: str | int = int(override) if override.isdigit() else override
            return CameraSource(device, spec.width_px, spec.height_px, spec.fps, grey, spec.reconnect_backoff_s,
                                fail_fast_camera, on_outage, should_stop=should_stop)
        path = Path(override)
        if path.is_dir():
            return ImageFolderSource(path, spec.fps, grey, loop)
        return VideoFileSource(path, spec.fps, grey, loop)
    if spec.kind == "camera":
        device = spec.device_index if spec.device_index is not None else spec.path  # type: ignore[assignment]
        return CameraSource(device, spec.width_px, spec.height_px, spec.fps, grey, spec.reconnect_backoff_s,
                            fail_fast_camera, on_outage, should_stop=should_stop)
    if spec.path is None:
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, "no input given and the spec's source.path is null",
                              "pass a video file or image folder (replay INPUT / serve --source)")
    if spec.kind == "images":
        return ImageFolderSource(Path(spec.path), spec.fps, grey, loop)
    return VideoFileSource(Path(spec.path), spec.fps, grey, loop)
