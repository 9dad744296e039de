"""``ims-runtime bench``: every configuration and baseline in one process, on the same decoded frames.

Frames are decoded once up front, so decoding is not timed; each configuration is built, warmed up, run over all
frames and torn down before the next. Timing claims are ratios between rows of one run, never absolute figures
from another machine or another run.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.spec import load_spec
from ims_runtime.telemetry.latency import LatencyWindow
from ims_runtime.telemetry.process import ProcessStats
from ims_runtime.types import Frame


@dataclass
class BenchResult:
    name: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    fps: float
    rss_mb: float
    stages: dict[str, dict[str, float]]
    frames: int
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
                "fps": self.fps, "rss_mb": self.rss_mb, "stages": self.stages, "frames": self.frames,
                "notes": self.notes}


@dataclass
class BenchConfig:
    """One row: a name and a factory returning ``process(frame) -> latency_ms dict``, a ``reset()`` that forgets
    per-driver state after warm-up (the timed frames start again at t = 0), and a teardown returning notes."""

    name: str
    build: Callable[[], tuple[Callable[[Frame], dict[str, float]], Callable[[], None], Callable[[], dict[str, Any]]]]


def measure(config: BenchConfig, frames: list[Frame], warmup_frames: int = 10) -> BenchResult:
    process, reset, finish = config.build()
    for frame in frames[:warmup_frames]:
        process(frame)
    reset()
    window = LatencyWindow(size=len(frames) + 1)
    stats = ProcessStats()
    started = time.perf_counter()
    for frame in frames:
        window.add(process(frame))
    wall_s = time.perf_counter() - started
    rss = stats.rss_mb()
    notes = finish() or {}
    pct = window.percentiles()
    total = pct.pop("total")
    result = BenchResult(config.name, total["p50"], total["p95"], total["p99"], len(frames) / wall_s, rss,
                         {k: {q: v for q, v in row.items() if q != "n"} for k, row in pct.items()}, len(frames),
                         notes)
    gc.collect()
    return result


def pipeline_config(name: str, spec_path: Path, overrides: list[str],
                    swap: Callable[[Pipeline], list[str]] | None = None) -> BenchConfig:
    """A row running our :class:`Pipeline` from a spec (+ overrides); ``swap`` may replace stage backends."""

    def build():
        loaded = load_spec(spec_path, overrides)
        pipeline = Pipeline(loaded.spec, loaded.path.parent)
        swapped = swap(pipeline) if swap else []
        pipeline.warmup()

        def process(frame: Frame) -> dict[str, float]:
            return pipeline.process(frame)["latency_ms"]

        def finish() -> dict[str, Any]:
            notes: dict[str, Any] = {"spec": str(spec_path), "overrides": overrides,
                                     "stages": pipeline.describe()}
            if swapped:
                notes["pytorch_stages"] = swapped
            pipeline.close()
            return notes

        return process, pipeline.reset, finish

    return BenchConfig(name, build)


def thread_overrides(spec_path: Path, threads: int) -> list[str]:
    """``--set`` lines giving every stage's ``ort_cpu``/threaded backends ``threads`` intra-op threads."""
    spec = load_spec(spec_path).spec
    out = []
    for stage_name, stage in spec.stages:
        for index, backend in enumerate(getattr(stage, "backends", None) or []):
            if hasattr(backend, "threads"):
                out.append(f"stages.{stage_name}.backends.{index}.threads={threads}")
    return out


def mediapipe_config(threads: int = 1) -> BenchConfig:
    def build():
        from ims_runtime.bench.mediapipe_peer import MediaPipePeer

        peer = MediaPipePeer(threads)

        def process(frame: Frame) -> dict[str, float]:
            return peer.process(frame.image_bgr)

        def finish() -> dict[str, Any]:
            return {"detections_run": peer.detections_run, "runtime": "ai-edge-litert (XNNPACK)",
                    "threads": threads}

        return process, peer.reset, finish

    return BenchConfig(f"mediapipe_litert_t{threads}", build)


def ratios(results: list[BenchResult], reference: str) -> dict[str, float]:
    """p50 speed-up of each row relative to ``reference`` (> 1 = faster than the reference)."""
    ref = next((r for r in results if r.name == reference), None)
    if ref is None:
        return {}
    return {r.name: ref.p50_ms / r.p50_ms for r in results if r.p50_ms > 0}


def table(results: list[BenchResult], baselines: list[str]) -> str:
    stage_names = sorted({s for r in results for s in r.stages})
    head = f"{'configuration':<34}{'p50':>8}{'p95':>8}{'p99':>8}{'fps':>8}{'RSS MB':>8}"
    head += "".join(f"{s[:14] + ' p50':>19}" for s in stage_names)
    present = [b for b in baselines if any(r.name == b for r in results)]
    head += "".join(f"{'vs ' + b[:18]:>23}" for b in present)
    lines = [head, "-" * len(head)]
    ratio_maps = {b: ratios(results, b) for b in present}
    for r in results:
        line = f"{r.name:<34}{r.p50_ms:>8.2f}{r.p95_ms:>8.2f}{r.p99_ms:>8.2f}{r.fps:>8.1f}{r.rss_mb:>8.0f}"
        line += "".join(f"{r.stages[s]['p50']:>19.2f}" if s in r.stages else f"{'-':>19}" for s in stage_names)
        line += "".join(f"{ratio_maps[b].get(r.name, float('nan')):>22.2f}x" for b in present)
        lines.append(line)
    lines.append("times in ms per frame (end to end = total); ratios are p50 speed-ups (>1 = faster than the "
                 "baseline), measured in this run")
    return "\n".join(lines)


def load_frames(path: Path, count: int) -> list[Frame]:
    from ims_runtime.pipeline.sources import open_source
    from ims_runtime.spec.schema import SourceSpec

    source = open_source(SourceSpec(), str(path), loop=True)
    try:
        frames = [f for _, f in zip(range(count), source.frames())]
    finally:
        source.close()
    return frames

