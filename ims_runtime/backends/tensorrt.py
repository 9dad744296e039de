"""NVIDIA TensorRT (Jetson Orin) with cuda-python: engine built from ONNX, cached, run on a CUDA stream.

**Not run on hardware by this project yet** (TensorRT cannot be installed on the development machines; see
``docs/backends.md`` and ``scripts/verify_tensorrt.py``). Written against the TensorRT 10 Python API:

* build: ``Builder`` → ``create_network(0)`` (explicit batch is the only mode in TensorRT 10) → ``OnnxParser``
  → ``BuilderConfig`` (``set_memory_pool_limit(WORKSPACE)``, precision flags, timing cache) →
  ``build_serialized_network``. A QDQ model is *explicitly quantised*: its Q/DQ nodes decide the INT8 layers
  (``BuilderFlag.INT8`` lets TensorRT use them, ``FP16`` lets the remaining float layers run in half precision).
  TensorRT 11 removed those weak-typing flags; there the network is created ``STRONGLY_TYPED`` instead.
* cache: the serialized engine (plan) and the timing cache are keyed by model sha256, TensorRT version, GPU name
  and compute capability, and the build options (:mod:`ims_runtime.backends._cache`). A plan that fails to
  deserialise is discarded and rebuilt.
* run: I/O by tensor name (``get_tensor_name``/``get_tensor_mode``), one device buffer per tensor
  (``cudaMalloc``), ``set_input_shape`` + ``set_tensor_address`` once, then per frame ``cudaMemcpyAsync`` in,
  ``execute_async_v3(stream)``, ``cudaMemcpyAsync`` out and ``cudaStreamSynchronize``.
* warm-up: a few runs on zeros before the backend is returned, so the first real frame is not the slow one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import structlog
from pydantic import Field

from ims_runtime import errors, paths
from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.backends import _cache
from ims_runtime.backends._vendor import import_sdk
from ims_runtime.backends.base import Backend, BackendConfigBase, TensorInfo
from ims_runtime.backends.registry import BackendEntry, register

log = structlog.get_logger(__name__)

_INSTALL_HINT = ("TensorRT ships with JetPack/L4T (use Dockerfile.jetson, or `pip install 'ims-runtime[trt]'` on "
                 "a Jetson with NVIDIA's package index); it cannot be installed on x86 development machines — list "
                 "ort_cpu after tensorrt in the spec's backends to fall back")


class TensorRtConfig(BackendConfigBase):
    """TensorRT on an NVIDIA GPU (Jetson Orin). Needs static shapes or ``input_shapes``."""

    type: Literal["tensorrt"] = "tensorrt"
    precision: Literal["int8_qdq", "fp16", "fp32"] = Field(
        "fp16", description="int8_qdq: explicit quantisation from the model's Q/DQ nodes (plus FP16 for float "
        "layers); fp16: float model run in half precision; fp32: reference")
    workspace_mib: int = Field(512, ge=16, le=65536, description="builder scratch memory limit, MiB "
                               "(MemoryPoolType.WORKSPACE); Orin shares it with the CPU")
    builder_optimization_level: int = Field(3, ge=0, le=5, description="TensorRT builder effort 0..5 (3 = "
                                            "TensorRT default); higher builds slower, may run faster")
    input_shapes: dict[str, tuple[int, ...]] | None = Field(
        None, description="fixed shapes for inputs with dynamic dims, e.g. {input: [1, 3, 384, 640]} (one "
        "optimisation profile, min = opt = max)")
    warmup_runs: int = Field(5, ge=0, le=100, description="runs on zeros before the backend reports ready (count)")
    device_index: int = Field(0, ge=0, description="CUDA device (Jetson: always 0)")


def _import_tensorrt() -> object:
    return import_sdk("tensorrt", "tensorrt", "the tensorrt Python package", _INSTALL_HINT)


def _import_cudart() -> object:
    """cuda-python's runtime bindings: ``cuda.bindings.runtime`` (cuda-python >= 12.6) or ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python layout
        except ImportError as exc:
            raise errors.IMSError(errors.BACKEND_UNAVAILABLE,
                                  f"backend tensorrt needs cuda-python, which is not installed ({exc})",
                                  "pip install 'ims-runtime[trt]'") from exc
    return cudart


def _check(cudart: object, result: tuple, what: str) -> object:
    """cuda-python calls return ``(cudaError_t, *values)``; raise on any error, return the value(s)."""
    err, *values = result
    if int(err) != 0:
        name = cudart.cudaGetErrorName(err)[1]  # type: ignore[attr-defined]
        raise errors.IMSError(errors.BACKEND_RUNTIME if what.startswith("run") else errors.BACKEND_UNAVAILABLE,
                              f"CUDA {what} failed: {name!r}",
                              "check the NVIDIA driver / JetPack installation (`nvidia-smi` or `tegrastats`)")
    return values[0] if len(values) == 1 else tuple(values) or None


def gpu_identity(cudart: object, device_index: int = 0) -> dict[str, str]:
    """GPU name and compute capability: what an engine and a timing cache are tied to."""
    _check(cudart, cudart.cudaSetDevice(device_index), "cudaSetDevice")  # type: ignore[attr-defined]
    props = _check(cudart, cudart.cudaGetDeviceProperties(device_index), "cudaGetDeviceProperties")  # type: ignore[attr-defined]
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name, "compute_capability": f"{props.major}.{props.minor}"}


def engine_key(model_sha256: str, trt_version: str, gpu: dict[str, str], config: TensorRtConfig) -> _cache.CacheKey:
    shapes = {k: list(v) for k, v in sorted((config.input_shapes or {}).items())}
    return _cache.CacheKey.make(model_sha256, "tensorrt", trt_version, target=gpu,
                                options={"precision": config.precision, "workspace_mib": config.workspace_mib,
                                         "opt_level": config.builder_optimization_level, "shapes": shapes})


def build_engine(trt: object, model_path: Path, config: TensorRtConfig, timing_cache_path: Path) -> bytes:
    """ONNX → serialized engine (plan) bytes, reading and updating the timing cache file."""
    logger = trt.Logger(trt.Logger.WARNING)  # type: ignore[attr-defined]
    builder = trt.Builder(logger)  # type: ignore[attr-defined]
    weak_typing = hasattr(trt.BuilderFlag, "FP16")  # type: ignore[attr-defined]  # TensorRT 10; removed in 11
    flags = 0 if weak_typing else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # type: ignore[attr-defined]
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)  # type: ignore[attr-defined]
    if not parser.parse_from_file(str(model_path)):
        problems = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise errors.IMSError(errors.BACKEND_PLACEMENT,
                              f"TensorRT's ONNX parser rejects {model_path.name}: {problems[:400]}",
                              "export with opset 17 and static shapes, or list another backend after tensorrt")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)  # type: ignore[attr-defined]
    builder_config.builder_optimization_level = config.builder_optimization_level
    if weak_typing and config.precision in ("fp16", "int8_qdq"):
        builder_config.set_flag(trt.BuilderFlag.FP16)  # type: ignore[attr-defined]
    if weak_typing and config.precision == "int8_qdq":
        builder_config.set_flag(trt.BuilderFlag.INT8)  # type: ignore[attr-defined]  # Q/DQ scales, no calibrator
    dynamic = [network.get_input(i) for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)]
    if dynamic:
        shapes = config.input_shapes or {}
        missing = [t.name for t in dynamic if t.name not in shapes]
        if missing:
            raise errors.IMSError(errors.MODEL_CONTRACT, f"{model_path.name} has dynamic inputs {missing}",
                                  "set input_shapes in the tensorrt backend entry, or export with a fixed size")
        profile = builder.create_optimization_profile()
        for tensor in dynamic:
            shape = tuple(shapes[tensor.name])
            profile.set_shape(tensor.name, shape, shape, shape)
        builder_config.add_optimization_profile(profile)
    cache_bytes = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
    timing_cache = builder_config.create_timing_cache(cache_bytes)
    builder_config.set_timing_cache(timing_cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, builder_config)
    if plan is None:
        raise errors.IMSError(errors.BACKEND_PLACEMENT, f"TensorRT could not build an engine for {model_path.name}",
                              "run with TensorRT verbose logging (trtexec --onnx=... --verbose) to see which layer")
    atomic_write_bytes(timing_cache_path, bytes(memoryview(builder_config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))


class TensorRtBackend(Backend):
    key = "tensorrt"

    def __init__(self, model_path: Path, config: TensorRtConfig) -> None:
        super().__init__(model_path, config)
        trt = _import_tensorrt()
        cudart = _import_cudart()
        if not model_path.is_file():
            raise errors.IMSError(errors.MODEL_NOT_FOUND, f"model file {model_path} does not exist",
                                  "run `ims-runtime models` to see where models are looked for")
        self._cudart = cudart
        self.trt_version = str(trt.__version__)  # type: ignore[attr-defined]
        self.gpu = gpu_identity(cudart, config.device_index)
        key = engine_key(paths.sha256_file(model_path), self.trt_version, self.gpu, config)
        plan_path = _cache.artefact_path("tensorrt", model_path, key, ".plan")
        self.plan_path = plan_path  # the cached engine (``ims-opt compile trt`` reports it)
        timing_path = _cache.artefact_path("tensorrt", Path("timing"), _cache.CacheKey.make(
            "-", "tensorrt", self.trt_version, self.gpu), ".cache")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # type: ignore[attr-defined]
        self.engine_status = "hit"
        engine = None
        if plan_path.is_file():
            engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if engine is None:  # wrong TensorRT/GPU despite the key, or a damaged file: rebuild
                log.warning("tensorrt_engine_rebuild", path=str(plan_path))
                _cache.discard(plan_path)
        if engine is None:
            log.info("tensorrt_build", model=model_path.name, precision=config.precision, note="takes minutes")
            plan = build_engine(trt, model_path, config, timing_path)
            atomic_write_bytes(plan_path, plan)
            _cache.write_sidecar(plan_path, key, source_model=str(model_path))
            engine = runtime.deserialize_cuda_engine(plan)
            self.engine_status = "built"
        if engine is None:
            raise errors.IMSError(errors.BACKEND_UNAVAILABLE, "TensorRT could not deserialize the engine it built",
                                  "check the TensorRT installation")
        self._runtime, self._engine = runtime, engine
        self._context = engine.create_execution_context()
        self._stream = _check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")  # type: ignore[attr-defined]
        self._inputs, self._outputs, self._device_ptrs, self._host_out = [], [], {}, {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT  # type: ignore[attr-defined]
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))  # type: ignore[attr-defined]
            shape = tuple(engine.get_tensor_shape(name))
            if is_input and -1 in shape:
                shape = tuple((config.input_shapes or {})[name])
                self._context.set_input_shape(name, shape)
            info = TensorInfo(name, shape, f"tensor({dtype.name})")
            (self._inputs if is_input else self._outputs).append(info)
        for info in self._inputs + self._outputs:
            shape = tuple(self._context.get_tensor_shape(info.name))
            dtype = np.dtype(info.dtype[len("tensor("):-1])
            nbytes = int(np.prod(shape)) * dtype.itemsize
            ptr = _check(cudart, cudart.cudaMalloc(nbytes), "cudaMalloc")  # type: ignore[attr-defined]
            self._device_ptrs[info.name] = (int(ptr), nbytes, dtype, shape)
            self._context.set_tensor_address(info.name, int(ptr))
            if info in self._outputs:
                self._host_out[info.name] = np.empty(shape, dtype)
        for _ in range(config.warmup_runs):
            self.run({t.name: np.zeros(self._device_ptrs[t.name][3], self._device_ptrs[t.name][2])
                      for t in self._inputs})
        log.info("tensorrt_loaded", model=model_path.name, engine=self.engine_status, precision=config.precision,
                 tensorrt=self.trt_version, **self.gpu)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice  # type: ignore[attr-defined]
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost  # type: ignore[attr-defined]
        keep_alive = []  # host arrays must outlive the asynchronous copies
        for info in self._inputs:
            ptr, nbytes, dtype, shape = self._device_ptrs[info.name]
            array = np.ascontiguousarray(feeds[info.name], dtype=dtype)
            if array.nbytes != nbytes:
                raise errors.IMSError(errors.MODEL_CONTRACT, f"input {info.name} has shape {array.shape}, the "
                                      f"engine expects {shape}", "fix the stage's input size")
            keep_alive.append(array)
            _check(cudart, cudart.cudaMemcpyAsync(ptr, array.ctypes.data, nbytes, h2d, self._stream), "run: copy in")  # type: ignore[attr-defined]
        if not self._context.execute_async_v3(int(self._stream)):
            raise errors.IMSError(errors.BACKEND_RUNTIME, "TensorRT execute_async_v3 returned false",
                                  "see the TensorRT log above")
        for info in self._outputs:
            ptr, nbytes, _, _ = self._device_ptrs[info.name]
            host = self._host_out[info.name]
            _check(cudart, cudart.cudaMemcpyAsync(host.ctypes.data, ptr, nbytes, d2h, self._stream), "run: copy out")  # type: ignore[attr-defined]
        _check(cudart, cudart.cudaStreamSynchronize(self._stream), "run: synchronize")  # type: ignore[attr-defined]
        return [self._host_out[o.name].copy() for o in self._outputs]

    def describe(self) -> dict[str, object]:
        cfg: TensorRtConfig = self.config  # type: ignore[assignment]
        return {"backend": self.key, "model": self.model_path.name, "compute_precision": cfg.precision,
                "tensorrt": self.trt_version, **self.gpu, "engine_cache": self.engine_status}

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr, *_ in getattr(self, "_device_ptrs", {}).values():
            cudart.cudaFree(ptr)  # type: ignore[attr-defined]
        self._device_ptrs = {}
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)  # type: ignore[attr-defined]
            self._stream = None
        self._context = self._engine = None
        self._cudart = None


register(BackendEntry("tensorrt", TensorRtConfig, TensorRtBackend,
                      "NVIDIA TensorRT 10+ with cuda-python (Jetson Orin); not installable on x86 dev machines"))
