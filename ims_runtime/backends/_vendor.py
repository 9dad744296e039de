"""Guarded import of a vendor SDK: a backend selected without its SDK is a clear taxonomy error, not a crash."""

from __future__ import annotations

import importlib
from types import ModuleType

from ims_runtime import errors


def import_sdk(module: str, backend: str, what: str, hint: str) -> ModuleType:
    """``importlib.import_module(module)`` or ``BACKEND_UNAVAILABLE`` naming the backend, the package and the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise errors.IMSError(errors.BACKEND_UNAVAILABLE,
                              f"backend {backend} selected but {what} is not installed ({exc})", hint) from exc
