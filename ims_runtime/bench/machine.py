"""A description of the machine a benchmark ran on, printed and saved with every table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: CPU flags that decide which kernels ONNX Runtime and XNNPACK can use
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
                     "asimd", "asimddp", "i8mm")


def describe() -> dict[str, object]:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover - onnxruntime is a runtime dependency
        ort_version = None
    return {
        "cpu": model,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "flags": sorted(f for f in INTERESTING_FLAGS if f in flags),
        "python": platform.python_version(),
        "onnxruntime": ort_version,
        "kernel": platform.release(),
    }
