"""Compile targets: QNN HTP context binaries and TensorRT plans, cached under keys that say what they are tied to.

Both kinds of artefact only load on the toolkit version and chip they were built for (platform-notes), so the
cache path carries both: ``qnn/<qnn-sdk-version>/soc<id>/<model-sha256[:16]>.onnx_ctx.onnx`` and
``trt/<tensorrt-version>/<gpu-name>/<model-sha256[:16]>.plan``.

Neither runs on a plain x86 CI machine: the QNN path needs ``onnxruntime-qnn`` (its HTP simulator builds context
binaries on x86); TensorRT cannot be installed here at all, so :func:`build_tensorrt_plan` is written against the
TensorRT 10 API behind a guarded import and has not been run in this project.
"""

from __future__ import annotations

import re
from pathlib import Path

from ims_runtime import errors, paths


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def build_qnn_context(model: Path, soc_model: int = 60, cache: Path | None = None) -> Path:
    """Compile a QDQ model for the HTP into an EP-context model (``ep.context_enable``), keyed by SDK and SoC."""
    try:
        import onnxruntime as ort
        import onnxruntime_qnn  # type: ignore[import-not-found]
    except ImportError as exc:
        raise errors.IMSError(errors.BACKEND_UNAVAILABLE, "onnxruntime-qnn is not installed",
                              "pip install '.[qnn]' (needs glibc >= 2.35)") from exc
    version = getattr(onnxruntime_qnn, "__version__", "unknown")
    out = (cache or paths.cache_dir()) / "qnn" / _safe(version) / f"soc{soc_model}" / \
        f"{paths.sha256_file(model)[:16]}.onnx_ctx.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    ort.register_execution_provider_library(onnxruntime_qnn.get_ep_name(), onnxruntime_qnn.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == onnxruntime_qnn.get_ep_name()]
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")  # no silent CPU fallback
    options.add_session_config_entry("ep.context_enable", "1")
    options.add_session_config_entry("ep.context_file_path", str(out))
    options.add_session_config_entry("ep.context_embed_mode", "1")
    options.add_provider_for_devices(devices, {"backend_path": onnxruntime_qnn.get_qnn_htp_path(),
                                               "soc_model": str(soc_model)})
    ort.InferenceSession(str(model), options)  # creating the session writes the context model
    if not out.is_file():
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"QNN did not write {out}", "see the ORT log")
    return out


def build_tensorrt_plan(model: Path, cache: Path | None = None, workspace_mib: int = 1024) -> Path:
    """Explicitly quantised TensorRT plan from a QDQ ONNX (TensorRT 10+ API). Not run here: no TensorRT."""
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise errors.IMSError(errors.BACKEND_UNAVAILABLE, "TensorRT is not installed",
                              "run on a Jetson / NVIDIA machine with TensorRT 10+") from exc
    from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

    _, props = cudart.cudaGetDeviceProperties(0)
    gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    out = (cache or paths.cache_dir()) / "trt" / _safe(trt.__version__) / _safe(gpu) / \
        f"{paths.sha256_file(model)[:16]}.plan"
    if out.is_file():
        return out
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.read_bytes()):
        problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"TensorRT cannot parse {model}: {problems}", "")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.set_flag(trt.BuilderFlag.INT8)  # explicit quantisation: the QDQ nodes give the scales
    config.set_flag(trt.BuilderFlag.FP16)  # layers the QDQ graph leaves in float may use FP16
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"TensorRT failed to build {model}", "see the log")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(plan))
    return out
