"""Latency and memory of ONNX models on ONNX Runtime CPU, measured side by side in one process.

Every variant is timed in the same run as its FP32 baseline (never compared across runs or machines): one
intra-op thread, sequential execution, the same real input tensor, warm-up runs first, then ``runs`` timed calls.
Rounds are interleaved (A, B, C, A, B, C, ...) so a noisy neighbour on the shared cores slows every variant alike.
Peak memory is the growth of the process's resident set while a fresh session loads and runs the model.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psutil


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    runs: int
    session_rss_mb: float

    def to_dict(self) -> dict[str, float]:
        return {"p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3), "mean_ms": round(self.mean_ms, 3),
                "runs": self.runs, "session_rss_mb": round(self.session_rss_mb, 1)}


def cpu_session(model: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def benchmark(models: dict[str, Path], feed_tensor: np.ndarray, runs: int = 100, warmup: int = 10,
              rounds: int = 5, threads: int = 1) -> dict[str, Latency]:
    """Time each model on ``feed_tensor`` (its single input); interleaved rounds of ``runs // rounds`` calls."""
    process = psutil.Process()
    sessions: dict[str, ort.InferenceSession] = {}
    rss_mb: dict[str, float] = {}
    for name, path in models.items():
        gc.collect()
        before = process.memory_info().rss
        session = cpu_session(path, threads)
        feed = {session.get_inputs()[0].name: feed_tensor}
        for _ in range(warmup):
            session.run(None, feed)
        rss_mb[name] = (process.memory_info().rss - before) / 2**20
        sessions[name] = session
    samples: dict[str, list[float]] = {name: [] for name in models}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, session in sessions.items():
            feed = {session.get_inputs()[0].name: feed_tensor}
            for _ in range(per_round):
                start = time.perf_counter_ns()
                session.run(None, feed)
                samples[name].append((time.perf_counter_ns() - start) / 1e6)
    return {name: Latency(float(np.percentile(s, 50)), float(np.percentile(s, 99)), float(np.mean(s)), len(s),
                          rss_mb[name]) for name, s in samples.items()}
