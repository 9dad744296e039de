"""A dataclass of equal-length numpy arrays (one row per sample) stored as one compressed npz: load, save, subset.

Used by the teacher-label caches of the face-state and eye-state toolchains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import numpy as np
from typing_extensions import Self

from ims_runtime.atomic import atomic_output

T = TypeVar("T", bound="NpzTable")


class NpzTable:
    """Mixin for ``@dataclass`` classes whose every field is an (N, ...) array with the same N."""

    @classmethod
    def load(cls, path: Path) -> Self:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        """Atomically: a crash never leaves a half-written cache file."""
        with atomic_output(path, "wb") as handle:
            np.savez_compressed(handle, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def subset(self, mask: np.ndarray) -> Self:
        return type(self)(**{f.name: getattr(self, f.name)[mask] for f in dataclasses.fields(self)})
