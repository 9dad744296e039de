"""The typed objects that cross stage boundaries: ``Frame`` → ``FaceDetection`` → (face-state, fatigue) →
``driver_state`` message. Units and formats are in the field names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One captured image.

    ``image_bgr`` is HxWx3 uint8 BGR (grey/NIR sources are converted to grey and replicated to three channels,
    so every stage sees one layout). ``t_capture_ns`` is the capture time: for files it is derived from the frame
    index and the frame rate (deterministic replay); for cameras it is ``time.monotonic_ns()`` at grab.
    """

    frame_id: int
    t_capture_ns: int
    image_bgr: np.ndarray
    source: str = ""

    @property
    def size_wh_px(self) -> tuple[int, int]:
        return int(self.image_bgr.shape[1]), int(self.image_bgr.shape[0])


@dataclass(frozen=True)
class FaceDetection:
    """One detected face in frame pixel coordinates.

    ``landmarks_px`` is (5, 2) float32 x, y: right eye, left eye (as seen in the image: the subject's right eye
    is on the image's left), nose tip, right mouth corner, left mouth corner — RetinaFace's order.
    """

    box_xyxy_px: tuple[float, float, float, float]
    score: float
    landmarks_px: np.ndarray

    @property
    def width_px(self) -> float:
        return self.box_xyxy_px[2] - self.box_xyxy_px[0]

    @property
    def height_px(self) -> float:
        return self.box_xyxy_px[3] - self.box_xyxy_px[1]

    @property
    def area_px2(self) -> float:
        return max(0.0, self.width_px) * max(0.0, self.height_px)

    @property
    def center_xy_px(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box_xyxy_px
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass
class Detections:
    """What the detector stage returns for one frame: every face, and the index of the driver's (or None)."""

    faces: list[FaceDetection] = field(default_factory=list)
    driver_index: int | None = None

    @property
    def driver(self) -> FaceDetection | None:
        return None if self.driver_index is None else self.faces[self.driver_index]
