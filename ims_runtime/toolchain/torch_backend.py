"""A backend that runs a PyTorch module eagerly in FP32 — the ``pytorch_eager_fp32`` bench baseline.

Toolchain only (needs torch); never registered for specs. It lets the bench swap a stage's ONNX Runtime backend
for the same network in PyTorch while keeping the stage's own pre- and postprocessing, so the comparison
isolates the inference engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ims_runtime.backends.base import Backend, BackendConfigBase


class TorchEagerBackend(Backend):
    key = "pytorch_eager_fp32"

    def __init__(self, module: torch.nn.Module, like: Backend, threads: int = 1) -> None:
        super().__init__(Path(f"<torch:{type(module).__name__}>"), BackendConfigBase())
        torch.set_num_threads(threads)
        self.module = module.eval()
        self._inputs, self._outputs = like.inputs, like.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = self.module(*[torch.from_numpy(feeds[i.name]) for i in self._inputs])
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [t.numpy() for t in out]

    def describe(self) -> dict[str, object]:
        return {"backend": self.key, "model": type(self.module).__name__, "threads": torch.get_num_threads()}


def swap_in_torch(pipeline, threads: int = 1) -> list[str]:
    """Replace each stage backend of ``pipeline`` whose network the toolchain can build in PyTorch.

    Returns the names of the stages swapped. The detector's network is RetinaFace from the official weights.
    """
    from ims_runtime import paths
    from ims_runtime.toolchain.models.retinaface import load_official

    swapped = []
    weights = paths.find_file("retinaface/mobilenet0.25_Final.pth")
    if weights is not None:
        det = pipeline.detector
        det.backend = TorchEagerBackend(load_official(str(weights)), det.backend, threads)
        swapped.append("face_detector")
    return swapped
