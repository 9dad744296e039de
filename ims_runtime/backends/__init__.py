"""Backends that run a stage's model. Importing this package registers every backend; vendor SDKs are only
imported when a backend is opened."""

from ims_runtime.backends import (
           ort_cpu,  # noqa: F401  (registers "ort_cpu")
           qnn,  # noqa: F401  (registers "qnn_htp"; onnxruntime-qnn imported on open)
           tensorrt,  # noqa: F401  (registers "tensorrt"; TensorRT imported on open)
)
from ims_runtime.backends.base import Backend, BackendConfigBase, TensorInfo
from ims_runtime.backends.registry import OpenedBackend, config_union, open_chain, registered

__all__ = [
           "Backend",
           "BackendConfigBase",
           "OpenedBackend",
           "TensorInfo",
           "config_union",
           "open_chain",
           "registered",
]
