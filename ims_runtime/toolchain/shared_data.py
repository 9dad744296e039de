"""Where the project's shared, read-only data lives (footage, WIDER subset, teachers' inputs): ``IMS_SHARED_DIR``.

The data is never committed (licences, size); a checkout finds it through ``IMS_SHARED_DIR``, else in ``shared/``
next to the checkout (``<repo>/../shared``), the layout CI and the development machines use.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared data folder: ``IMS_SHARED_DIR`` (``~`` expanded), else ``<repo>/../shared``."""
    return Path(os.environ.get("IMS_SHARED_DIR") or _REPO.parent / "shared").expanduser()


def videos_dir() -> Path:
    """The shared footage: ``<shared>/data/videos``."""
    return shared_dir() / "data" / "videos"
