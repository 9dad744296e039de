"""ONNX Runtime on the CPU: the embedded default backend."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ims_runtime import errors
from ims_runtime.backends.base import Backend, BackendConfigBase, TensorInfo
from ims_runtime.backends.registry import BackendEntry, register

_GRAPH_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OrtCpuConfig(BackendConfigBase):
    """ONNX Runtime CPU execution provider."""

    type: Literal["ort_cpu"] = "ort_cpu"
    threads: int = Field(1, ge=1, le=64, description="intra-op threads (count); 1 keeps latency predictable")
    graph_optimization: Literal["disabled", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime graph optimisation level"
    )
    allow_spinning: bool = Field(
        False,
        description="let idle worker threads spin; lowers latency a little with threads > 1, costs CPU and power",
    )


def load_session(model_path: Path, options: object, providers: list | None = None) -> object:
    """Create an ``InferenceSession``, turning ONNX Runtime's load failures into taxonomy errors."""
    import onnxruntime as ort

    if not model_path.is_file():
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"model file {model_path} does not exist",
                              "run `ims-runtime models` to see where models are looked for")
    try:
        return ort.InferenceSession(str(model_path), sess_options=options,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... classes
        text = str(exc).splitlines()[0][:300]
        raise errors.IMSError(errors.MODEL_CORRUPT, f"ONNX Runtime cannot load {model_path}: {text}",
                              "rebuild the artefact (`ims-runtime models build`) or check the file") from exc


def describe_io(session: object) -> tuple[list[TensorInfo], list[TensorInfo]]:
    def info(args: list) -> list[TensorInfo]:
        return [TensorInfo(a.name, tuple(a.shape), a.type) for a in args]

    return info(session.get_inputs()), info(session.get_outputs())  # type: ignore[attr-defined]


class OrtCpuBackend(Backend):
    key = "ort_cpu"

    def __init__(self, model_path: Path, config: OrtCpuConfig) -> None:
        super().__init__(model_path, config)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                   _GRAPH_LEVELS[config.graph_optimization])
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.allow_spinning else "0")
        options.log_severity_level = 3
        self._session = load_session(model_path, options)
        self._inputs, self._outputs = describe_io(self._session)
        self._output_names = [o.name for o in self._outputs]
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self._output_names, feeds)

    def describe(self) -> dict[str, object]:
        cfg: OrtCpuConfig = self.config  # type: ignore[assignment]
        return {"backend": self.key, "model": self.model_path.name, "threads": cfg.threads}

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


register(BackendEntry("ort_cpu", OrtCpuConfig, OrtCpuBackend, "ONNX Runtime, CPU execution provider"))
