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

import numpy as np

from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.spec import load_spec
from ims_runtime.stages._retinaface_decode import iou_xyxy
from ims_runtime.telemetry.latency import LatencyWindow
from ims_runtime.telemetry.process import ProcessStats
from ims_runtime.types import Frame

#: notes key under which a pipeline row keeps its per-frame driver boxes until :func:`add_agreement` runs
DRIVER_BOXES = "_driver_boxes"


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
    """Warm up, reset, time every frame. ``rss_mb`` is the process RSS after the run minus the decoded frames
    every row shares (they are held in memory so decoding is not timed), i.e. what the configuration costs on
    top of a bare process. ``serve``'s own RSS is in its telemetry."""
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
    rss = stats.rss_mb() - sum(f.image_bgr.nbytes for f in frames) / 2**20
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
        driver_boxes: list[list[float] | None] = []  # per timed frame, for the accuracy-vs-speed comparison

        def process(frame: Frame) -> dict[str, float]:
            state = pipeline.process(frame)
            box = state.face.box_xyxy_px
            driver_boxes.append(list(box) if box is not None else None)
            return state.latency_ms

        def reset() -> None:
            pipeline.reset()
            driver_boxes.clear()

        def finish() -> dict[str, Any]:
            notes: dict[str, Any] = {"spec": str(spec_path), "overrides": overrides,
                                     "stages": pipeline.describe(), DRIVER_BOXES: list(driver_boxes)}
            if swapped:
                notes["pytorch_stages"] = swapped
            pipeline.close()
            return notes

        return process, reset, finish

    return BenchConfig(name, build)


def add_agreement(results: list[BenchResult], reference: str) -> None:
    """Accuracy next to speed: how closely each row's driver box follows the reference row's, frame by frame.

    Adds ``notes["agreement"] = {"driver_iou_mean", "driver_iou_min", "presence_agreement"}`` to every pipeline
    row and drops the raw boxes (they are not part of the JSON).
    """
    ref = next((r for r in results if r.name == reference), None)
    ref_boxes = ref.notes.get(DRIVER_BOXES) if ref else None
    for result in results:
        boxes = result.notes.pop(DRIVER_BOXES, None)
        if boxes is None or ref_boxes is None or len(boxes) != len(ref_boxes):
            continue
        both = [(a, b) for a, b in zip(ref_boxes, boxes) if a is not None and b is not None]
        ious = [float(iou_xyxy(np.array([a]), np.array([b]))[0, 0]) for a, b in both]
        same = sum((a is None) == (b is None) for a, b in zip(ref_boxes, boxes))
        result.notes["agreement"] = {
            "reference": reference,
            "driver_iou_mean": float(np.mean(ious)) if ious else None,
            "driver_iou_min": float(np.min(ious)) if ious else None,
            "presence_agreement": same / len(boxes),
        }
    if ref is not None:
        ref.notes.pop(DRIVER_BOXES, None)


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
    head = f"{'configuration':<34}{'p50':>8}{'p95':>8}{'p99':>8}{'fps':>8}{'RSS MB':>8}{'IoU/ref':>9}"
    head += "".join(f"{s[:14] + ' p50':>19}" for s in stage_names)
    present = [b for b in baselines if any(r.name == b for r in results)]
    head += "".join(f"{'vs ' + b[:18]:>23}" for b in present)
    lines = [head, "-" * len(head)]
    ratio_maps = {b: ratios(results, b) for b in present}
    for r in results:
        iou = (r.notes.get("agreement") or {}).get("driver_iou_mean")
        line = f"{r.name:<34}{r.p50_ms:>8.2f}{r.p95_ms:>8.2f}{r.p99_ms:>8.2f}{r.fps:>8.1f}{r.rss_mb:>8.0f}"
        line += f"{iou:>9.3f}" if iou is not None else f"{'-':>9}"
        line += "".join(f"{r.stages[s]['p50']:>19.2f}" if s in r.stages else f"{'-':>19}" for s in stage_names)
        line += "".join(f"{ratio_maps[b].get(r.name, float('nan')):>22.2f}x" for b in present)
        lines.append(line)
    lines.append("times in ms per frame (end to end = total); IoU/ref: mean IoU of the driver's box against the "
                 "first row's on the same frames; ratios are p50 speed-ups (>1 = faster than the baseline), "
                 "measured in this run")
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

