"""Backend registry: maps a spec's ``type`` key to its config class and its loader.

The spec's backend field is a discriminated union built from the registered config classes, so adding a backend
is one file plus one import line in :mod:`ims_runtime.backends`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Union

import structlog
from pydantic import Field

from ims_runtime import errors
from ims_runtime.backends.base import Backend, BackendConfigBase

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BackendEntry:
    key: str
    config_cls: type[BackendConfigBase]
    open: Callable[[Path, BackendConfigBase], Backend]
    #: one line for ``--help`` and docs
    summary: str


_REGISTRY: dict[str, BackendEntry] = {}


def register(entry: BackendEntry) -> None:
    if entry.key in _REGISTRY:
        raise ValueError(f"backend {entry.key!r} registered twice")
    _REGISTRY[entry.key] = entry


def registered() -> dict[str, BackendEntry]:
    return dict(_REGISTRY)


def config_union() -> object:
    """The pydantic type of one backend entry in a spec: a union discriminated by ``type``."""
    classes = tuple(e.config_cls for e in _REGISTRY.values())
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007 - runtime union


@dataclass
class OpenedBackend:
    backend: Backend
    #: index into the stage's fallback list of the backend that opened
    chain_index: int
    #: why earlier entries of the list were skipped (empty when the first one opened)
    skipped: list[dict[str, object]]


def open_chain(model_path: Path, chain: list[BackendConfigBase], stage: str) -> OpenedBackend:
    """Open the first backend of ``chain`` that works for ``model_path``.

    A backend that is unavailable or cannot place the model is skipped with a warning naming the reason; the last
    failure is raised when none opens. Model errors (missing, corrupt) are raised at once: another backend would
    not fix them.
    """
    skipped: list[dict[str, object]] = []
    last: errors.IMSError | None = None
    for index, config in enumerate(chain):
        entry = _REGISTRY[config.type]  # type: ignore[attr-defined]
        try:
            backend = entry.open(model_path, config)
        except errors.IMSError as exc:
            if exc.code.kind is not errors.ErrorKind.BACKEND:
                raise
            last = exc
            skipped.append({"backend": entry.key, **exc.to_dict()})
            if index + 1 < len(chain):
                log.warning("backend_fallback", stage=stage, skipped=entry.key, reason=exc.message,
                            next=chain[index + 1].type)  # type: ignore[attr-defined]
            continue
        return OpenedBackend(backend=backend, chain_index=index, skipped=skipped)
    assert last is not None
    raise last
