"""Manifest records: one JSON object per built artefact (sha256, how it was made, from what, metrics).

The cache's ``manifest.json`` maps artefact file names to records; the project's own ``models/manifest.json``
does the same for committed weights. Writes go through a temporary file and a rename, so a crash never leaves a
half-written manifest.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ims_runtime.atomic import atomic_write_bytes
from ims_runtime.paths import sha256_file


def read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def record(manifest_path: Path, artefact: Path, **facts: Any) -> dict[str, Any]:
    """Add or replace the record of ``artefact`` (keyed by file name) and return it."""
    entry = {
        "file": artefact.name,
        "sha256": sha256_file(artefact),
        "size_bytes": artefact.stat().st_size,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **facts,
    }
    manifest = read_manifest(manifest_path)
    manifest[artefact.name] = entry
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return entry
