"""The deployment spec: a strict, frozen schema (unknown keys are errors), every field with a unit.

One YAML file per target (``deploy/specs/*.yaml``). Optional stages not configured are ``null``: the pipeline
then publishes their message fields as ``null`` and lists the stage in ``stages_off``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ims_runtime.backends import config_union

BackendSpec = config_union()

#: largest frame side a source may ask for, pixels (beyond any cabin camera; a frame is w×h×3 bytes)
MAX_FRAME_SIDE_PX = 8192
#: largest detector network input side, pixels (the input tensor and the anchors grow with w×h)
MAX_NETWORK_INPUT_PX = 4096
#: most time bins the fatigue ring buffer may hold (600 s at 5 ms)
MAX_WINDOW_BINS = 120_000


def check_endpoint(value: str) -> str:
    """``ipc://PATH`` (a path) or ``tcp://HOST:PORT`` with a port 1..65535 — ZeroMQ silently binds *another*
    port for 99999 (port modulo 65536), and ``*`` picks a random one nobody can connect to."""
    if value.startswith("ipc://"):
        if not value.removeprefix("ipc://"):
            raise ValueError("an ipc:// endpoint needs a socket path, e.g. ipc:///run/ims-runtime/ims.sock")
        return value
    if not value.startswith("tcp://"):
        raise ValueError(f"endpoint must start with ipc:// or tcp://, got {value!r}")
    host, sep, port = value.removeprefix("tcp://").rpartition(":")
    if not sep or not host:
        raise ValueError(f"a tcp:// endpoint needs HOST:PORT, e.g. tcp://127.0.0.1:5555; got {value!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be a number 1..65535, got {port!r} in {value!r}")
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SourceSpec(StrictModel):
    """Where frames come from."""

    kind: Literal["video", "images", "camera"] = Field(
        "video", description="video file, folder of images (sorted by name), or camera device")
    path: str | None = Field(None, description="video file or image folder; camera: device path such as /dev/video0")
    device_index: int | None = Field(None, ge=0, le=255, description="camera: OpenCV device index instead of a "
                                     "path (0..255: V4L2 numbers its devices below 256)")
    width_px: int | None = Field(None, gt=0, le=MAX_FRAME_SIDE_PX, description="camera: requested capture width "
                                 "in pixels (at most 8192: beyond any cabin camera, and a frame is w×h×3 bytes)")
    height_px: int | None = Field(None, gt=0, le=MAX_FRAME_SIDE_PX, description="camera: requested capture "
                                  "height in pixels (at most 8192, as the width)")
    fps: float | None = Field(None, gt=0, le=240, description="frames per second; video: overrides the file's "
                              "rate for timestamps; images: the rate timestamps assume (default 10)")
    color: Literal["bgr", "grey"] = Field(
        "bgr", description="grey imitates a monochrome NIR cabin camera (frames are converted on capture)")
    loop: bool = Field(False, description="restart a video or image folder at its end (serve only)")
    reconnect_backoff_s: tuple[Annotated[float, Field(ge=0.01, le=60)], Annotated[float, Field(ge=0.01, le=60)]] \
        = Field((0.5, 8.0), description="camera: first and maximum wait between reopen attempts, seconds "
                "(0.01..60 each: shorter spins the capture thread, longer outlasts the watchdog's patience)")

    @model_validator(mode="after")
    def _camera_needs_a_device(self) -> SourceSpec:
        if self.kind == "camera" and self.path is None and self.device_index is None:
            raise ValueError("a camera source needs `path` (e.g. /dev/video0) or `device_index`")
        if self.reconnect_backoff_s[0] > self.reconnect_backoff_s[1]:
            raise ValueError("reconnect_backoff_s must be (first, maximum) with first <= maximum")
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
    backends: Annotated[list[BackendSpec], Field(min_length=1, max_length=8)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [{"type": "ort_cpu"}],
        description="ordered fallback list: the first backend that opens is used (1..8 entries: there are "
                    "three backend types, each tried once with a few option sets at most)")


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
    background_redetect: bool = Field(
        False, description="run the periodic full-frame detection on a second thread (the second core) while "
                           "the crop tracker keeps answering every frame; its result is merged exactly "
                           "`merge_after_frames` frames later. Removes the full detection from the latency tail")
    merge_after_frames: int = Field(
        8, ge=1, le=30, description="background re-detection: frames (count) after which its result is merged, "
                                    "waiting for it if it is late — a fixed point keeps replay deterministic")

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
        (640, 384), description="network input width, height in pixels (multiples of 32, 32..4096 each: the "
        "input tensor and RetinaFace's anchors grow with w×h — 32000x32000 would allocate 11 GiB — and no cabin "
        "camera frame is larger than 4096 px); frames are letterboxed")
    score_threshold: float = Field(0.6, gt=0, lt=1, description="minimum face score (0..1)")
    nms_iou_threshold: float = Field(0.4, gt=0, lt=1, description="IoU above which overlapping boxes are merged")
    max_faces: int = Field(50, ge=1, le=1000, description="at most this many faces kept per frame")
    min_face_height_px: float = Field(0.0, ge=0, le=MAX_FRAME_SIDE_PX, description="driver choice ignores "
                                      "faces smaller than this (frame pixels; at most a frame's side)")
    driver_region: RegionSpec = Field(default_factory=RegionSpec,
                                      description="the driver's face is the largest one whose centre is inside")
    driver_switch_ratio: float = Field(
        1.5, ge=1, le=100, description="keep the previous driver unless another face is this many times larger "
        "(area ratio, 1..100: above 100 the driver could never change)")
    tracking: TrackingSpec | None = Field(None, description="detection skipping with tracking of the driver's "
                                          "face; null = full-frame detection on every frame")

    @field_validator("input_size_px")
    @classmethod
    def _multiple_of_32(cls, value: tuple[int, int]) -> tuple[int, int]:
        if any(v <= 0 or v % 32 for v in value):
            raise ValueError(f"input_size_px must be positive multiples of 32 (width, height), got {list(value)}")
        if any(v > MAX_NETWORK_INPUT_PX for v in value):
            raise ValueError(f"input_size_px must be at most {MAX_NETWORK_INPUT_PX} per side (the input tensor "
                             f"grows with width × height), got {list(value)}")
        return value


class FaceStateSpec(ModelStageSpec):
    """The face-state network on the aligned face crop: gaze, head pose, eye and mouth openness. Its ``on_road``
    uses the policy's ``road_zone`` (which carries the camera's mounting offset), so there is one zone."""

    model: str = "face_state_v1"
    crop_size_px: int = Field(112, ge=32, le=512, description="side of the aligned square crop, pixels (must match "
                              "the model's input)")
    eye_closed_below: float = Field(0.25, gt=0, lt=1, description="both eyes count as closed when their mean "
                                    "openness (0..1) drops below this")
    eye_open_above: float = Field(0.4, gt=0, lt=1, description="closed eyes count as open again only above this "
                                  "openness (0..1): the gap is the hysteresis")
    min_confidence: float = Field(0.3, ge=0, le=1, description="below this network confidence (0..1) the face "
                                  "state is reported but marked unreliable")
    publish_mouth: bool = Field(False, description="publish the network's mouth openness as `mouth.open`. Off "
                                "(`\"mouth\": null`) until a model's mouth output follows its teacher on held-apart "
                                "faces: face_state_v1 is a constant, face_state_v2 follows the trend (r ~0.7) but "
                                "sees only ~1 in 6 open mouths (docs/face-state.md)")
    # per-eye openness from the eye-crop model instead of the face-state network (docs/eye-state.md)
    eye_model: str | None = Field(None, description="eye-state model on eye crops (catalogue name, file or path, "
                                  "e.g. eye_state_v1): when set, eye openness comes from it instead of the "
                                  "face-state network; null = the face-state network's own eye outputs")
    eye_model_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                                         description="if set, the eye model file must have this sha256")

    @model_validator(mode="after")
    def _hysteresis(self) -> FaceStateSpec:
        if self.eye_open_above <= self.eye_closed_below:
            raise ValueError("need eye_closed_below < eye_open_above (the hysteresis band)")
        return self


class FatigueWindowSpec(StrictModel):
    """How per-frame signals become fatigue features (``ims_runtime.temporal``). The fatigue model was trained
    with these defaults: change ``window_s``/``bin_s`` only together with a retrained model (the model's metadata
    records them and the stage checks)."""

    window_s: float = Field(60.0, gt=0, le=600, description="feature window in seconds (PERCLOS is over 60 s, "
                            "Dinges & Grace 1998)")
    bin_s: float = Field(0.05, ge=0.005, le=1, description="time-bin width of the ring buffer, seconds "
                         "(0.005..1: the ring holds window_s / bin_s bins, and a bin shorter than a camera frame "
                         "at 200 fps only adds empty bins — 1e-9 would allocate 10^11)")
    closed_below: float = Field(0.2, gt=0, lt=1, description="openness (0..1) below which an eye counts as "
                                "closed: 0.2 = at least 80 % closed, PERCLOS's P80 definition")
    microsleep_min_s: float = Field(0.5, gt=0, le=5, description="a closure at least this long (seconds) is a "
                                    "microsleep, shorter ones are blinks (dms-requirements.md)")
    max_gap_s: float = Field(0.5, gt=0, le=10, description="samples further apart than this (seconds) leave a "
                             "gap: an event spanning it (blink, yawn, nod) is discarded, not guessed")
    min_coverage_s: float = Field(20.0, ge=0, le=600, description="eye data needed in the window (seconds) "
                                  "before a fatigue level other than `unknown` is published")
    yawn_mouth_open: float = Field(0.5, gt=0, lt=1, description="mouth openness (0..1) counted as a yawn")
    yawn_min_s: float = Field(2.0, gt=0, le=20, description="mouth open at least this long (seconds) = a yawn")
    nod_drop_deg: float = Field(15.0, gt=0, le=90, description="head pitch this far below its running baseline "
                                "(degrees) starts a nod")
    nod_max_s: float = Field(2.0, gt=0, le=10, description="a nod returns above half the drop within this time "
                             "(seconds); longer is a head drop, not counted as a nod")
    nod_baseline_tau_s: float = Field(10.0, gt=0, le=600, description="time constant of the head-pitch "
                                      "baseline (seconds, exponential)")

    @model_validator(mode="after")
    def _bins_fit(self) -> FatigueWindowSpec:
        bins = self.window_s / self.bin_s
        if bins > MAX_WINDOW_BINS:
            raise ValueError(f"window_s / bin_s = {bins:.0f} bins; at most {MAX_WINDOW_BINS} (the ring buffer "
                             "holds one row per bin)")
        return self


class FatigueStageSpec(ModelStageSpec):
    """Temporal fatigue classifier (a 1-D CNN over the binned eye signals) and its rule-based reference."""

    model: str = "fatigue_tcn"
    window: FatigueWindowSpec = Field(default_factory=FatigueWindowSpec)
    estimator: Literal["model", "rules"] = Field(
        "model", description="which estimate drives the level: the network, or the transparent PERCLOS / "
        "blink-duration rules (both are always published)")
    run_interval_s: float = Field(1.0, gt=0, le=60, description="seconds between classifier runs; the estimate "
                                  "is held in between (fatigue changes over minutes)")


class CameraCheckSpec(StrictModel):
    """Camera-blocked detection from the frames themselves (a covered, black or saturated lens).

    A frame *looks blocked* when no face was found and its grey image (sampled every ``stride_px`` pixels) has
    almost no texture (standard deviation below ``max_std``) or is almost black or white (mean outside
    ``min_mean``..``max_mean``). Measured on the shared footage: real scenes have a grey standard deviation of
    38–51 and a hand over the lens (blurred, dark) 4–5; a dimmed but visible scene 10–13.
    """

    max_std: float = Field(8.0, ge=0, le=64, description="grey-level standard deviation (0..255 scale) below "
                           "which a faceless frame has no usable texture")
    min_mean: float = Field(10.0, ge=0, le=128, description="mean grey level below which a faceless frame is black")
    max_mean: float = Field(245.0, ge=128, le=255, description="mean grey level above which a faceless frame is "
                            "saturated")
    blocked_after_s: float = Field(1.0, ge=0.1, le=30, description="frames must look blocked this long "
                                   "(seconds) before camera_blocked is set; shorter dark spells (a hand passing) "
                                   "are ignored")
    clear_after_s: float = Field(0.5, ge=0.0, le=30, description="frames must look unblocked this long (seconds) "
                                 "before camera_blocked clears")
    stride_px: int = Field(8, ge=1, le=64, description="sample every n-th pixel in x and y (a 1280x720 frame → "
                           "160x90 samples: enough for mean and texture, ~20 µs)")


class StagesSpec(StrictModel):
    face_detector: DetectorSpec = Field(default_factory=DetectorSpec)
    camera_check: CameraCheckSpec | None = Field(default_factory=CameraCheckSpec,
                                                 description="camera-blocked detection; null = off")
    face_state: FaceStateSpec | None = Field(None, description="gaze / head pose / eyes on the driver's face; "
                                             "null = stage off")
    fatigue: FatigueStageSpec | None = Field(None, description="temporal fatigue stage; null = off")


#: tcp:// hosts that only this machine can reach (no CURVE needed)
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")


class CurveSpec(StrictModel):
    """ZeroMQ CURVE encryption and client authentication (required for ``tcp://`` beyond loopback).

    Key files are ZeroMQ certificates as ``zmq.auth.create_certificates`` (or ``ims-runtime keys``) writes them;
    the secret key file must not be readable by group or others, or the service refuses to start.
    """

    server_secret_key_file: str = Field(description="the service's certificate with its secret key "
                                        "(``*.key_secret``, mode 0600)")
    authorized_clients_dir: str = Field(description="folder of the public certificates (``*.key``) of the "
                                        "subscribers allowed to connect; any other client receives nothing")


class PublishSpec(StrictModel):
    endpoint: str = Field("ipc:///tmp/ims-runtime.sock",
                          description="one ZeroMQ PUB socket (ipc:// or tcp://) carrying driver_state and telemetry")
    send_hwm_msgs: int = Field(64, ge=1, le=100000, description="send high-water mark (messages); beyond it "
                               "messages are dropped and counted, never blocking the frame loop")
    telemetry_interval_s: float = Field(1.0, ge=0.1, le=3600, description="seconds between telemetry messages "
                                        "(0.1..3600: faster would cost the frame loop a telemetry pass per frame)")
    curve: CurveSpec | None = Field(None, description="CURVE encryption + authentication; required for tcp:// "
                                    "endpoints other than loopback (127.0.0.1, [::1], localhost)")

    @field_validator("endpoint")
    @classmethod
    def _transport(cls, value: str) -> str:
        return check_endpoint(value)

    @model_validator(mode="after")
    def _tcp_needs_curve(self) -> PublishSpec:
        host = self.endpoint.removeprefix("tcp://").rsplit(":", 1)[0]
        if self.endpoint.startswith("tcp://") and self.curve is None and host not in LOOPBACK_HOSTS:
            raise ValueError(f"{self.endpoint} is reachable from other machines: configure publish.curve "
                             "(server key + authorized client keys) or bind to 127.0.0.1")
        return self


class BudgetSpec(StrictModel):
    """Resource budget checked continuously at each telemetry tick; violations are published and logged.

    The article's deployment example: ``latency_ms_max: 20, fps_min: 50, power_w_max: 1.5, rss_mb_max: 200``.
    A limit left null is not checked.
    """

    latency_ms_max: float | None = Field(None, gt=0, le=60000, description="per-frame total pipeline latency, "
                                         "ms, checked on the p95 of the telemetry window (at most a minute)")
    fps_min: float | None = Field(None, gt=0, le=1000, description="output frames per second over the telemetry "
                                  "interval (at most 1000: above any camera)")
    power_w_max: float | None = Field(None, gt=0, le=10000, description="measured power in watts (skipped when "
                                      "no probe; at most 10 kW)")
    rss_mb_max: float | None = Field(None, gt=0, le=1048576, description="resident memory of the process, MiB "
                                     "(at most 1 TiB)")


class ServiceSpec(StrictModel):
    """How ``serve`` schedules frames."""

    queue_frames: int = Field(1, ge=1, le=64, description="frames buffered between capture and processing; when "
                              "processing is slower than the camera the oldest is dropped (newest wins)")
    max_fps: float | None = Field(None, gt=0, le=240, description="process at most this many frames per second "
                                  "(frames in between are dropped and counted); null = as fast as frames come")
    opencv_threads: int = Field(0, ge=0, le=64, description="OpenCV's worker threads for the per-frame resize and "
                                "warps (cv2.setNumThreads, process-wide); 0 = on the calling thread: the crops are "
                                "too small to split, and handing them to a pool costs more than it saves and "
                                "waits on a busy core (docs/performance.md)")


class RoadZoneSpec(StrictModel):
    """Where the driver's eyes count as on the road, in the camera's angle frame (see docs/policy.md)."""

    center_yaw_rad: float = Field(0.0, ge=-1.6, le=1.6, description="gaze yaw of the road centre as the camera "
                                  "sees it (radians; the camera's mounting offset)")
    center_pitch_rad: float = Field(0.0, ge=-1.6, le=1.6, description="gaze pitch of the road centre (radians)")
    yaw_limit_rad: float = Field(0.402, gt=0, le=1.6, description="half-width of the zone in yaw (radians); "
                                 "openpilot's head-pose limit 0.402 rad")
    pitch_limit_rad: float = Field(0.313, gt=0, le=1.6, description="half-height of the zone in pitch (radians); "
                                   "openpilot's limit 0.313 rad")
    head_pose_fallback: bool = Field(True, description="without gaze angles, judge the zone from the head pose "
                                     "(same limits)")


class SpeedSourceSpec(StrictModel):
    """Vehicle speed on the vehicle: a ZeroMQ SUB socket (messages: topic frame, then JSON {speed_kmh, t_ns})."""

    endpoint: str = Field("ipc:///tmp/ims-vehicle.sock", description="ZeroMQ endpoint the vehicle gateway "
                          "publishes on (ipc:// or tcp://); the service connects to it")
    topic: str = Field("vehicle", min_length=1, max_length=255, description="ZeroMQ topic of the speed messages "
                       "(1..255 characters: ZeroMQ subscriptions are byte prefixes)")
    stale_after_s: float = Field(1.0, gt=0, le=60, description="a speed older than this (seconds, by its t_ns "
                                 "against the frame's t_capture_ns, same monotonic clock) is unknown")

    @field_validator("endpoint")
    @classmethod
    def _transport(cls, value: str) -> str:
        return check_endpoint(value)


class PolicySpec(StrictModel):
    """Driver-monitoring policy thresholds: each with its unit and source (numbers: docs/policy.md,
    ../shared/docs/dms-requirements.md). The policy is pure; these are its only settings."""

    road_zone: RoadZoneSpec = Field(default_factory=RoadZoneSpec)
    long_distraction_s: float = Field(3.0, gt=0, le=30, description="single glance away at least this long "
                                      "(seconds) → long_distraction (Euro NCAP 2026)")
    vats_window_s: float = Field(30.0, gt=0, le=300, description="VATS sliding window (seconds, Euro NCAP 2026)")
    vats_limit_s: float = Field(10.0, gt=0, le=300, description="more than this much eyes-off-road time "
                                "(seconds) inside the window → vats_distraction (Euro NCAP 2026)")
    distraction_min_speed_kmh: float = Field(10.0, ge=0, le=200, description="Euro NCAP distraction rules and "
                                             "driver_absent act at or above this speed (km/h; project default, "
                                             "unconfirmed from the protocol)")
    addw_band_kmh: tuple[Annotated[float, Field(ge=0, le=400)], Annotated[float, Field(ge=0, le=400)]] = Field(
        (20.0, 50.0), description="ADDW low-speed band (km/h, EU 2023/2590, each 0..400 like a vehicle speed): "
        "glance limit addw_low_limit_s inside, addw_high_limit_s above it, inactive below")
    addw_low_limit_s: float = Field(6.0, gt=0, le=30, description="ADDW glance limit in the band (seconds)")
    addw_high_limit_s: float = Field(3.5, gt=0, le=30, description="ADDW glance limit above the band (seconds)")
    drowsiness_min_speed_kmh: float = Field(50.0, ge=0, le=200, description="drowsiness warns at or above this "
                                            "speed (km/h): Euro NCAP 2026 ≥ 50; covers DDAW's 'active above 70'")
    drowsiness_warn_kss: float = Field(7.0, ge=5, le=8, description="KSS-equivalent that warns (DDAW EU "
                                       "2021/1341: must at 8, may at 7; Euro NCAP: 7)")
    drowsiness_clear_margin_kss: float = Field(0.5, ge=0, le=3, description="hysteresis: the alert clears below "
                                               "drowsiness_warn_kss minus this")
    drowsiness_clear_s: float = Field(30.0, ge=0, le=600, description="...for this long (seconds)")
    microsleep_closed_s: float = Field(2.0, gt=0, le=10, description="eyes closed at least this long (seconds) "
                                       "→ microsleep (production default, Kia FAW manual; unconfirmed by Euro NCAP)")
    microsleep_min_speed_kmh: float = Field(10.0, ge=0, le=200, description="microsleep acts at or above this "
                                            "speed (km/h)")
    microsleep_clear_open_s: float = Field(1.0, ge=0, le=30, description="eyes open this long (seconds) clears "
                                           "a microsleep alert")
    clear_on_road_s: float = Field(2.0, ge=0, le=30, description="continuous on-road gaze (seconds) that clears "
                                   "a distraction alert")
    escalation_s: Annotated[tuple[Annotated[float, Field(gt=0, le=600)], ...], Field(max_length=5)] = Field(
        (3.0, 6.0), description="alert level rises by one at each of these times after its onset (seconds, "
        "each 0..600; at most 5 steps: levels 1 → 2 → 3 are what an HMI shows)")
    face_lost_grace_s: float = Field(0.5, ge=0, le=5, description="losses of the face (or frame gaps) up to "
                                     "this long (seconds) hold the glance timers instead of resetting them")
    min_face_confidence: float = Field(0.5, ge=0, le=1, description="face/face-state confidence below this "
                                       "makes the frame unusable for the policy")
    unavailable_after_s: float = Field(1.0, ge=0, le=60, description="unusable for this long (seconds) → "
                                       "availability temporarily_unavailable (ADDW temporary failure warning)")
    failed_after_s: float = Field(60.0, gt=0, le=3600, description="unusable for this long (seconds) → "
                                  "availability failed (ADDW permanent failure warning; project default)")
    driver_absent_after_s: float = Field(3.0, ge=0, le=60, description="no face this long (seconds) → "
                                         "driver_absent alert")
    camera_blocked_after_s: float = Field(3.0, ge=0, le=60, description="camera blocked this long (seconds) "
                                          "→ camera_blocked alert")
    unknown_speed: Literal["assume_moving", "suppress"] = Field(
        "assume_moving", description="speed unknown or stale: assume_moving = every speed-gated rule acts "
        "(ADDW with its stricter limit), fail-safe; suppress = speed-gated rules do not raise")
    speed: SpeedSourceSpec = Field(default_factory=SpeedSourceSpec)

    @model_validator(mode="after")
    def _ordered(self) -> PolicySpec:
        low, high = self.addw_band_kmh
        if not 0 <= low < high:
            raise ValueError("addw_band_kmh must be (low, high) with 0 <= low < high")
        if list(self.escalation_s) != sorted(self.escalation_s):
            raise ValueError("escalation_s must be increasing")
        if self.failed_after_s <= self.unavailable_after_s:
            raise ValueError("failed_after_s must exceed unavailable_after_s")
        return self


class Spec(StrictModel):
    """A deployment spec (schema version 1)."""

    schema_version: Literal[1] = Field(1, description="spec format version")
    name: str = Field(min_length=1, max_length=100, description="short name shown in logs, telemetry and systemd's "
                      "STATUS= line (1..100 characters)")
    description: str = Field("", max_length=2000, description="free text for people (at most 2000 characters)")
    source: SourceSpec = Field(default_factory=SourceSpec)
    stages: StagesSpec = Field(default_factory=StagesSpec)
    publish: PublishSpec = Field(default_factory=PublishSpec)
    policy: PolicySpec | None = Field(None, description="driver-monitoring policy (alerts); null = off")
    budget: BudgetSpec | None = Field(None, description="resource budget checked continuously (null: none)")
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="frame scheduling in serve")
