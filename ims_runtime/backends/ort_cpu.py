"""ONNX Runtime on the CPU: the embedded default backend.

Steady state without per-call allocations: the stages feed the same preallocated input array every frame (the
letterbox / crop tensors), so :meth:`OrtCpuBackend.run` binds that array once (ONNX Runtime reads it in place) and
binds preallocated output arrays, then calls ``run_with_iobinding``. Measured (``ims-runtime bench --overhead``):
ONNX Runtime's Python ``run()`` costs ~30 µs more per call than a pre-bound run (input OrtValue, output allocation
and numpy wrapping), 2–7 % of the small models' time. A binding is looked up by the input arrays' address, shape
and dtype — the same buffer with new contents reuses it — and a few are kept (full frame, tracking crop and the
background re-detection's own buffer).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
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
    io_binding: bool = Field(
        True, description="bind the stage's reused input buffer and preallocated outputs once per buffer "
        "(no per-frame allocations; outputs are then reused by the next run with that buffer)")
    memory_pattern: bool = Field(
        True, description="ONNX Runtime's memory pattern (enable_mem_pattern): plans one block per input shape "
        "after the first runs; off allocates each intermediate from the arena (docs/performance.md: less memory)")
    cpu_mem_arena: bool = Field(
        True, description="ONNX Runtime's CPU memory arena (enable_cpu_mem_arena): off returns intermediate "
        "buffers to the allocator after every run (less resident memory, some allocation time per run)")


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


@dataclass
class _Bound:
    """One pre-bound call: the binding and the output arrays it writes into."""

    binding: object
    outputs: list[np.ndarray]
    #: the OrtValues wrapping the bound arrays (kept alive with the binding)
    values: list[object]


#: bindings kept per backend (full frame, tracking crop, background re-detection, warm-up): the oldest is dropped
_MAX_BINDINGS = 6


def _feeds_key(feeds: dict[str, np.ndarray]) -> tuple | None:
    """Address, shape and dtype of each feed, or None when a feed cannot be bound in place (not C-contiguous)."""
    key = []
    for name, array in feeds.items():
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            return None
        key.append((name, array.__array_interface__["data"][0], array.shape, array.dtype.str))
    return tuple(key)


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
        options.enable_cpu_mem_arena = config.cpu_mem_arena
        options.enable_mem_pattern = config.memory_pattern
        self._session = load_session(model_path, options)
        self._inputs, self._outputs = describe_io(self._session)
        self._output_names = [o.name for o in self._outputs]
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self._bound: OrderedDict[tuple, _Bound] = OrderedDict()
        self._seen: OrderedDict[tuple, bool] = OrderedDict()  # buffers run once, not bound yet
        self._bound_lock = threading.Lock()  # the background re-detection thread shares the session
        #: runs that went through a pre-bound call / through plain ``run()`` (tests and bench read these)
        self.bound_runs = self.plain_runs = 0

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run once. With ``io_binding`` the returned arrays belong to the binding of these input buffers: they
        are overwritten by the next run on the same buffers, so callers copy what they keep (the stages decode
        them at once)."""
        key = _feeds_key(feeds) if self.config.io_binding else None  # type: ignore[attr-defined]
        if key is None:
            self.plain_runs += 1
            return self._session.run(self._output_names, feeds)
        with self._bound_lock:
            bound = self._bound.get(key)
            if bound is not None:
                self._bound.move_to_end(key)
        if bound is None:
            # a plain run (it also tells the output shapes of dynamic-size models); buffers seen a second time
            # are reused buffers and get bound, a caller that allocates a new input every call never does
            outputs = self._session.run(self._output_names, feeds)
            self.plain_runs += 1
            with self._bound_lock:
                seen_before = self._seen.pop(key, False)
                if not seen_before:
                    self._seen[key] = True
                    while len(self._seen) > _MAX_BINDINGS:
                        self._seen.popitem(last=False)
            if seen_before:
                self._bind(key, feeds, outputs)
            return outputs
        self._session.run_with_iobinding(bound.binding)
        self.bound_runs += 1
        return bound.outputs

    def warmup(self, feeds: dict[str, np.ndarray], runs: int = 3) -> None:
        """Plain runs: a warm-up buffer is thrown away afterwards, so binding it would only keep it (and a set of
        outputs) alive for nothing."""
        for _ in range(runs):
            self._session.run(self._output_names, feeds)

    def _bind(self, key: tuple, feeds: dict[str, np.ndarray], outputs: list[np.ndarray]) -> None:
        from onnxruntime import OrtValue

        binding = self._session.io_binding()
        # OrtValue.ortvalue_from_numpy wraps the array's memory (no copy) and keeps the array alive, so the
        # address in the key cannot be reused by another array while the binding exists
        values = [OrtValue.ortvalue_from_numpy(array) for array in feeds.values()]
        for name, value in zip(feeds, values):
            binding.bind_ortvalue_input(name, value)
        arrays = [np.empty_like(out) for out in outputs]
        out_values = [OrtValue.ortvalue_from_numpy(array) for array in arrays]
        for name, value in zip(self._output_names, out_values):
            binding.bind_ortvalue_output(name, value)
        with self._bound_lock:
            self._bound[key] = _Bound(binding, arrays, values + out_values)
            while len(self._bound) > _MAX_BINDINGS:
                self._bound.popitem(last=False)

    def describe(self) -> dict[str, object]:
        cfg: OrtCpuConfig = self.config  # type: ignore[assignment]
        return {"backend": self.key, "model": self.model_path.name, "threads": cfg.threads}

    def close(self) -> None:
        self._bound.clear()
        self._seen.clear()
        self._session = None  # type: ignore[assignment]


register(BackendEntry("ort_cpu", OrtCpuConfig, OrtCpuBackend, "ONNX Runtime, CPU execution provider"))
