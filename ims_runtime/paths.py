"""Where models are looked for and where built artefacts go.

* ``IMS_MODEL_PATH`` — a ``:``-separated search path of *input* folders (CI puts ``../shared/models`` on it).
* ``IMS_CACHE_DIR`` — where built artefacts (exported / quantised ONNX, QNN context binaries, TensorRT plans)
  are written; default ``$XDG_CACHE_HOME/ims-runtime`` (``~/.cache/ims-runtime``) for everyone.
* the project's own ``models/`` folder (weights the project trains itself), found next to the package in a
  source checkout or through ``IMS_PROJECT_MODELS``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``IMS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ims-runtime`` (``~/.cache/ims-runtime``): the same default for
    the scripts, every command and the tests, so what ``scripts/run-demo.sh`` builds ``ims-runtime models`` finds."""
    env = os.environ.get("IMS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "ims-runtime"


def project_models_dir() -> Path | None:
    env = os.environ.get("IMS_PROJECT_MODELS")
    if env:
        return Path(env).expanduser()
    candidate = _PACKAGE_ROOT.parent / "models"
    return candidate if candidate.is_dir() else None


def model_search_path() -> list[Path]:
    """Folders searched for a model name, in order: cache, the project's models/, then ``IMS_MODEL_PATH``."""
    folders = [cache_dir()]
    own = project_models_dir()
    if own is not None:
        folders.append(own)
    for part in os.environ.get("IMS_MODEL_PATH", "").split(":"):
        if part.strip():
            folders.append(Path(part.strip()).expanduser())
    return folders


def find_file(relative: str | Path) -> Path | None:
    """First existing ``folder / relative`` over :func:`model_search_path`, or None."""
    for folder in model_search_path():
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    return None


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
