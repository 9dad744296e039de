"""Stamp keys and stamp files: how ``ims-opt run`` knows a step's output is still what its inputs would make.

Every cached output (an exported model, a variant, an evaluation, cached calibration crops) has a stamp file
``<output>.stamp.json`` next to it holding a key: the sha256 of everything that determines the output (recipe
sections, input files' sha256, the data description). A step whose key is unchanged and whose output exists is
skipped. The key's text encoding must never change: every existing stamp in a cache would go stale and minutes
of quantisation search would be redone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ims_runtime.atomic import atomic_write_bytes

#: fields added with the face-state/fatigue recipes: left out of stamp keys while at their defaults, so the
#: detector's existing artefacts (the mixed-precision search takes many minutes) keep their stamps
ADDED_FIELDS = ("steps", "prune_ratio", "float_weights")


def stamp_key(*parts: Any) -> str:
    """sha256 (hex) of ``parts`` as sorted-key JSON; values JSON cannot encode (paths) count by ``str``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def spec_key(spec: BaseModel) -> dict[str, Any]:
    """A recipe section (base or variant spec) as a key part, without the :data:`ADDED_FIELDS` left at their
    defaults."""
    dump = spec.model_dump()
    for name in ADDED_FIELDS:
        if name in dump and dump[name] == type(spec).model_fields[name].default:
            del dump[name]
    return dump


def stamp_path(output: Path) -> Path:
    """``<output>.stamp.json``."""
    return output.with_name(output.name + ".stamp.json")


def is_fresh(output: Path, key: str) -> bool:
    """``output`` exists and its stamp holds ``key``."""
    stamp = stamp_path(output)
    return output.exists() and stamp.is_file() and read_stamp(output).get("key") == key


def read_stamp(output: Path) -> dict[str, Any]:
    """The stamp's JSON: ``key`` plus whatever :func:`write_stamp` was given (e.g. ``facts``)."""
    return json.loads(stamp_path(output).read_text())


def write_stamp(output: Path, key: str, **extra: Any) -> None:
    """Record ``key`` (and ``extra`` facts) as what ``output`` was built from; call after ``output`` is written."""
    atomic_write_bytes(stamp_path(output), json.dumps({"key": key, **extra}, indent=2, default=str).encode())
