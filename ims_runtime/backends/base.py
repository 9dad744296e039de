"""The backend interface: one model file in, raw output tensors out.

A stage owns its pre- and postprocessing; a backend only runs the network. Every backend file holds its own
config class (a pydantic model with a literal ``type`` key) and its implementation, and registers both in
:mod:`ims_runtime.backends.registry`. Vendor SDKs are imported inside ``open`` so that a missing SDK becomes a
clear :class:`~ims_runtime.errors.IMSError` instead of an import failure of the whole package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict


class BackendConfigBase(BaseModel):
    """Fields every backend config shares. Subclasses add ``type: Literal["<key>"]`` and their options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints, or strings/None for symbolic dims) and element type of a model input or output."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str


@dataclass
class Placement:
    """Where the nodes of a model run: ``{"QNNExecutionProvider": 212, "CPUExecutionProvider": 0}``."""

    nodes_by_device: dict[str, int] = field(default_factory=dict)


class Backend(ABC):
    """A loaded model ready to run. Not thread-safe: one backend per pipeline."""

    #: registry key, e.g. ``"ort_cpu"``
    key: str = ""

    def __init__(self, model_path: Path, config: BackendConfigBase) -> None:
        self.model_path = model_path
        self.config = config
        # filled by the subclass once the model is loaded
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []
        self._metadata: dict[str, str] = {}

    @property
    def inputs(self) -> list[TensorInfo]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        """Model facts stored in the artefact (ONNX ``metadata_props``); empty when the format has none."""
        return self._metadata

    @property
    def placement(self) -> Placement:
        return Placement()

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run once. ``feeds`` maps input names to arrays; returns outputs in :attr:`outputs` order.

        The returned arrays may be reused by the backend's next run (``ort_cpu`` binds a stage's reused input
        buffer to preallocated outputs): decode them at once, copy what is kept across runs."""

    def warmup(self, feeds: dict[str, np.ndarray], runs: int = 3) -> None:
        """Run a few times so that lazy allocations and kernel selection happen before the service is ready."""
        for _ in range(runs):
            self.run(feeds)

    def describe(self) -> dict[str, object]:
        """What telemetry reports about this backend."""
        return {"backend": self.key, "model": self.model_path.name}

    def close(self) -> None:
        """Release native resources. Safe to call twice."""
