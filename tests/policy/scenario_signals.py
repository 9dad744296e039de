"""Builders for scenario signal files in the policy-replay line format, and a runner through that code path."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ims_runtime.commands.policy_replay import default_spec, replay
from ims_runtime.spec.schema import Spec

NS = 1_000_000_000
ON_ROAD = {"face_present": True, "on_road": True, "left_open": 0.9, "right_open": 0.9}
OFF_ROAD = {"face_present": True, "on_road": False, "left_open": 0.9, "right_open": 0.9}
EYES_CLOSED = {"face_present": True, "on_road": True, "left_open": 0.05, "right_open": 0.05}
NO_FACE = {"face_present": False}


class Script:
    """Append segments of constant signals at a fixed frame rate; timestamps continue across segments."""

    def __init__(self, fps: float = 30.0, start_s: float = 0.0) -> None:
        self.fps = fps
        self.t_s = start_s
        self.lines: list[dict[str, Any]] = []
        #: name → (start_ns, end_ns) of labelled segments, for assertions
        self.marks: dict[str, tuple[int, int]] = {}

    def segment(self, duration_s: float, fields: dict[str, Any], mark: str | None = None) -> Script:
        start_ns = round(self.t_s * NS)
        n = round(duration_s * self.fps)
        for i in range(n):
            self.lines.append({"t_ns": round((self.t_s + i / self.fps) * NS), **fields})
        self.t_s += n / self.fps
        if mark:
            self.marks[mark] = (start_ns, round(self.t_s * NS))
        return self

    def blinking(self, duration_s: float, period_s: float, closed_s: float, extra: dict[str, Any] | None = None,
                 mark: str | None = None) -> Script:
        """Eyes on the road, closing for ``closed_s`` at the start of every ``period_s``."""
        start_ns = round(self.t_s * NS)
        end_s = self.t_s + duration_s
        while self.t_s < end_s - 1e-9:
            self.segment(closed_s, {**EYES_CLOSED, **(extra or {})})
            self.segment(period_s - closed_s, {**ON_ROAD, **(extra or {})})
        if mark:
            self.marks[mark] = (start_ns, round(self.t_s * NS))
        return self

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(line) + "\n" for line in self.lines), encoding="utf-8")
        return path


def run(script: Script, tmp_path: Path, speed_kmh: float | None = None, spec: Spec | None = None,
        speed_file: Path | None = None) -> list[dict[str, Any]]:
    """Write the script as a signals file and run it through policy-replay's code path."""
    signals = script.write(tmp_path / "signals.jsonl")
    out = io.StringIO()
    replay(signals, out, spec or default_spec(), None, speed_kmh, speed_file)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def alert_types(result: dict[str, Any]) -> set[str]:
    return {a["type"] for a in result["alerts"]}


def first_with(results: list[dict[str, Any]], alert: str, after_ns: int = -1) -> dict[str, Any] | None:
    """The first result (at or after ``after_ns``) in which ``alert`` is active."""
    return next((r for r in results if r["t_ns"] >= after_ns and alert in alert_types(r)), None)


def ever(results: list[dict[str, Any]], alert: str) -> bool:
    return first_with(results, alert) is not None


def at(results: list[dict[str, Any]], t_ns: int) -> dict[str, Any]:
    """The last result at or before ``t_ns``."""
    return [r for r in results if r["t_ns"] <= t_ns][-1]
