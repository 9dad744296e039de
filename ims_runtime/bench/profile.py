"""``ims-runtime bench --profile``: where a frame's time goes, and why the slowest frames were slow.

Two passes over the same decoded frames with the deployed spec:

1. **Timing pass** (no profiler attached): per frame the wall time (``perf_counter_ns``) and the main thread's CPU
   time (``thread_time_ns``), each stage's latency, what the detector did (full-frame or tracked crop, a
   background re-detection merged, and whether the frame had to wait for it), and garbage collections that ran
   inside the frame (``gc.callbacks``). p50 / p99 / max come from this pass, and each of the ten slowest frames
   gets a reason.
2. **Profile pass** (``cProfile``): Python time per frame by function (own time and cumulative), so what is not
   inference shows up by name. The profiler slows Python code down, so its totals are only read as shares.

Reasons, checked in this order (the first that applies): a garbage collection took ≥ 30 % of the frame; the
frame waited for the background re-detection; the frame was preempted (wall time exceeds the thread's CPU time by
≥ 30 %: another process had the core — on a shared machine the usual cause); the detector ran on the full frame
(start-up, lost track, or no tracking); otherwise the slowest stage.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.spec import load_spec
from ims_runtime.types import Frame


@dataclass
class FrameRecord:
    index: int
    wall_ms: float
    cpu_ms: float
    stages_ms: dict[str, float]
    detector: str  # "tracked" | "full" | "tracked+full" (crop lost, full-frame fallback)
    merged: bool = False
    merge_wait_ms: float = 0.0
    gc_ms: float = 0.0
    gc_generations: list[int] = field(default_factory=list)

    def reason(self) -> str:
        if self.gc_ms >= 0.3 * self.wall_ms:
            return f"garbage collection (gen {max(self.gc_generations)}) {self.gc_ms:.2f} ms"
        if self.merge_wait_ms > 0:
            return f"waited {self.merge_wait_ms:.2f} ms for the background re-detection"
        if self.wall_ms - self.cpu_ms >= 0.3 * self.wall_ms:
            return f"preempted: wall {self.wall_ms:.2f} ms vs {self.cpu_ms:.2f} ms CPU (another process had the core)"
        if self.detector != "tracked":
            return f"full-frame detection ({self.detector}) {self.stages_ms.get('face_detector', 0.0):.2f} ms"
        stage, ms = max(((k, v) for k, v in self.stages_ms.items() if k != "total"), key=lambda kv: kv[1])
        return f"slowest stage {stage} {ms:.2f} ms"

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.index, "wall_ms": self.wall_ms, "cpu_ms": self.cpu_ms, "stages_ms": self.stages_ms,
                "detector": self.detector, "merged_background": self.merged, "merge_wait_ms": self.merge_wait_ms,
                "gc_ms": self.gc_ms, "reason": self.reason()}


class _GcTimer:
    """Collects the garbage collections that run while it is installed (duration and generation)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, float]] = []
        self._start_ns = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start_ns = time.perf_counter_ns()
        else:
            self.events.append((info["generation"], (time.perf_counter_ns() - self._start_ns) / 1e6))

    def __enter__(self) -> _GcTimer:  # noqa: PYI034 (final class, never subclassed)
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def _build(spec_path: Path, overrides: list[str]) -> Pipeline:
    loaded = load_spec(spec_path, overrides)
    pipeline = Pipeline(loaded.spec, loaded.path.parent)
    pipeline.warmup()
    return pipeline


def timing_pass(pipeline: Pipeline, frames: list[Frame], warmup_frames: int = 10) -> list[FrameRecord]:
    for frame in frames[:warmup_frames]:
        pipeline.process(frame)
    pipeline.reset()
    det = pipeline.detector
    records = []
    with _GcTimer() as gc_timer:
        for index, frame in enumerate(frames):
            merges0 = det.background_merges
            gc_timer.events.clear()
            wall0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
            state = pipeline.process(frame)
            cpu_ms, wall_ms = (time.thread_time_ns() - cpu0) / 1e6, (time.perf_counter_ns() - wall0) / 1e6
            merged = det.background_merges > merges0
            kind = "+".join(det.last_runs)  # "tracked", "full", or "tracked+full" (crop lost: full-frame fallback)
            records.append(FrameRecord(index, wall_ms, cpu_ms, dict(state.latency_ms), kind, merged,
                                       det.last_merge_wait_ms if merged else 0.0,
                                       sum(ms for _, ms in gc_timer.events),
                                       [g for g, _ in gc_timer.events]))
    return records


def profile_pass(pipeline: Pipeline, frames: list[Frame], top: int = 15) -> list[dict[str, Any]]:
    """Python time per frame by function under cProfile: own time (tottime) and cumulative, µs per frame."""
    pipeline.reset()  # the timing pass left the temporal window at the end of the clip
    for frame in frames[:10]:
        pipeline.process(frame)
    pipeline.reset()
    profiler = cProfile.Profile(time.thread_time)  # CPU time: the same clock as the timing pass
    profiler.enable()
    for frame in frames:
        pipeline.process(frame)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore
        rows.append({"function": f"{Path(file).name}:{line}({func})" if line else func,
                     "calls_per_frame": calls / len(frames), "own_us_per_frame": tottime / len(frames) * 1e6,
                     "cum_us_per_frame": cumtime / len(frames) * 1e6, "own_share": tottime / total if total else 0})
    return sorted(rows, key=lambda r: r["own_us_per_frame"], reverse=True)[:top]


def run_profile(spec_path: Path, overrides: list[str], frames: list[Frame]) -> dict[str, Any]:
    pipeline = _build(spec_path, overrides)
    try:
        records = timing_pass(pipeline, frames)
        functions = profile_pass(pipeline, frames)
        describe = pipeline.describe()
    finally:
        pipeline.close()
    wall = np.array([r.wall_ms for r in records])
    cpu = np.array([r.cpu_ms for r in records])
    slowest = sorted(records, key=lambda r: r.wall_ms, reverse=True)[:10]
    merges = [r for r in records if r.merged]
    kinds = {k: sum(r.detector == k for r in records) for k in sorted({r.detector for r in records})}
    return {
        "spec": str(spec_path), "frames": len(records),
        "wall_ms": {"p50": float(np.percentile(wall, 50)), "p99": float(np.percentile(wall, 99)),
                    "max": float(wall.max())},
        "cpu_ms": {"p50": float(np.percentile(cpu, 50)), "p99": float(np.percentile(cpu, 99)),
                   "max": float(cpu.max())},
        "detector_frames": kinds,
        "background_merges": len(merges), "merge_waits": sum(r.merge_wait_ms > 0 for r in merges),
        "merge_wait_ms_max": max((r.merge_wait_ms for r in merges), default=0.0),
        "gc_frames": sum(r.gc_ms > 0 for r in records),
        "slowest": [r.to_dict() for r in slowest], "functions": functions, "stages": describe,
    }


def profile_text(result: dict[str, Any]) -> str:
    w, c = result["wall_ms"], result["cpu_ms"]
    kinds = ", ".join(f"{k} {v}" for k, v in result["detector_frames"].items())
    lines = [f"profile of {result['spec']} over {result['frames']} frames",
             (f"per frame: wall p50 {w['p50']:.2f} / p99 {w['p99']:.2f} / max {w['max']:.2f} ms; main-thread CPU "
              f"p50 {c['p50']:.2f} / p99 {c['p99']:.2f} / max {c['max']:.2f} ms"),
             (f"detector: {kinds}; background re-detections merged {result['background_merges']}, waited for "
              f"{result['merge_waits']} (longest wait {result['merge_wait_ms_max']:.2f} ms); frames with a GC "
              f"{result['gc_frames']}"),
             "", "ten slowest frames (wall):"]
    for r in result["slowest"]:
        lines.append(f"  frame {r['frame']:>5}  {r['wall_ms']:7.2f} ms wall {r['cpu_ms']:7.2f} ms CPU  "
                     f"{r['detector']:<13} {r['reason']}")
    lines += ["", ("Python time per frame by function (cProfile, CPU clock; the profiler inflates call-heavy "
                   "code, read shares):"), f"  {'own µs':>8} {'cum µs':>8} {'calls':>6} {'share':>6}  function"]
    for f in result["functions"]:
        lines.append(f"  {f['own_us_per_frame']:>8.0f} {f['cum_us_per_frame']:>8.0f} {f['calls_per_frame']:>6.1f} "
                     f"{f['own_share']:>6.1%}  {f['function']}")
    return "\n".join(lines)
