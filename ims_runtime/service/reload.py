"""Hot reload on SIGHUP: build the new pipeline beside the running one, switch only if it fully works.

The new spec is read, validated, its models loaded (sha256 checked) and warmed up on a background thread while
the old pipeline keeps processing frames, so the camera is never left behind and a broken spec never takes the
service down: on any error the old pipeline simply stays, and the error goes to the log and to telemetry.

Settings bound to resources that subscribers or the camera hold — the publish socket and the source — are not
changed by a reload (a subscriber stays connected); a reload that changes them applies everything else and lists
them under ``needs_restart``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ims_runtime import errors
from ims_runtime.paths import sha256_file
from ims_runtime.pipeline.factory import build_pipeline
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.spec import LoadedSpec, load_spec

#: spec parts a reload cannot change without closing the socket or the camera
RESTART_ONLY = ("source", "service", "publish.endpoint", "publish.send_hwm_msgs", "publish.curve")


def _part(spec: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        spec = getattr(spec, key)
    return spec


def restart_only_changes(old: LoadedSpec, new: LoadedSpec) -> list[str]:
    return [name for name in RESTART_ONLY if _part(old.spec, name) != _part(new.spec, name)]


@dataclass
class ReloadResult:
    ok: bool
    t_ns: int
    loaded: LoadedSpec | None = None
    pipeline: Pipeline | None = None
    error: dict[str, Any] | None = None
    needs_restart: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def as_telemetry(self, count: int) -> dict[str, Any]:
        return {"count": count, "last_ok": self.ok, "last_t_ns": self.t_ns, "last_error": self.error,
                "needs_restart": self.needs_restart, "last_duration_s": round(self.duration_s, 3)}


class Reloader:
    """``start(current)`` begins a reload on a thread; the frame loop calls ``poll()`` between frames."""

    def __init__(self, spec_path: str, overrides: list[str]) -> None:
        self.spec_path = spec_path
        self.overrides = overrides
        self.count = 0
        self.last: ReloadResult | None = None
        self._thread: threading.Thread | None = None
        self._result: ReloadResult | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, current: LoadedSpec) -> None:
        self._thread = threading.Thread(target=self._build, args=(current,), name="ims-reload", daemon=True)
        self._thread.start()

    def _build(self, current: LoadedSpec) -> None:
        started = time.monotonic()
        try:
            loaded = load_spec(self.spec_path, self.overrides)
            pipeline = build_pipeline(loaded, live_speed=True)
            try:
                pipeline.warmup()
            except BaseException:
                pipeline.close()
                raise
            result = ReloadResult(True, time.time_ns(), loaded, pipeline,
                                  needs_restart=restart_only_changes(current, loaded))
        except errors.IMSError as exc:
            result = ReloadResult(False, time.time_ns(), error=exc.to_dict())
        except Exception as exc:  # noqa: BLE001 — a reload must never take the running service down
            result = ReloadResult(False, time.time_ns(), error={"code": "INTERNAL", "kind": "internal",
                                                                 "message": repr(exc), "hint": None})
        result.duration_s = time.monotonic() - started
        self._result = result

    def poll(self) -> ReloadResult | None:
        """The finished reload's result, once (None while none finished)."""
        if self._thread is None or self._thread.is_alive():
            return None
        self._thread = None
        result, self._result = self._result, None
        self.count += 1
        self.last = result
        return result

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait for an unfinished reload and discard the pipeline it built."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            result = self.poll()
            if result is not None and result.pipeline is not None:
                result.pipeline.close()


def spec_sha256(path: str | Path) -> str | None:
    try:
        return sha256_file(Path(path))
    except OSError:
        return None
