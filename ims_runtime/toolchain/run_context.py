"""What one ``ims-opt run`` offers the parts it calls: the model family's adapter, the float bases and the variant
builders.

:class:`~ims_runtime.toolchain.runner.RecipeRun` implements :class:`RunContext`; the adapters
(:mod:`.adapters`, :mod:`.face_state.optimise`, :mod:`.fatigue.optimise`), :mod:`.bases` and :mod:`.variants`
only know this protocol. That keeps the imports one-way — the runner imports them, they never import the runner —
and says in one place which parts of a run they may use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ims_runtime.toolchain.calibration import FrameSample
from ims_runtime.toolchain.recipe import Recipe, VariantSpec


class RunContext(Protocol):
    """One recipe run: its recipe, output folder, data, and the steps other parts may ask for (each is skipped when
    its stamp is fresh, see :mod:`.stamps`)."""

    recipe: Recipe
    #: the run's output folder (``$IMS_CACHE_DIR/opt/<recipe>/``)
    out: Path
    #: calibration frames (video families only: detector, face-state)
    calibration: FrameSample
    #: held-apart frames for agreement with FP32 (video families only), never calibrated on
    agreement: FrameSample
    #: stamp-key part that identifies the calibration data (the sample and the clips' sha256, or the sequences)
    data_key: str
    #: per-variant results so far (``fp32`` first: the reference every other variant is scored against)
    results: dict[str, dict[str, Any]]

    @property
    def calibration_tensors(self) -> np.ndarray:
        """The family's calibration inputs, (N, ...) float32 as the network takes them (computed once)."""
        ...

    def base_weights(self, base_name: str) -> Path:
        """The float weights of ``base_name`` (found, or made and stamped)."""
        ...

    def float_model(self, base_name: str) -> Path:
        """``base_name`` as a float ONNX at the recipe's input size."""
        ...

    def preprocessed(self, base_name: str) -> Path:
        """:meth:`float_model` after ONNX Runtime's quantisation pre-processing."""
        ...

    def within_limit(self, scores: dict[str, Any], reference: dict[str, Any]) -> bool:
        """The family's accuracy limit: ``scores`` against the FP32 ``reference``."""
        ...

    def build_qat(self, variant: VariantSpec, out: Path, meta: dict[str, object]) -> dict[str, Any]:
        """Write the QAT variant ``variant`` to ``out`` the family's way; return facts for the report."""
        ...
