"""Qualcomm QNN HTP (Hexagon NPU) through the ``onnxruntime-qnn`` plugin execution provider.

How it loads (ONNX Runtime's plugin-EP API, see ``../shared/docs/platform-notes.md``):

1. register the plugin library once per process (``register_execution_provider_library``), take the QNN entries
   of ``get_ep_devices()`` and add them to the session with ``add_provider_for_devices`` and the HTP backend path;
2. **no silent CPU fallback**: ``session.disable_cpu_ep_fallback=1`` unless the spec sets ``allow_cpu_fallback``.
   A model HTP cannot run entirely is refused with ``BACKEND_PLACEMENT`` naming the operators it rejects, so the
   stage's fallback list moves on to its next backend (and says so) instead of quietly running on the CPU;
3. the graph is compiled once into an EP-context model (``ep.context_enable``) cached under
   ``<IMS_CACHE_DIR>/qnn_context/``, keyed by model sha256, QNN SDK version, SoC model, HTP architecture and the
   options that change the compiled graph. A cached context that fails to load is discarded and rebuilt.

On x86 the wheel's ``libQnnHtp.so`` is the HTP *simulator*: numerically representative, about a second per
RetinaFace run, meaningless for speed.
"""

from __future__ import annotations

import platform
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import structlog
from pydantic import Field, PositiveInt, model_validator

from ims_runtime import errors, paths
from ims_runtime.backends import _cache
from ims_runtime.backends._vendor import import_sdk
from ims_runtime.backends.base import Backend, BackendConfigBase, Placement
from ims_runtime.backends.ort_cpu import describe_io
from ims_runtime.backends.registry import BackendEntry, register

log = structlog.get_logger(__name__)

EP_NAME = "QNNExecutionProvider"
CPU_EP = "CPUExecutionProvider"
#: the message ONNX Runtime raises when disable_cpu_ep_fallback meets a node no EP but the CPU took
_FALLBACK_DISABLED = "fallback to CPU EP has been explicitly disabled"
_INSTALL_HINT = "install the QNN extra (`pip install 'ims-runtime[qnn]'`, wheel ~99 MB) or remove qnn_htp from the spec"

PerformanceMode = Literal[
    "burst", "sustained_high_performance", "high_performance", "balanced", "low_balanced", "power_saver",
    "low_power_saver", "high_power_saver", "extreme_power_saver", "default",
]


class QnnConfig(BackendConfigBase):
    """QNN HTP (Hexagon NPU) via onnxruntime-qnn. Needs a static-shape model; QDQ models run in integer."""

    type: Literal["qnn_htp"] = "qnn_htp"
    soc_model: int | None = Field(
        52, ge=0, description="QNN SoC model id the graph is compiled for (QnnTypes.h; default 52 = SA8255P/"
        "QCS8255-class, SM8550: 43); None lets QNN use the device it runs on (then fp16_precision must be off)")
    htp_arch: Literal[68, 69, 73, 75, 79, 81] | None = Field(
        73, description="Hexagon HTP architecture version (SA8255P/QCS8255-class: 73); None = the device's")
    performance_mode: PerformanceMode = Field(
        "burst", description="HTP clock/voltage vote (htp_performance_mode); burst = lowest latency, most power")
    fp16_precision: bool = Field(
        True, description="run float (non-QDQ) operators at FP16 on HTP (enable_htp_fp16_precision); HTP has no "
        "fast FP32, so leave on for float models")
    graph_optimization_mode: Literal[0, 1, 2, 3] = Field(
        3, description="HTP graph finalisation effort (htp_graph_finalization_optimization_mode); 3 = slowest "
        "compile, fastest graph; compiled once thanks to the context cache")
    vtcm_mb: int | None = Field(None, ge=0, le=64, description="VTCM scratch memory the graph may use, MiB "
                                "(None = the SoC's default)")
    context_cache: bool = Field(
        True, description="compile once into an EP-context model cached in IMS_CACHE_DIR/qnn_context, keyed by "
        "model sha256, QNN SDK version, soc_model, htp_arch and compile options")
    fixed_dims: dict[str, PositiveInt] | None = Field(
        None, description="sizes for the model's symbolic dimensions, e.g. {batch: 1}: HTP compiles static shapes "
        "only, and a model exported with a dynamic batch is otherwise refused whole (ONNX Runtime's free-dimension "
        "override, applied before the graph is partitioned; part of the context-cache key)")
    allow_cpu_fallback: bool = Field(
        False, description="let nodes HTP cannot run execute on the CPU in the same session (logged with counts). "
        "Off by default: such a model is refused and the stage's next backend is tried instead")

    @model_validator(mode="after")
    def _fp16_needs_soc(self) -> QnnConfig:
        # QNN refuses enable_htp_fp16_precision without soc_model ("Both parameters must be set together")
        if self.fp16_precision and self.soc_model is None:
            raise ValueError("fp16_precision needs soc_model (QNN requires both); set soc_model or "
                             "fp16_precision: false")
        return self


def _qnn_module() -> object:
    """Import ``onnxruntime_qnn`` or raise BACKEND_UNAVAILABLE with the install hint."""
    return import_sdk("onnxruntime_qnn", "qnn_htp", "onnxruntime-qnn", _INSTALL_HINT)


def sdk_version() -> str:
    """The QNN SDK version the wheel ships (e.g. ``2.51.0``), part of every context-cache key."""
    qnn = _qnn_module()
    info = getattr(qnn, "build_and_package_info", None)
    return str(getattr(info, "qnn_version", None) or getattr(qnn, "__version__", "unknown"))


def qnn_devices() -> list:
    """The ``OrtEpDevice`` entries of the QNN plugin, registering the library on first use."""
    import onnxruntime as ort

    qnn = _qnn_module()
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        try:
            ort.register_execution_provider_library(qnn.get_ep_name(), qnn.get_library_path())  # type: ignore[attr-defined]
        except Exception as exc:  # ORT raises its own classes
            raise errors.IMSError(errors.BACKEND_UNAVAILABLE,
                                  f"cannot register the QNN plugin library: {str(exc).splitlines()[0][:200]}",
                                  "onnxruntime-qnn needs glibc >= 2.35 and an onnxruntime version it was built "
                                  "for") from exc
        devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        raise errors.IMSError(errors.BACKEND_UNAVAILABLE, "the QNN plugin registered but exposes no device",
                              _INSTALL_HINT)
    return devices


def provider_options(config: QnnConfig) -> dict[str, str]:
    """QNN EP provider options from the config (all values are strings in ONNX Runtime's API)."""
    qnn = _qnn_module()
    options = {
        "backend_path": qnn.get_qnn_htp_path(),  # type: ignore[attr-defined]
        "htp_performance_mode": config.performance_mode,
        "enable_htp_fp16_precision": "1" if config.fp16_precision else "0",
        "htp_graph_finalization_optimization_mode": str(config.graph_optimization_mode),
    }
    if config.soc_model is not None:
        options["soc_model"] = str(config.soc_model)
    if config.htp_arch is not None:
        options["htp_arch"] = str(config.htp_arch)
    if config.vtcm_mb is not None:
        options["vtcm_mb"] = str(config.vtcm_mb)
    return options


def context_key(model_sha256: str, config: QnnConfig) -> _cache.CacheKey:
    """Everything a compiled QNN context depends on (see :mod:`ims_runtime.backends._cache`)."""
    return _cache.CacheKey.make(
        model_sha256, "qnn", sdk_version(),
        target={"soc_model": config.soc_model, "htp_arch": config.htp_arch},
        options={"fp16": config.fp16_precision, "opt_mode": config.graph_optimization_mode,
                 "vtcm_mb": config.vtcm_mb, "allow_cpu_fallback": config.allow_cpu_fallback,
                 **({"fixed_dims": sorted(config.fixed_dims.items())} if config.fixed_dims else {})})


def _session_options(config: QnnConfig, *, disable_fallback: bool, context_out: Path | None = None) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # only CPU-side glue (and fallback nodes, if allowed) runs on the CPU
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1" if disable_fallback else "0")
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    for dim_name, size in (config.fixed_dims or {}).items():
        options.add_free_dimension_override_by_name(dim_name, size)
    if context_out is not None:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_file_path", str(context_out))
        # embed the context binary in the .onnx: one file to rename atomically and to discard when stale
        options.add_session_config_entry("ep.context_embed_mode", "1")
    options.add_provider_for_devices(qnn_devices(), provider_options(config))
    return options


def node_placement(session: object) -> dict[str, Counter]:
    """``{ep_name: Counter(op_type)}`` from ONNX Runtime's graph assignment record (ORT >= 1.23)."""
    placed: dict[str, Counter] = {}
    for subgraph in session.get_provider_graph_assignment_info():  # type: ignore[attr-defined]
        counter = placed.setdefault(subgraph.ep_name, Counter())
        counter.update(node.op_type for node in subgraph.get_nodes())
    return placed


def _create(model_path: Path, options: object) -> object:
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    try:
        return ort.InferenceSession(str(model_path), sess_options=options)
    except (ort_state.InvalidProtobuf, ort_state.InvalidGraph, ort_state.NoSuchFile) as exc:
        raise errors.IMSError(errors.MODEL_CORRUPT, f"ONNX Runtime cannot load {model_path}: "
                              f"{str(exc).splitlines()[0][:300]}", "rebuild the artefact") from exc


class QnnBackend(Backend):
    key = "qnn_htp"

    def __init__(self, model_path: Path, config: QnnConfig) -> None:
        super().__init__(model_path, config)
        if not model_path.is_file():
            raise errors.IMSError(errors.MODEL_NOT_FOUND, f"model file {model_path} does not exist",
                                  "run `ims-runtime models` to see where models are looked for")
        self.sdk_version = sdk_version()
        self.context_status = "off"
        self.context_path: Path | None = None
        if config.context_cache:
            self._session, self._placed = self._open_cached(model_path, config)
        else:
            self._session, self._placed = self._compile(model_path, config, None)
        self._inputs, self._outputs = describe_io(self._session)
        self._output_names = [o.name for o in self._outputs]
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        counts = {ep: sum(c.values()) for ep, c in self._placed.items()}
        log.info("qnn_loaded", model=model_path.name, nodes_by_ep=counts, context=self.context_status,
                 compute_precision=self.compute_precision, qnn_sdk=self.sdk_version, simulator=self.simulator)
        if counts.get(CPU_EP):
            log.warning("qnn_partial_placement", model=model_path.name, cpu_nodes=counts[CPU_EP],
                        cpu_ops=dict(self._placed[CPU_EP]), note="allow_cpu_fallback is on")

    # -- loading ---------------------------------------------------------------------------------------------

    def _compile(self, model_path: Path, config: QnnConfig, context_out: Path | None) -> tuple[object, dict]:
        """Create a session on the original model (optionally writing the EP-context model)."""
        options = _session_options(config, disable_fallback=not config.allow_cpu_fallback, context_out=context_out)
        try:
            session = _create(model_path, options)
        except errors.IMSError:
            raise
        except Exception as exc:  # ORT's Fail/EPFail subclass Exception directly
            text = str(exc)
            if _FALLBACK_DISABLED in text:
                raise self._placement_error(model_path, config) from exc
            reason = text.rsplit("FAIL : ", 1)[-1].strip().splitlines()[0][:300]  # ORT nests the real reason last
            raise errors.IMSError(errors.BACKEND_UNAVAILABLE, f"QNN HTP could not compile {model_path.name}: "
                                  f"{reason}",
                                  "check soc_model/htp_arch and that the model has static shapes") from exc
        placed = node_placement(session)
        if not placed.get(EP_NAME):
            raise errors.IMSError(errors.BACKEND_PLACEMENT, f"QNN HTP takes none of the nodes of {model_path.name}",
                                  "this model cannot use the NPU; list another backend for the stage")
        return session, placed

    def _placement_error(self, model_path: Path, config: QnnConfig) -> errors.IMSError:
        """Name the operators HTP rejects: recreate the session with fallback allowed and read the assignment."""
        detail = ""
        try:
            probe = _create(model_path, _session_options(config, disable_fallback=False))
            on_cpu = node_placement(probe).get(CPU_EP, Counter())
            total = sum(sum(c.values()) for c in node_placement(probe).values())
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(on_cpu.items()))
            detail = f": {sum(on_cpu.values())} of {total} nodes ({ops}) are not supported by HTP"
        except Exception as exc:  # noqa: BLE001 - best effort: the refusal stands without the detail
            log.debug("qnn_placement_probe_failed", reason=str(exc)[:200])
        return errors.IMSError(
            errors.BACKEND_PLACEMENT,
            f"QNN HTP cannot run all of {model_path.name}{detail}; CPU fallback is disabled",
            "quantise the model to QDQ (ims-opt quantize-qnn), replace the unsupported operators, or list a "
            "fallback backend after qnn_htp (or set allow_cpu_fallback: true to accept a mixed HTP/CPU session)")

    def _open_cached(self, model_path: Path, config: QnnConfig) -> tuple[object, dict]:
        key = context_key(paths.sha256_file(model_path), config)
        ctx = _cache.artefact_path("qnn_context", model_path, key, "_ctx.onnx")
        self.context_path = ctx
        if ctx.is_file():
            try:
                session = _create(ctx, _session_options(config, disable_fallback=not config.allow_cpu_fallback))
                self.context_status = "hit"
                placed = {ep: Counter(ops) for ep, ops in
                          (_cache.read_sidecar(ctx).get("placement") or {}).items()}  # type: ignore[union-attr]
                return session, placed or node_placement(session)
            except Exception as exc:  # noqa: BLE001 - ORT errors subclass Exception; stale or damaged context: rebuild rather than fail at run time
                log.warning("qnn_context_rebuild", path=str(ctx), reason=str(exc).splitlines()[0][:200])
                _cache.discard(ctx)
        tmp = ctx.with_name(f".{ctx.name}.tmp.onnx")
        tmp.unlink(missing_ok=True)
        compiled, placed = self._compile(model_path, config, tmp)
        if not tmp.is_file():  # QNN wrote no context (it took no nodes): run the compiled session uncached
            self.context_status = "not written"
            return compiled, placed
        del compiled  # the cached context model is what runs, so the cache is exercised on every build
        tmp.replace(ctx)
        _cache.write_sidecar(ctx, key, source_model=str(model_path),
                             placement={ep: dict(c) for ep, c in placed.items()})
        self.context_status = "built"
        session = _create(ctx, _session_options(config, disable_fallback=not config.allow_cpu_fallback))
        return session, placed

    # -- Backend interface -----------------------------------------------------------------------------------

    @property
    def placement(self) -> Placement:
        """Nodes of the *original* model per execution provider (recorded at compile time when cached)."""
        return Placement({ep: sum(c.values()) for ep, c in self._placed.items()})

    @property
    def compute_precision(self) -> str:
        """What HTP actually computes in: ``qdq`` (integer, from the model's Q/DQ nodes) or ``fp16``/``fp32``."""
        on_htp = self._placed.get(EP_NAME, Counter())
        if on_htp.get("DequantizeLinear") or on_htp.get("QuantizeLinear"):
            return "qdq"
        return "fp16" if self.config.fp16_precision else "fp32"  # type: ignore[attr-defined]

    @property
    def simulator(self) -> bool:
        """On x86 the HTP library is Qualcomm's simulator, not a Hexagon NPU."""
        return platform.machine().lower() in ("x86_64", "amd64")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(self._output_names, feeds)
        except Exception as exc:  # ORT's run errors subclass Exception directly
            raise errors.IMSError(errors.BACKEND_RUNTIME, f"QNN HTP run failed: {str(exc).splitlines()[0][:300]}",
                                  "the daemon retries; persistent failures point at the HTP driver") from exc

    def describe(self) -> dict[str, object]:
        cfg: QnnConfig = self.config  # type: ignore[assignment]
        return {"backend": self.key, "model": self.model_path.name, "compute_precision": self.compute_precision,
                "device": "htp-simulator" if self.simulator else "htp", "soc_model": cfg.soc_model,
                "htp_arch": cfg.htp_arch, "qnn_sdk": self.sdk_version, "context_cache": self.context_status,
                "nodes_by_ep": self.placement.nodes_by_device}

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


register(BackendEntry("qnn_htp", QnnConfig, QnnBackend,
                      "Qualcomm QNN HTP (Hexagon NPU) via onnxruntime-qnn; HTP simulator on x86"))
