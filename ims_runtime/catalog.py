"""The model artefacts the project knows by name, how each is made, and how a spec's ``model`` entry resolves.

A spec names a model either by catalogue name (``retinaface_mnet025_fp32``), by file name
(``retinaface_mnet025_fp32.onnx``) searched on :func:`ims_runtime.paths.model_search_path`, or by a path
(absolute, or relative to the spec file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ims_runtime import errors, paths


@dataclass(frozen=True)
class Artefact:
    name: str
    filename: str
    description: str
    #: command that builds it into the cache (None for weights committed in the project's models/)
    build_command: tuple[str, ...] | None
    #: inputs it is built from, relative to a folder of IMS_MODEL_PATH
    inputs: tuple[str, ...] = ()


CATALOG: dict[str, Artefact] = {}


def add(artefact: Artefact) -> None:
    CATALOG[artefact.name] = artefact


add(Artefact(
    name="retinaface_mnet025_fp32",
    filename="retinaface_mnet025_fp32.onnx",
    description="RetinaFace-MobileNet0.25 face detector, FP32, dynamic input size (exported from the official weights)",
    build_command=("ims-opt", "export", "retinaface"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))

add(Artefact(
    name="retinaface_mnet025_int8",
    filename="retinaface_mnet025_int8.onnx",
    description="RetinaFace-MobileNet0.25, static QDQ INT8 (u8 activations, s8 per-channel weights), dynamic input size, "
                "calibrated on real footage, the most quantisation-sensitive layers kept in float "
                "(deploy/recipes/detector.yaml, variant int8_deploy; docs/optimisation.md)",
    build_command=("ims-opt", "build", "retinaface_mnet025_int8"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))

add(Artefact(
    name="retinaface_mnet025_int8_qnn_320x192",
    filename="retinaface_mnet025_int8_qnn_320x192.onnx",
    description="RetinaFace-MobileNet0.25, static 320x192 input, INT8 QDQ for Qualcomm HTP (u8 activations, s8 "
                "per-channel weights), calibrated on video00/video01",
    build_command=("ims-opt", "quantize-qnn", "retinaface", "--input-size", "320", "192"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))

add(Artefact(
    name="retinaface_mnet025_fp32_640x384",
    filename="retinaface_mnet025_fp32_640x384.onnx",
    description="RetinaFace-MobileNet0.25, FP32, static 640x384 input (for TensorRT, which builds FP16 from it)",
    build_command=("ims-opt", "export", "retinaface", "--input-size", "640", "384"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))


add(Artefact(
    name="fatigue_tcn",
    filename="fatigue_tcn.onnx",
    description="temporal fatigue classifier (1-D CNN, 60 s of 50 ms eye bins → KSS-equivalent + level), trained "
                "by `ims-opt train fatigue` on the project's cited generator",
    build_command=None,
))

add(Artefact(
    name="face_state_v1",
    filename="face_state_v1.onnx",
    description="the project's own face-state network (gaze, head pose, eye/mouth openness), FP32, 112x112 aligned "
                "crop; trained by `ims-opt train face-state` (distilled from MediaPipe FaceMesh and Intel OMZ)",
    build_command=None,
))

add(Artefact(
    name="face_state_v2",
    filename="face_state_v2.onnx",
    description="face-state network v2 (same contract as v1), FP32, 112x112 aligned crop; trained by `ims-opt "
                "train face-state --recipe deploy/recipes/face-state-v2.yaml` on video00-02 and UTKFace (weights: "
                "non-commercial research only, UTKFace's terms) with the deployed detector's landmark jitter",
    build_command=None,
))

add(Artefact(
    name="eye_state_v1",
    filename="eye_state_v1.onnx",
    description="the project's own eye-state network: two grey 32x32 eye crops (placed from the detector's eye "
                "landmarks) → calibrated openness per eye, FP32; trained by `ims-opt train eye-state` (distilled "
                "from Intel OMZ open-closed-eye-0001 and MediaPipe Iris; footage + UTKFace, non-commercial research "
                "licence: see models/manifest.json)",
    build_command=None,
))

add(Artefact(
    name="face_state_v1_int8",
    filename="face_state_v1_int8.onnx",
    description="the face-state network, static QDQ INT8 (u8 activations, s8 per-channel weights), calibrated on "
                "detector-aligned face crops of video00-02 (deploy/recipes/face-state-opt.yaml, variant "
                "int8_minmax; docs/optimisation.md)",
    build_command=("ims-opt", "build", "face_state_v1_int8"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))

add(Artefact(
    name="face_state_v2_int8_qnn",
    filename="face_state_v2_int8_qnn.onnx",
    description="face-state v2, INT8 QDQ for Qualcomm HTP (ONNX Runtime's QNN recipe: u8 activations, s8 "
                "per-channel weights), calibrated on detector-aligned face crops of video00-02; static 1x3x112x112 "
                "(deploy/recipes/face-state-v2-opt.yaml, variant qnn_w8a8)",
    build_command=("ims-opt", "build", "face_state_v2_int8_qnn"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))

add(Artefact(
    name="face_state_v1_int8_qnn",
    filename="face_state_v1_int8_qnn.onnx",
    description="the face-state network, INT8 QDQ for Qualcomm HTP (ONNX Runtime's QNN recipe: u8 activations, s8 "
                "per-channel weights), calibrated on detector-aligned face crops of video00-02; static 1x3x112x112 "
                "(deploy/recipes/face-state-opt.yaml, variant qnn_w8a8; runs entirely on the HTP simulator)",
    build_command=("ims-opt", "build", "face_state_v1_int8_qnn"),
    inputs=("retinaface/mobilenet0.25_Final.pth",),
))


def lookup(ref: str) -> Artefact | None:
    if ref in CATALOG:
        return CATALOG[ref]
    for artefact in CATALOG.values():
        if artefact.filename == ref:
            return artefact
    return None


def resolve(ref: str, spec_dir: Path | None = None) -> Path:
    """Turn a spec's ``model`` value into an existing file, or raise ``MODEL_NOT_FOUND`` saying how to fix it."""
    artefact = lookup(ref)
    if artefact is None and ("/" in ref or ref.startswith("~")):
        candidate = Path(ref).expanduser()
        if not candidate.is_absolute() and spec_dir is not None:
            candidate = spec_dir / candidate
        if candidate.is_file():
            return candidate
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"model file {candidate} does not exist",
                              "fix the spec's model path")
    filename = artefact.filename if artefact else ref
    found = paths.find_file(filename)
    if found is not None:
        return found
    searched = ", ".join(str(p) for p in paths.model_search_path())
    if artefact and artefact.build_command:
        hint = (f"build it with `ims-runtime models build` (runs `{' '.join(artefact.build_command)}`; needs the "
                "toolchain extra), or point IMS_CACHE_DIR at the folder that holds it")
    else:
        hint = "put it on IMS_MODEL_PATH or fix the spec's model name"
    raise errors.IMSError(errors.MODEL_NOT_FOUND, f"model {ref!r} not found in {searched}", hint)


def check_sha256(path: Path, expected: str | None) -> str:
    """Return the file's sha256; raise ``MODEL_SHA256_MISMATCH`` when the spec pins another one."""
    try:
        actual = paths.sha256_file(path)
    except OSError as exc:  # permission denied, a directory named like the model, an I/O error
        raise errors.IMSError(errors.MODEL_UNREADABLE, f"cannot read model {path}: {exc.strerror or exc}",
                              "check the file's permissions (the service user must be able to read it)") from exc
    if expected and actual.lower() != expected.lower():
        raise errors.IMSError(errors.MODEL_SHA256_MISMATCH,
                              f"{path} has sha256 {actual[:16]}…, the spec pins {expected[:16]}…",
                              "rebuild the artefact or update the spec's sha256 after checking the file")
    return actual
