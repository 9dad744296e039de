"""ONNX Runtime's fixed cost per ``run`` for each model of a spec (``ims-runtime bench --overhead``).

Two figures per model, both per-thread CPU time (``time.thread_time_ns``: with one intra-op thread ONNX Runtime
computes on the calling thread, and CPU time is far less disturbed than wall time by other processes on a
shared machine), medians over interleaved rounds:

* **plain vs bound**: the same input buffer through ``session.run`` (the Python binding wraps the input, allocates
  the outputs and wraps them in numpy on every call) and through a pre-bound ``run_with_iobinding`` (what the
  ``ort_cpu`` backend does in steady state). The difference is the binding's per-call cost.
* **fixed cost** (models with a dynamic input size: the detector): the run time at several square input sizes
  fitted by least squares to ``fixed + per_pixel * pixels``; the intercept is what a run costs independent of the
  work — per-node dispatch, the executor, the Python call — i.e. the floor a smaller input can never go below.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ims_runtime.backends.ort_cpu import OrtCpuBackend, OrtCpuConfig


@dataclass(frozen=True)
class ModelOverhead:
    name: str
    input_shape: tuple[int, ...]
    plain_us: float
    bound_us: float
    #: spread of the plain/bound ratio over the rounds (min, max)
    ratio_spread: tuple[float, float]
    #: intercept of run time vs input pixels (µs), None for fixed-size models
    fixed_us: float | None = None
    #: slope of that fit (µs per 1000 input pixels), None for fixed-size models
    per_kpixel_us: float | None = None
    sizes_px: tuple[int, ...] = ()
    #: median bound run time (µs) at each fitted square side
    times_us_by_side: dict[int, float] | None = None

    def to_dict(self) -> dict[str, object]:
        return {"model": self.name, "input_shape": list(self.input_shape), "plain_us": self.plain_us,
                "bound_us": self.bound_us, "plain_over_bound": self.plain_us / self.bound_us,
                "ratio_spread": list(self.ratio_spread), "fixed_us": self.fixed_us,
                "per_kpixel_us": self.per_kpixel_us, "fit_sizes_px": list(self.sizes_px),
                "times_us_by_side": self.times_us_by_side}


def _cpu_us(call, runs: int) -> float:
    """Median thread CPU time of ``call()`` over ``runs`` calls, µs."""
    times = []
    for _ in range(runs):
        start = time.thread_time_ns()
        call()
        times.append(time.thread_time_ns() - start)
    return statistics.median(times) / 1e3


def plain_vs_bound(model: Path, shape: tuple[int, ...], runs: int = 50, rounds: int = 10
                   ) -> tuple[float, float, tuple[float, float]]:
    """(plain µs, bound µs, (min, max) of the per-round ratio) for one input shape, rounds interleaved."""
    plain = OrtCpuBackend(model, OrtCpuConfig(io_binding=False))
    bound = OrtCpuBackend(model, OrtCpuConfig(io_binding=True))
    try:
        feed = {plain.inputs[0].name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        for _ in range(5):
            plain.run(feed)
            bound.run(feed)
        a, b = [], []
        for round_index in range(rounds):  # ABBA order: a slow spell of the machine hits both alike
            if round_index % 2 == 0:
                a.append(_cpu_us(lambda: plain.run(feed), runs))
                b.append(_cpu_us(lambda: bound.run(feed), runs))
            else:
                b.append(_cpu_us(lambda: bound.run(feed), runs))
                a.append(_cpu_us(lambda: plain.run(feed), runs))
        ratios = [x / y for x, y in zip(a, b)]
        return statistics.median(a), statistics.median(b), (min(ratios), max(ratios))
    finally:
        plain.close()
        bound.close()


def fixed_cost(model: Path, sides_px: tuple[int, ...], runs: int = 40, rounds: int = 3
               ) -> tuple[float, float, dict[int, float]]:
    """(intercept µs, µs per 1000 pixels, median µs per side) of the bound run time of a dynamic-size image model
    vs input pixels. The run time at the smallest side is an upper bound of the fixed cost, the fit's intercept
    an estimate of it."""
    backend = OrtCpuBackend(model, OrtCpuConfig(io_binding=True))
    try:
        name = backend.inputs[0].name
        feeds = {s: {name: np.random.default_rng(s).random((1, 3, s, s), dtype=np.float32)} for s in sides_px}
        for feed in feeds.values():
            for _ in range(3):
                backend.run(feed)
        per_size = {s: [] for s in sides_px}
        for _ in range(rounds):  # sizes interleaved, so a load change hits every size alike
            for s, feed in feeds.items():
                per_size[s].append(_cpu_us(lambda feed=feed: backend.run(feed), runs))
        pixels = np.array([s * s for s in sides_px], dtype=np.float64)
        times = np.array([statistics.median(per_size[s]) for s in sides_px])
        slope, intercept = np.polyfit(pixels, times, 1)
        return float(intercept), float(slope * 1000), {s: float(t) for s, t in zip(sides_px, times)}
    finally:
        backend.close()


def measure_models(models: list[tuple[str, Path, tuple[int, ...], bool]], runs: int = 50,
                   sides_px: tuple[int, ...] = (32, 64, 96, 128, 160, 192)) -> list[ModelOverhead]:
    """``models``: (label, path, input shape, dynamic size?) → one :class:`ModelOverhead` each."""
    out = []
    for label, path, shape, dynamic in models:
        plain, bound, spread = plain_vs_bound(path, shape, runs)
        fixed = slope = by_side = None
        if dynamic:
            fixed, slope, by_side = fixed_cost(path, sides_px)
        out.append(ModelOverhead(label, shape, plain, bound, spread, fixed, slope,
                                 sides_px if dynamic else (), by_side))
    return out


def spec_models(spec) -> list[tuple[str, Path, tuple[int, ...], bool]]:
    """The networks a spec runs, with the input shapes it feeds them (the detector twice when it tracks)."""
    from ims_runtime import catalog

    models = []
    det = spec.stages.face_detector
    path = catalog.resolve(det.model)
    w, h = det.input_size_px
    dynamic = _dynamic(path)
    models.append((f"{det.model} {w}x{h}", path, (1, 3, h, w), dynamic))
    if det.tracking is not None:
        side = det.tracking.roi_input_size_px
        models.append((f"{det.model} {side}x{side} (tracking crop)", path, (1, 3, side, side), False))
    fs = spec.stages.face_state
    if fs is not None:
        s = fs.crop_size_px
        models.append((f"{fs.model} {s}x{s}", catalog.resolve(fs.model), (1, 3, s, s), False))
        if getattr(fs, "eye_model", None):
            path = catalog.resolve(fs.eye_model)
            backend = OrtCpuBackend(path, OrtCpuConfig())
            shape = tuple(d if isinstance(d, int) else 2 for d in backend.inputs[0].shape)  # both eyes, one batch
            backend.close()
            models.append((f"{fs.eye_model} (both eyes)", path, shape, False))
    fatigue = getattr(spec.stages, "fatigue", None)
    if fatigue is not None and getattr(fatigue, "model", None):
        path = catalog.resolve(fatigue.model)
        backend = OrtCpuBackend(path, OrtCpuConfig())
        shape = tuple(d if isinstance(d, int) else 1 for d in backend.inputs[0].shape)
        backend.close()
        models.append((f"{fatigue.model}", path, shape, False))
    return models


def _dynamic(path: Path) -> bool:
    backend = OrtCpuBackend(path, OrtCpuConfig())
    try:
        return not all(isinstance(d, int) for d in backend.inputs[0].shape[2:])
    finally:
        backend.close()


def overhead_table(rows: list[ModelOverhead]) -> str:
    head = f"{'model':<46}{'run() µs':>10}{'bound µs':>10}{'run/bound':>11}{'  spread':<16}{'fixed µs':>10}" \
           f"{'µs/kpx':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<46}{r.plain_us:>10.1f}{r.bound_us:>10.1f}{r.plain_us / r.bound_us:>10.3f}x"
                     f"  {r.ratio_spread[0]:.3f}–{r.ratio_spread[1]:.3f}  "
                     + (f"{r.fixed_us:>10.0f}{r.per_kpixel_us:>8.2f}" if r.fixed_us is not None
                        else f"{'-':>10}{'-':>8}"))
    for r in rows:
        if r.times_us_by_side:
            lines.append(f"{r.name}: bound run µs by square input side: "
                         + ", ".join(f"{s}px {t:.0f}" for s, t in r.times_us_by_side.items()))
    lines.append("per-thread CPU time per call, medians of interleaved rounds; fixed: intercept of run time vs input "
                 "pixels (the cost a run has at any size: per-node dispatch, executor, Python call). Ratios within "
                 "this run only; absolute µs depend on the machine and its load.")
    return "\n".join(lines)
