"""``ims-opt compile``: compile a model for an accelerator ahead of time, exactly as the runtime would on first load.

There is one compiler per target, and it is the runtime's backend: :class:`~ims_runtime.backends.qnn.QnnBackend`
writes the QNN HTP EP-context model, :class:`~ims_runtime.backends.tensorrt.TensorRtBackend` the TensorRT plan,
each into the cache under the key of :mod:`ims_runtime.backends._cache` (model sha256, SDK version, target chip
and the options that change the compiled code). Compiling here therefore fills the very cache entry the vehicle's
first load of the same model with the same backend options looks up, so that load is a cache hit instead of a
compile (QNN: ``context_cache: hit`` in the backend's description).

QNN needs ``onnxruntime-qnn`` (its HTP simulator compiles on x86); TensorRT cannot be installed on the
development machines, so that path has only been run up to its ``BACKEND_UNAVAILABLE`` guard here.
"""

from __future__ import annotations

from pathlib import Path

from ims_runtime import errors
from ims_runtime.backends.qnn import QnnBackend, QnnConfig
from ims_runtime.backends.tensorrt import TensorRtBackend, TensorRtConfig


def compile_qnn_context(model: Path, config: QnnConfig) -> tuple[Path, str]:
    """The EP-context model of ``model`` for ``config`` (compiled now, or found in the cache).

    Returns ``(path, status)``, status ``built`` or ``hit``. Raises the backend's coded errors (e.g.
    ``BACKEND_PLACEMENT`` naming the operators HTP rejects), or ``MODEL_BUILD_FAILED`` when QNN wrote no context."""
    backend = QnnBackend(model, config.model_copy(update={"context_cache": True}))
    try:
        path, status = backend.context_path, backend.context_status
    finally:
        backend.close()
    if path is None or not path.is_file():
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"QNN compiled {model.name} but wrote no context model "
                              f"({status})", "check the model has static shapes and that HTP takes its nodes")
    return path, status


def compile_tensorrt_plan(model: Path, config: TensorRtConfig) -> tuple[Path, str]:
    """The TensorRT plan of ``model`` for ``config`` on this machine's GPU (built now, or found in the cache).

    Returns ``(path, status)``, status ``built`` or ``hit``. Raises ``BACKEND_UNAVAILABLE`` without TensorRT."""
    backend = TensorRtBackend(model, config)
    try:
        return backend.plan_path, backend.engine_status
    finally:
        backend.close()
