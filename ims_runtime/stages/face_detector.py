"""Detector stage: RetinaFace-MobileNet0.25 → every face in the frame, and which one is the driver.

preprocess (letterbox to the configured input size, BGR minus mean, NCHW) → backend.run → postprocess (decode
against priors computed once for the input size, score threshold, NMS, map back to frame pixels) → driver choice.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import structlog

from ims_runtime.spec.schema import DetectorSpec, RegionSpec
from ims_runtime.stages._retinaface_decode import (
    decode_boxes,
    decode_landmarks,
    iou_xyxy,
    make_priors,
    nms,
)
from ims_runtime.stages.model import ModelContract, OpenedModel, open_model
from ims_runtime.types import Detections, FaceDetection, Frame

log = structlog.get_logger(__name__)

#: BGR means the official weights were trained with (subtracted; no scaling)
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How frame pixels map to network input pixels: ``input = (frame - offset) * scale``."""

    scale: float
    offset_xy_px: tuple[float, float] = (0.0, 0.0)


class Letterboxer:
    """Fits frames into a fixed ``(w, h)`` input with one resize and no per-frame allocation of the input.

    The padding is the mean colour, i.e. zero after mean subtraction, so it looks like "nothing" to the network.
    """

    def __init__(self, input_wh_px: tuple[int, int]) -> None:
        self.input_wh_px = input_wh_px
        w, h = input_wh_px
        self._canvas = np.empty((h, w, 3), dtype=np.uint8)
        self._canvas_f32 = np.empty((h, w, 3), dtype=np.float32)
        self._tensor = np.empty((1, 3, h, w), dtype=np.float32)
        self._mean_u8 = tuple(int(v) for v in MEAN_BGR)
        self._mean_scalar = (*(float(v) for v in MEAN_BGR), 0.0)

    def _to_tensor(self) -> np.ndarray:
        # HWC uint8 → HWC float32 minus mean (OpenCV, into a preallocated buffer), then one same-type strided copy
        # into the CHW tensor the backend has bound. A single numpy ufunc with the uint8 → float32 cast would
        # allocate its ~32 KiB iteration buffer on every call; this path allocates nothing (as fast, measured).
        cv2.subtract(self._canvas, self._mean_scalar, dst=self._canvas_f32, dtype=cv2.CV_32F)
        np.copyto(self._tensor[0], self._canvas_f32.transpose(2, 0, 1))
        return self._tensor

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """HxWx3 uint8 BGR → ((1, 3, H_in, W_in) float32 mean-subtracted, mapping). The tensor is reused."""
        w_in, h_in = self.input_wh_px
        h, w = image_bgr.shape[:2]
        scale = min(w_in / w, h_in / h)
        rw, rh = max(1, min(w_in, round(w * scale))), max(1, min(h_in, round(h * scale)))
        self._canvas[:] = self._mean_u8
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        cv2.resize(image_bgr, (rw, rh), dst=self._canvas[:rh, :rw], interpolation=interpolation)
        return self._to_tensor(), Letterbox(scale=scale)

    def crop(self, image_bgr: np.ndarray, center_xy_px: tuple[float, float], side_px: float
             ) -> tuple[np.ndarray, Letterbox]:
        """A square crop of ``side_px`` around ``center_xy_px`` scaled into the (square) input by one warpAffine.

        Parts of the crop outside the frame become mean colour (zero input), like the letterbox padding.
        """
        w_in, h_in = self.input_wh_px
        scale = min(w_in, h_in) / side_px
        x0, y0 = center_xy_px[0] - side_px / 2, center_xy_px[1] - side_px / 2
        matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float64)
        cv2.warpAffine(image_bgr, matrix, (w_in, h_in), dst=self._canvas, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=self._mean_u8)
        return self._to_tensor(), Letterbox(scale=scale, offset_xy_px=(x0, y0))


class DriverSelector:
    """Chooses the driver's face: the largest face whose centre lies in the driver region, kept stable.

    The previous driver stays the driver (tracked by best IoU) unless another eligible face is
    ``switch_ratio`` times larger in area — so a passenger leaning in briefly does not steal the driver slot.
    Pure: state is the previous driver box only.
    """

    def __init__(self, region: RegionSpec, min_face_height_px: float, switch_ratio: float) -> None:
        self.region = region
        self.min_face_height_px = min_face_height_px
        self.switch_ratio = switch_ratio
        self._previous: tuple[float, float, float, float] | None = None

    def reset(self) -> None:
        self._previous = None

    def follow(self, box_xyxy_px: tuple[float, float, float, float] | None) -> None:
        """Tell the selector where the driver is now (a tracker moved it since the last full detection)."""
        self._previous = box_xyxy_px

    def choose(self, faces: list[FaceDetection], frame_wh_px: tuple[int, int]) -> int | None:
        w, h = frame_wh_px
        eligible = []
        for index, face in enumerate(faces):
            cx, cy = face.center_xy_px
            inside = (self.region.x_min <= cx / w <= self.region.x_max
                      and self.region.y_min <= cy / h <= self.region.y_max)
            if inside and face.height_px >= self.min_face_height_px:
                eligible.append(index)
        if not eligible:
            self._previous = None
            return None
        largest = max(eligible, key=lambda i: faces[i].area_px2)
        chosen = largest
        if self._previous is not None:
            ious = iou_xyxy(np.array([self._previous]), np.array([faces[i].box_xyxy_px for i in eligible]))[0]
            best = int(np.argmax(ious))
            tracked = eligible[best]
            if ious[best] > 0.3 and faces[largest].area_px2 < self.switch_ratio * faces[tracked].area_px2:
                chosen = tracked
        self._previous = faces[chosen].box_xyxy_px
        return chosen


class FaceDetector:
    """The detector stage. ``detect(frame)`` returns every face above threshold and the driver's index.

    With ``spec.tracking`` set, frames between full-frame detections only re-detect the driver inside a small
    crop around its last box (far fewer pixels), and those frames report the driver's face alone.
    """

    name = "face_detector"

    #: RetinaFace's three heads; the output shapes are checked in :meth:`_check_shapes`
    CONTRACT = ModelContract("retinaface", spec_field="stages.face_detector.model")

    def __init__(self, spec: DetectorSpec, model: OpenedModel) -> None:
        self.spec = spec
        self.model = model
        self.backend = model.backend
        self._check_shapes()
        self.letterbox = Letterboxer(spec.input_size_px)
        self._priors = {spec.input_size_px: make_priors(*spec.input_size_px)}
        self._input_name = self.backend.inputs[0].name
        self.driver = DriverSelector(spec.driver_region, spec.min_face_height_px, spec.driver_switch_ratio)
        self.tracking = spec.tracking
        if self.tracking is not None:
            side = self.tracking.roi_input_size_px
            self.roi_letterbox = Letterboxer((side, side))
            self._priors[(side, side)] = make_priors(side, side)
        self._tracked: FaceDetection | None = None
        self._frames_since_full = 0
        # background re-detection: its own letterbox buffers (the main thread keeps using self.letterbox);
        # ONNX Runtime sessions accept concurrent run() calls
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._pending_age = 0  # frames since the pending background detection was started
        if self.tracking is not None and self.tracking.background_redetect:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redetect")
            self._bg_letterbox = Letterboxer(spec.input_size_px)
        #: how many frames ran the full-frame detector and how many only the crop (for telemetry and bench)
        self.full_detections = 0
        self.roi_detections = 0
        #: background re-detections merged, how many of them the frame had to wait for, and the last wait (ms;
        #: 0.0 when the merge found the result ready) — a frame must never wait on background work
        self.background_merges = 0
        #: what the last ``detect`` ran on the calling thread, in order: "tracked" (crop), "full" (whole frame)
        self.last_runs: list[str] = []
        self.merge_waits = 0
        self.last_merge_wait_ms = 0.0

    @classmethod
    def from_spec(cls, spec: DetectorSpec, spec_dir: Path | None = None) -> FaceDetector:
        model = open_model(spec.model, spec.sha256, list(spec.backends), cls.name, cls.CONTRACT, spec_dir)
        try:
            return cls(spec, model)
        except BaseException:
            model.backend.close()
            raise

    @property
    def model_sha256(self) -> str:
        return self.model.sha256

    @property
    def backend_skips(self) -> list[dict[str, object]]:
        return self.model.backend_skips

    def _check_shapes(self) -> None:
        """Fail at load, not at the first frame, if the model is not a RetinaFace the stage can decode."""
        outs = self.backend.outputs
        fixed = self.model.facts.input_wh_px
        problem = None
        if len(outs) != 3 or [o.shape[-1] for o in outs] != [4, 2, 10]:
            problem = f"outputs {[(o.name, o.shape) for o in outs]} are not RetinaFace's loc/conf/landms"
        elif fixed is not None and fixed != tuple(self.spec.input_size_px):
            problem = (f"the model's input is fixed at {fixed[0]}x{fixed[1]} px but the spec asks for "
                       f"input_size_px {list(self.spec.input_size_px)}")
        elif fixed is not None and self.spec.tracking is not None:
            problem = "tracking runs the detector on a second input size and needs a dynamic-size model"
        if problem:
            raise self.model.contract_error(problem, self.CONTRACT.spec_field)
        mean = self.model.facts.input_mean_bgr
        if mean is not None and not np.allclose(mean, MEAN_BGR) or self.model.facts.input_scale not in (None, 1.0):
            # the letterbox pads with the mean colour and feeds uint8-minus-mean: other normalisations would need
            # another preprocessing path, so refuse them rather than feed the network the wrong numbers
            raise self.model.contract_error(f"input normalisation mean {mean}, scale {self.model.facts.input_scale}"
                                            f" differs from RetinaFace's mean {MEAN_BGR.tolist()}, scale 1",
                                            self.CONTRACT.spec_field)

    def warmup(self, runs: int = 3) -> None:
        sizes = [self.spec.input_size_px] + ([self.roi_letterbox.input_wh_px] if self.tracking else [])
        for w, h in sizes:
            self.backend.warmup({self._input_name: np.zeros((1, 3, h, w), np.float32)}, runs)

    def reset(self) -> None:
        """Forget the tracked driver (new source, reload)."""
        if self._pending is not None:
            self._pending.result()  # let the worker finish before its result is dropped
            self._pending = None
        self.driver.reset()
        self._tracked = None

    def detect(self, frame: Frame) -> Detections:
        self.last_runs = []
        if self._pool is not None:
            return self._detect_with_background_redetect(frame)
        if self._tracked is not None and self._frames_since_full < self.tracking.redetect_every_n_frames:
            tracked = self._detect_in_roi(frame, self._tracked)
            if tracked is not None:
                self._tracked = tracked
                self._frames_since_full += 1
                return Detections(faces=[tracked], driver_index=0)
        detections = self._detect_full(frame)
        if self.tracking is not None:
            self._tracked = detections.driver
            self._frames_since_full = 1
        return detections

    def _detect_with_background_redetect(self, frame: Frame) -> Detections:
        """Tracking where the periodic full-frame detection runs on the worker thread.

        Every frame is answered by the crop tracker; every ``redetect_every_n_frames`` a full detection of the
        current frame starts in the background and is merged exactly ``merge_after_frames`` frames later (waiting
        for it if it is late, which at 25–30 fps it practically never is): the fixed merge point makes the result
        independent of thread timing, so replay stays deterministic. If the full detection chose another face
        than the one being tracked, tracking switches to it. Only start-up and a lost face run the full detector
        in line.
        """
        if self._pending is not None:
            self._pending_age += 1
            if self._pending_age >= self.tracking.merge_after_frames:
                ready = self._pending.done()
                started_ns = time.perf_counter_ns()
                faces, frame_wh = self._pending.result()
                self.background_merges += 1
                self.merge_waits += not ready
                self.last_merge_wait_ms = 0.0 if ready else (time.perf_counter_ns() - started_ns) / 1e6
                self._pending = None
                self.driver.follow(self._tracked.box_xyxy_px if self._tracked is not None else None)
                index = self.driver.choose(faces, frame_wh)
                chosen = None if index is None else faces[index]
                if chosen is None or self._tracked is None or iou_xyxy(
                        np.array([chosen.box_xyxy_px]), np.array([self._tracked.box_xyxy_px]))[0, 0] < 0.3:
                    self._tracked = chosen  # another (or no) driver: re-anchor the tracker
        if self._tracked is not None:
            tracked = self._detect_in_roi(frame, self._tracked)
            if tracked is not None:
                self._tracked = tracked
                self._frames_since_full += 1
                if self._frames_since_full >= self.tracking.redetect_every_n_frames and self._pending is None:
                    self._pending = self._pool.submit(self._full_faces_background, frame)
                    self._pending_age = 0
                    self._frames_since_full = 0
                return Detections(faces=[tracked], driver_index=0)
        detections = self._detect_full(frame)
        self._tracked = detections.driver
        self._frames_since_full = 1
        return detections

    def _full_faces_background(self, frame: Frame) -> tuple[list[FaceDetection], tuple[int, int]]:
        self.full_detections += 1
        tensor, mapping = self._bg_letterbox(frame.image_bgr)
        return self._run(tensor, mapping, frame.size_wh_px), frame.size_wh_px

    def _detect_full(self, frame: Frame) -> Detections:
        self.full_detections += 1
        self.last_runs.append("full")
        tensor, mapping = self.letterbox(frame.image_bgr)
        faces = self._run(tensor, mapping, frame.size_wh_px)
        return Detections(faces=faces, driver_index=self.driver.choose(faces, frame.size_wh_px))

    def _detect_in_roi(self, frame: Frame, previous: FaceDetection) -> FaceDetection | None:
        """Re-detect the driver in a crop around ``previous``; None when it is lost or scores too low."""
        self.roi_detections += 1
        self.last_runs.append("tracked")
        side = self.tracking.roi_scale * max(previous.width_px, previous.height_px)
        tensor, mapping = self.roi_letterbox.crop(frame.image_bgr, previous.center_xy_px, side)
        faces = self._run(tensor, mapping, frame.size_wh_px)
        if not faces:
            return None
        best = max(faces, key=lambda f: iou_xyxy(np.array([previous.box_xyxy_px]), np.array([f.box_xyxy_px]))[0, 0])
        return best if best.score >= self.tracking.min_score else None

    def _run(self, tensor: np.ndarray, mapping: Letterbox, frame_wh_px: tuple[int, int]) -> list[FaceDetection]:
        loc, conf, landms = self.backend.run({self._input_name: tensor})
        return self.postprocess(loc[0], conf[0], landms[0], mapping, frame_wh_px,
                                (tensor.shape[3], tensor.shape[2]))

    def postprocess(self, loc: np.ndarray, conf: np.ndarray, landms: np.ndarray, mapping: Letterbox,
                    frame_wh_px: tuple[int, int], input_wh_px: tuple[int, int] | None = None
                    ) -> list[FaceDetection]:
        """Raw (N,4), (N,2), (N,10) outputs → faces in frame pixels, best score first."""
        input_wh_px = input_wh_px or self.spec.input_size_px
        scores = conf[:, 1]
        keep = np.flatnonzero(scores > self.spec.score_threshold)
        if keep.size == 0:
            return []
        priors = self._priors[tuple(input_wh_px)][keep]
        to_frame = np.array(input_wh_px, dtype=np.float32) / mapping.scale
        offset = np.array(mapping.offset_xy_px, dtype=np.float32)
        boxes = decode_boxes(loc[keep].astype(np.float32), priors) * np.tile(to_frame, 2) + np.tile(offset, 2)
        points = decode_landmarks(landms[keep].astype(np.float32), priors) * to_frame + offset
        w, h = frame_wh_px
        boxes = np.clip(boxes, 0, [w, h, w, h])
        order = nms(boxes, scores[keep], self.spec.nms_iou_threshold, self.spec.max_faces)
        return [FaceDetection(box_xyxy_px=tuple(float(v) for v in boxes[i]), score=float(scores[keep][i]),
                              landmarks_px=points[i].astype(np.float32)) for i in order]

    def describe(self) -> dict[str, object]:
        info = {**self.backend.describe(), "precision": self.model.running_precision(self.spec.precision), "sha256": self.model_sha256,
                "input_size_px": list(self.spec.input_size_px), "fallbacks": self.backend_skips}
        if self.tracking is not None:
            info["tracking"] = {"full_detections": self.full_detections, "roi_detections": self.roi_detections}
            if self._pool is not None or self.background_merges:
                info["tracking"].update(background_merges=self.background_merges, merge_waits=self.merge_waits)
        return info

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.backend.close()
