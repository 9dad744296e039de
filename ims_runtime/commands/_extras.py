"""Optional extras are imported by the command that needs them, never at start-up: the vehicle runtime path
(``serve``, ``replay`` without ``--report``) must not load plotting, video or cluster libraries."""

from __future__ import annotations

import importlib
from types import ModuleType

from ims_runtime import errors


def import_extra(module: str, extra: str, feature: str) -> ModuleType:
    """``importlib.import_module(module)``, or a coded error naming the extra to install when a dependency is
    missing (``feature``: what the user asked for, e.g. ``"ims-runtime report"``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise errors.IMSError(errors.EXTRA_NOT_INSTALLED, f"{feature} needs the optional extra '{extra}' "
                              f"({missing} is not installed)", f"pip install -e '.[{extra}]'") from exc
