"""Cache keys and files for compiled accelerator artefacts (QNN context binaries, TensorRT engines).

A compiled artefact is only valid for the exact model bytes, the vendor SDK version that compiled it and the
target silicon (QNN: SoC model and HTP architecture; TensorRT: GPU and compute capability), plus the build options
that change the compiled code (FP16, INT8, optimisation level). The key hashes all of these, so a new SDK, a new
SoC or a changed option selects another file and the artefact is rebuilt instead of failing at run time.
Next to each artefact a small ``.json`` sidecar records the facts the key was made from, for humans and for
``ims-runtime models``-style listings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ims_runtime import paths
from ims_runtime.atomic import atomic_write_bytes

#: hex digits of the key used in file names (64 bits: collisions are not a practical concern for a cache)
KEY_CHARS = 16


@dataclass(frozen=True)
class CacheKey:
    """What a compiled artefact depends on. ``target`` is e.g. ``{"soc_model": "52", "htp_arch": "73"}``."""

    model_sha256: str
    sdk: str
    sdk_version: str
    target: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, model_sha256: str, sdk: str, sdk_version: str, target: dict[str, object],
             options: dict[str, object] | None = None) -> CacheKey:
        def norm(d: dict[str, object] | None) -> tuple[tuple[str, str], ...]:
            return tuple(sorted((str(k), str(v)) for k, v in (d or {}).items()))

        return cls(model_sha256.lower(), sdk, sdk_version, norm(target), norm(options))

    @property
    def digest(self) -> str:
        text = json.dumps(self.facts(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:KEY_CHARS]

    def facts(self) -> dict[str, object]:
        return {"model_sha256": self.model_sha256, "sdk": self.sdk, "sdk_version": self.sdk_version,
                "target": dict(self.target), "options": dict(self.options)}


def artefact_path(kind: str, model_path: Path, key: CacheKey, suffix: str, root: Path | None = None) -> Path:
    """``<cache>/<kind>/<model stem>.<key digest><suffix>``; the folder is created."""
    folder = (root or paths.cache_dir()) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{model_path.stem}.{key.digest}{suffix}"


def sidecar_path(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".json")


def write_sidecar(artefact: Path, key: CacheKey, **facts: object) -> None:
    """Record the key's facts (and e.g. node placement at compile time) next to the artefact."""
    text = json.dumps({**key.facts(), **facts}, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(sidecar_path(artefact), text.encode())


def read_sidecar(artefact: Path) -> dict[str, object]:
    try:
        return json.loads(sidecar_path(artefact).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def discard(artefact: Path) -> None:
    """Remove an artefact that failed to load, and its sidecar, so that it is rebuilt."""
    artefact.unlink(missing_ok=True)
    sidecar_path(artefact).unlink(missing_ok=True)
