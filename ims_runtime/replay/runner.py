"""Run recorded footage through the same :class:`~ims_runtime.pipeline.pipeline.Pipeline` the service uses.

Output: one ``driver_state`` JSON per line, written to a temporary file and renamed at the end, so an
interrupted or failed replay never leaves a half-written file behind. Two runs on one input give identical lines
apart from :data:`ims_runtime.messages.NONDETERMINISTIC_FIELDS`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ims_runtime import messages
from ims_runtime.atomic import atomic_output
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.pipeline.sources import FrameSource
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.telemetry.latency import LatencyWindow


@dataclass
class ReplaySummary:
    frames: int = 0
    frames_with_face: int = 0
    wall_s: float = 0.0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    out_path: str | None = None
    #: per model stage, what it really ran on (the stage's ``describe()``: backend, precision, device, node
    #: placement, compiled-context cache status, fallbacks)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "frames_with_face": self.frames_with_face, "wall_s": self.wall_s,
                "latency_ms": self.latency_ms, "out": self.out_path, "stages": self.stages}

    def backend_lines(self) -> list[str]:
        """One line per model stage: ``face_state  qnn_htp  int8  htp-simulator  nodes QNNExecutionProvider=141
        context hit`` (fields the backend does not report are left out)."""
        lines = []
        for stage, info in self.stages.items():
            parts = [f"{stage:<16}", str(info.get("backend")), str(info.get("precision"))]
            if info.get("device"):
                parts.append(str(info["device"]))
            if info.get("nodes_by_ep"):
                parts.append("nodes " + " ".join(f"{ep}={n}" for ep, n in info["nodes_by_ep"].items()))
            if info.get("context_cache"):
                parts.append(f"context {info['context_cache']}")
            if info.get("fallbacks"):
                parts.append("after fallback from " + ", ".join(str(f.get("backend")) for f in info["fallbacks"]))
            lines.append("  ".join(parts))
        return lines

    def table(self) -> str:
        lines = [f"frames: {self.frames}   with a face: {self.frames_with_face}   wall: {self.wall_s:.2f} s"
                 + (f"   → {self.out_path}" if self.out_path else ""),
                 f"{'stage':<16}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"]
        for stage, row in self.latency_ms.items():
            lines.append(f"{stage:<16}{row['p50']:>10.2f}{row['p95']:>10.2f}{row['p99']:>10.2f}")
        if self.stages:
            lines += ["backends:", *self.backend_lines()]
        return "\n".join(lines)


def run_replay(pipeline: Pipeline, source: FrameSource, out_path: Path | None = None, max_frames: int | None = None,
               publisher: Publisher | None = None, realtime: bool = False, progress: bool | None = None,
               on_message: Callable[[dict[str, Any]], None] | None = None) -> ReplaySummary:
    """Process every frame of ``source`` (or the first ``max_frames``) and return the summary."""
    if progress is None:
        progress = sys.stderr.isatty()
    total = getattr(source, "frame_count", None)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    window = LatencyWindow(size=10**9)
    summary = ReplaySummary(out_path=str(out_path) if out_path else None)
    bar = tqdm(total=total, unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    started = time.monotonic()
    first_capture_ns: int | None = None
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(atomic_output(out_path)) if out_path is not None else None
        stack.callback(bar.close)
        for frame in source.frames():
            if max_frames is not None and summary.frames >= max_frames:
                break
            if realtime:
                # pace by capture timestamps, as a camera would deliver the frames
                first_capture_ns = frame.t_capture_ns if first_capture_ns is None else first_capture_ns
                delay = (frame.t_capture_ns - first_capture_ns) / 1e9 - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)
            state = pipeline.process(frame)
            message = messages.encode_driver_state(state)
            summary.frames += 1
            summary.frames_with_face += state.face.present
            window.add(state.latency_ms)
            if handle is not None:
                handle.write(messages.to_json(message) + "\n")
            if publisher is not None:
                publisher.publish("driver_state", message)
            if on_message is not None:
                on_message(message)
            bar.update(1)
    summary.wall_s = time.monotonic() - started
    summary.latency_ms = window.percentiles()
    summary.stages = pipeline.describe()
    return summary
