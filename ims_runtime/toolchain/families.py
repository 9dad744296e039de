"""Which adapter serves which model family of a recipe (``model:`` in ``deploy/recipes/*.yaml``).

One table instead of a chain of tests: adding a family is one adapter class (:class:`~.adapters.ModelAdapter`)
and one line here; the recipe schema's ``model`` choices must match the table's keys (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable

from ims_runtime import errors
from ims_runtime.toolchain.adapters import DetectorAdapter, ModelAdapter
from ims_runtime.toolchain.face_state.optimise import FaceStateAdapter
from ims_runtime.toolchain.fatigue.optimise import FatigueAdapter

#: recipe ``model`` → adapter factory (an adapter holds per-run caches, so each run gets a new one)
ADAPTERS: dict[str, Callable[[], ModelAdapter]] = {
    "retinaface": DetectorAdapter,
    "face_state": FaceStateAdapter,
    "fatigue": FatigueAdapter,
}


def adapter_for(model: str) -> ModelAdapter:
    """A new adapter for the recipe family ``model``; ``SPEC_INVALID`` naming the known ones otherwise."""
    factory = ADAPTERS.get(model)
    if factory is None:
        raise errors.IMSError(errors.SPEC_INVALID, f"no optimisation adapter for model {model!r}",
                              f"known: {', '.join(sorted(ADAPTERS))} (ims_runtime/toolchain/families.py)")
    return factory()
