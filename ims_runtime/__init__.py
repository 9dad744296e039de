"""ims-runtime: on-vehicle driver-monitoring inference service.

The vehicle path (everything outside :mod:`ims_runtime.toolchain`) depends only on numpy, ONNX Runtime, OpenCV,
pyzmq, pydantic, structlog and psutil. It never imports torch or the toolchain.
"""

__version__ = "0.1.0"
