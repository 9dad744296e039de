"""The deployment spec: a strict, frozen schema (unknown keys are errors), every field with a unit.

One YAML file per target (``deploy/specs/*.yaml``). Stages not configured are ``null`` and the pipeline leaves
their message fields absent. Later stages (face-state, fatigue) and the policy add their own section classes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ims_runtime.backends import config_union

BackendSpec = config_union()


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SourceSpec(StrictModel):
    """Where frames come from."""

    kind: Literal["video", "images", "camera"] = Field(
        "video", description="video file, folder of images (sorted by name), or camera device")
    path: str | None = Field(None, description="video file or image folder; camera: device path such as /dev/video0")
    device_index: int | None = Field(None, ge=0, description="camera: OpenCV device index instead of a path")
    width_px: int | None = Field(None, gt=0, description="camera: requested capture width in pixels")
    height_px: int | None = Field(None, gt=0, description="camera: requested capture height in pixels")
    fps: float | None = Field(None, gt=0, le=240, description="frames per second; video: overrides the file's "
                              "rate for timestamps; images: the rate timestamps assume (default 10)")
    color: Literal["bgr", "grey"] = Field(
        "bgr", description="grey imitates a monochrome NIR cabin camera (frames are converted on capture)")
    loop: bool = Field(False, description="restart a video or image folder at its end (serve only)")
    reconnect_backoff_s: tuple[float, float] = Field(
        (0.5, 8.0), description="camera: first and maximum wait between reopen attempts, seconds")

    @model_validator(mode="after")
    def _camera_needs_a_device(self) -> SourceSpec:
        if self.kind == "camera" and self.path is None and self.device_index is None:
            raise ValueError("a camera source needs `path` (e.g. /dev/video0) or `device_index`")
        return self


class RegionSpec(StrictModel):
    """A rectangle in normalised frame coordinates (0..1, origin top left)."""

    x_min: float = Field(0.0, ge=0, le=1)
    y_min: float = Field(0.0, ge=0, le=1)
    x_max: float = Field(1.0, ge=0, le=1)
    y_max: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RegionSpec:
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError("need x_min < x_max and y_min < y_max")
        return self


class ModelStageSpec(StrictModel):
    """Fields every model-running stage has."""

    model: str = Field(description="catalogue name, file name on the model search path, or a path")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                               description="if set, the model file must have this sha256 (checked at load)")
    precision: Literal["fp32", "fp16", "int8", "int8_mixed", "int16"] = Field(
        "fp32", description="what the model file holds; reported in telemetry")
    backends: Annotated[list[BackendSpec], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [{"type": "ort_cpu"}],
        description="ordered fallback list: the first backend that opens is used")


class TrackingSpec(StrictModel):
    """Detection skipping: between full-frame detections, re-detect only in a small crop around the driver."""

    redetect_every_n_frames: int = Field(10, ge=1, le=1000, description="full-frame detection at least every N "
                                         "frames (count), so new faces and a changed driver are noticed")
    roi_input_size_px: int = Field(160, ge=64, le=640, description="side of the square network input used on "
                                   "the crop (pixels, multiple of 32)")
    roi_scale: float = Field(2.0, ge=1.2, le=4.0, description="crop side as a multiple of the tracked face's "
                             "larger side (leaves room for head motion between frames)")
    min_score: float = Field(0.8, gt=0, lt=1, description="a tracked face scoring below this triggers a "
                             "full-frame detection on the same frame")

    @field_validator("roi_input_size_px")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"roi_input_size_px must be a multiple of 32, got {value}")
        return value


class DetectorSpec(ModelStageSpec):
    """RetinaFace face detector."""

    model: str = "retinaface_mnet025_fp32"
    input_size_px: tuple[int, int] = Field(
        (640, 384), description="network input width, height in pixels (multiples of 32); frames are letterboxed")
    score_threshold: float = Field(0.6, gt=0, lt=1, description="minimum face score (0..1)")
    nms_iou_threshold: float = Field(0.4, gt=0, lt=1, description="IoU above which overlapping boxes are merged")
    max_faces: int = Field(50, ge=1, le=1000, description="at most this many faces kept per frame")
    min_face_height_px: float = Field(0.0, ge=0, description="driver choice ignores faces smaller than this "
                                      "(frame pixels)")
    driver_region: RegionSpec = Field(default_factory=RegionSpec,
                                      description="the driver's face is the largest one whose centre is inside")
    driver_switch_ratio: float = Field(
        1.5, ge=1, description="keep the previous driver unless another face is this many times larger (area)")
    tracking: TrackingSpec | None = Field(None, description="detection skipping with tracking of the driver's "
                                          "face; null = full-frame detection on every frame")

    @field_validator("input_size_px")
    @classmethod
    def _multiple_of_32(cls, value: tuple[int, int]) -> tuple[int, int]:
        if any(v <= 0 or v % 32 for v in value):
            raise ValueError(f"input_size_px must be positive multiples of 32 (width, height), got {list(value)}")
        return value


class RoadZoneSpec(StrictModel):
    """Where "eyes on the road" is, as gaze angles in the driver's frame (0, 0 = straight ahead along the car)."""

    yaw_min_deg: float = Field(-20.0, ge=-90, le=90, description="left edge of the zone, degrees (yaw > 0 = toward "
                               "the image's right edge, the driver's left for a camera facing the driver)")
    yaw_max_deg: float = Field(20.0, ge=-90, le=90, description="right edge of the zone, degrees")
    pitch_min_deg: float = Field(-15.0, ge=-90, le=90, description="lower edge of the zone, degrees (pitch > 0 = up)")
    pitch_max_deg: float = Field(10.0, ge=-90, le=90, description="upper edge of the zone, degrees")
    head_weight: float = Field(0.0, ge=0, le=1, description="0: decide on gaze alone; 1: on head pose alone; "
                               "between: on the weighted mix (head pose is steadier, gaze is what counts)")

    @model_validator(mode="after")
    def _ordered(self) -> RoadZoneSpec:
        if self.yaw_max_deg <= self.yaw_min_deg or self.pitch_max_deg <= self.pitch_min_deg:
            raise ValueError("need yaw_min_deg < yaw_max_deg and pitch_min_deg < pitch_max_deg")
        return self


class FaceStateSpec(ModelStageSpec):
    """The face-state network on the aligned face crop: gaze, head pose, eye and mouth openness."""

    model: str = "face_state_v1"
    crop_size_px: int = Field(112, ge=32, le=512, description="side of the aligned square crop, pixels (must match "
                              "the model's input)")
    eye_closed_below: float = Field(0.25, gt=0, lt=1, description="both eyes count as closed when their mean "
                                    "openness (0..1) drops below this")
    eye_open_above: float = Field(0.4, gt=0, lt=1, description="closed eyes count as open again only above this "
                                  "openness (0..1): the gap is the hysteresis")
    min_confidence: float = Field(0.3, ge=0, le=1, description="below this network confidence (0..1) the face "
                                  "state is reported but marked unreliable")
    camera_yaw_offset_deg: float = Field(0.0, ge=-90, le=90, description="camera mounting: the yaw (degrees, "
                                         "camera-frame convention) a gaze straight down the road has")
    camera_pitch_offset_deg: float = Field(0.0, ge=-90, le=90, description="camera mounting: the pitch (degrees) a "
                                           "gaze straight down the road has (e.g. +15 for a camera low on the column)")
    road_zone: RoadZoneSpec = Field(default_factory=RoadZoneSpec, description="the on-road zone, degrees, relative "
                                    "to straight down the road")

    @model_validator(mode="after")
    def _hysteresis(self) -> FaceStateSpec:
        if self.eye_open_above <= self.eye_closed_below:
            raise ValueError("need eye_closed_below < eye_open_above (the hysteresis band)")
        return self


class StagesSpec(StrictModel):
    face_detector: DetectorSpec = Field(default_factory=DetectorSpec)
    face_state: FaceStateSpec | None = Field(None, description="gaze / head pose / eyes on the driver's face; "
                                             "null = stage off")


class PublishSpec(StrictModel):
    endpoint: str = Field("ipc:///tmp/ims-runtime.sock",
                          description="one ZeroMQ PUB socket (ipc:// or tcp://) carrying driver_state and telemetry")
    send_hwm_msgs: int = Field(64, ge=1, le=100000, description="send high-water mark (messages); beyond it "
                               "messages are dropped and counted, never blocking the frame loop")
    telemetry_interval_s: float = Field(1.0, gt=0, le=3600, description="seconds between telemetry messages")

    @field_validator("endpoint")
    @classmethod
    def _transport(cls, value: str) -> str:
        if not (value.startswith(("ipc://", "tcp://"))):
            raise ValueError(f"endpoint must start with ipc:// or tcp://, got {value!r}")
        return value


class Spec(StrictModel):
    """A deployment spec (schema version 1)."""

    schema_version: Literal[1] = Field(1, description="spec format version")
    name: str = Field(description="short name shown in logs and telemetry")
    description: str = ""
    source: SourceSpec = Field(default_factory=SourceSpec)
    stages: StagesSpec = Field(default_factory=StagesSpec)
    publish: PublishSpec = Field(default_factory=PublishSpec)
