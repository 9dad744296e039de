"""One memory measurement in a fresh interpreter (run by :mod:`ims_runtime.bench.memory`; prints one JSON line).

Only the standard library is imported at the top, so that the first reading is the bare interpreter and each
later reading adds exactly one component. Modes:

* ``imports``: interpreter → numpy → OpenCV → ONNX Runtime → ZeroMQ → the service's own code (pydantic, structlog,
  the spec, the stages).
* ``model PATH SHAPES ARENA [PATTERN]``: all imports, then one ONNX Runtime CPU session (threads 1) opened, then run at each
  ``SHAPES`` (``1x3x384x640,1x3x160x160``) 30 times: what the session and its run-time buffers add.
* ``decoder PATH THREADS``: numpy + OpenCV, then a ``VideoCapture`` decoding 100 frames (none kept); ``THREADS`` 0 =
  FFmpeg's default (one per core).
* ``zmq ENDPOINT``: ZeroMQ context, a bound PUB socket and 100 messages of 1 KiB.
"""

from __future__ import annotations

import json
import sys


def rss_mb() -> float:
    """Resident set size of this process, MiB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _imports() -> list[tuple[str, float]]:
    steps = [("interpreter", rss_mb())]
    import numpy  # noqa: F401

    steps.append(("numpy", rss_mb()))
    import cv2  # noqa: F401

    steps.append(("OpenCV", rss_mb()))
    import onnxruntime  # noqa: F401

    steps.append(("ONNX Runtime", rss_mb()))
    import zmq  # noqa: F401

    steps.append(("ZeroMQ (module)", rss_mb()))
    import ims_runtime.service.daemon  # noqa: F401

    steps.append(("ims_runtime service code (pydantic, structlog, spec, stages)", rss_mb()))
    return steps


def _model(path: str, shapes: str, arena: str, pattern: str = "1") -> list[tuple[str, float]]:
    _imports()
    import numpy as np

    from ims_runtime.backends.ort_cpu import OrtCpuBackend, OrtCpuConfig

    steps = [("imports", rss_mb())]
    from pathlib import Path

    backend = OrtCpuBackend(Path(path), OrtCpuConfig(cpu_mem_arena=arena == "1", memory_pattern=pattern == "1"))
    steps.append(("session opened", rss_mb()))
    name = backend.inputs[0].name
    for shape in shapes.split(","):
        feed = {name: np.zeros(tuple(int(v) for v in shape.split("x")), np.float32)}
        for _ in range(30):
            backend.run(feed)
    steps.append(("after runs", rss_mb()))
    return steps


def _decoder(path: str, threads: str) -> list[tuple[str, float]]:
    import cv2
    import numpy  # noqa: F401

    steps = [("numpy + OpenCV", rss_mb())]
    params = [cv2.CAP_PROP_N_THREADS, int(threads)] if int(threads) > 0 else []
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    steps.append(("opened", rss_mb()))
    for _ in range(100):
        cap.read()
    steps.append(("100 frames decoded", rss_mb()))
    cap.release()
    return steps


def _zmq(endpoint: str) -> list[tuple[str, float]]:
    import zmq

    steps = [("module", rss_mb())]
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.bind(endpoint)
    steps.append(("context + bound PUB socket", rss_mb()))
    for _ in range(100):
        socket.send_multipart([b"driver_state", b"x" * 1024])
    steps.append(("100 messages", rss_mb()))
    socket.close(0)
    context.term()
    return steps


def main(argv: list[str]) -> None:
    mode, *rest = argv
    steps = {"imports": _imports, "model": _model, "decoder": _decoder, "zmq": _zmq}[mode](*rest)
    print(json.dumps(steps))


if __name__ == "__main__":
    main(sys.argv[1:])
