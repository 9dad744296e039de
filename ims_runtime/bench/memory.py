"""``ims-runtime bench --memory``: what each part of the vehicle process costs in resident memory, and ``serve``'s RSS.

Every component is measured in a fresh interpreter (:mod:`ims_runtime.bench._memory_child`), adding one part at a
time, so imports are not hidden behind each other: the interpreter, numpy, OpenCV, ONNX Runtime, ZeroMQ and the
service's own code; each ONNX Runtime session of the spec opened and run at the shapes the stages feed it (with
ONNX Runtime's CPU memory arena on and off); the video decoder (FFmpeg's default threads and one thread); a ZeroMQ
context with a bound PUB socket. The frame buffers are computed (frames in the scheduler's queue, the one being
processed and the one being decoded). Then the real ``ims-runtime serve`` replays ``--input`` as fast as it can
(``--no-pace``) while its RSS is sampled every 50 ms — as deployed, and with each cut applied — so a cut is judged
on the whole service, not on a part.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ims_runtime import catalog
from ims_runtime.spec import load_spec

CHILD = "ims_runtime.bench._memory_child"


def _child(*args: str, env: dict[str, str] | None = None) -> list[tuple[str, float]]:
    out = subprocess.run([sys.executable, "-m", CHILD, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, timeout=300)
    return [tuple(step) for step in json.loads(out.stdout.strip().splitlines()[-1])]  # type: ignore[misc]


def _deltas(steps: list[tuple[str, float]]) -> list[dict[str, float | str]]:
    return [{"part": name, "rss_mb": rss, "delta_mb": rss - steps[i - 1][1] if i else rss}
            for i, (name, rss) in enumerate(steps)]


def backend_overrides(spec_path: Path, field: str, value: object) -> list[str]:
    """``--set`` lines giving every stage backend that has ``field`` (e.g. ``cpu_mem_arena``) ``value``."""
    spec = load_spec(spec_path).spec
    out = []
    for stage_name, stage in spec.stages:
        for index, backend in enumerate(getattr(stage, "backends", None) or []):
            if field in type(backend).model_fields:
                out.append(f"stages.{stage_name}.backends.{index}.{field}={json.dumps(value)}")
    return out


def _spec_sessions(spec_path: Path, overrides: list[str]) -> list[tuple[str, Path, str]]:
    """(label, model file, shapes the stage feeds it) for every network of the spec."""
    loaded = load_spec(spec_path, overrides)
    spec, spec_dir = loaded.spec, loaded.path.parent
    det = spec.stages.face_detector
    w, h = det.input_size_px
    shapes = [f"1x3x{h}x{w}"]
    if det.tracking is not None:
        side = det.tracking.roi_input_size_px
        shapes.append(f"1x3x{side}x{side}")
    sessions = [(f"detector {det.model}", catalog.resolve(det.model, spec_dir), ",".join(shapes))]
    if spec.stages.face_state is not None:
        fs = spec.stages.face_state
        s = fs.crop_size_px
        sessions.append((f"face-state {fs.model}", catalog.resolve(fs.model, spec_dir), f"1x3x{s}x{s}"))
        if getattr(fs, "eye_model", None):
            path = catalog.resolve(fs.eye_model, spec_dir)
            sessions.append((f"eye-state {fs.eye_model}", path, _input_shape(path, batch=2)))
    fatigue = spec.stages.fatigue
    if fatigue is not None and fatigue.estimator == "model":
        path = catalog.resolve(fatigue.model, spec_dir)
        sessions.append((f"fatigue {fatigue.model}", path, _input_shape(path)))
    return sessions


def _input_shape(path: Path, batch: int = 1) -> str:
    """The model's first input shape as ``1x3x...`` with symbolic dimensions set to ``batch`` (the batch axis)."""
    import onnxruntime as ort

    shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    return "x".join(str(d if isinstance(d, int) else batch) for d in shape)


def serve_rss(spec_path: Path, source: Path, overrides: list[str], frames: int,
              env: dict[str, str] | None = None, pace: bool = False) -> dict[str, float]:
    """Run ``ims-runtime serve`` on ``source`` (``frames`` frames, as fast as possible or ``pace``d at the file's
    frame rate like a camera) and sample its RSS every 50 ms.

    Returns the peak, the median of the second half of the samples (steady state) and the run time."""
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{tmp}/memory-report.sock"
        cmd = [sys.executable, "-m", "ims_runtime.cli", "serve", "--spec", str(spec_path), "--source", str(source),
               *([] if pace else ["--no-pace"]), "--max-frames", str(frames), "--log-level", "error",
               "--set", f"publish.endpoint={endpoint}"]
        for item in overrides:
            cmd += ["--set", item]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        samples = []
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                text = status.read_text()
            except OSError:
                break
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    samples.append(int(line.split()[1]) / 1024)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"serve exited {proc.returncode}: {err.strip()[-400:]}")
    tail = sorted(samples[len(samples) // 2:]) or [0.0]
    return {"peak_mb": max(samples, default=0.0), "steady_mb": tail[len(tail) // 2],
            "run_s": time.monotonic() - started, "samples": len(samples)}


def memory_budget(spec_path: Path, source: Path, overrides: list[str], frames: int = 300) -> dict[str, Any]:
    loaded = load_spec(spec_path, overrides)
    imports = _deltas(_child("imports"))
    sessions = []
    for label, path, shapes in _spec_sessions(spec_path, overrides):
        row: dict[str, Any] = {"session": label, "shapes": shapes}
        for arena in ("1", "0"):
            steps = _child("model", str(path), shapes, arena)
            base = steps[0][1]
            row["arena_on" if arena == "1" else "arena_off"] = {
                "opened_mb": steps[1][1] - base, "after_runs_mb": steps[2][1] - base}
        sessions.append(row)
    decoder = {}
    for threads in ("0", "1"):
        steps = _child("decoder", str(source), threads)
        decoder["default_threads" if threads == "0" else "one_thread"] = steps[2][1] - steps[0][1]
    zmq_steps = _child("zmq", f"ipc://{tempfile.gettempdir()}/ims-memory-{os.getpid()}.sock")
    import cv2

    cap = cv2.VideoCapture(str(source))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    in_flight = loaded.spec.service.queue_frames + 2  # queued + being processed + being decoded
    frame_buffers_mb = in_flight * w * h * 3 / 2**20
    arena_off = backend_overrides(spec_path, "cpu_mem_arena", False)
    pattern_off = backend_overrides(spec_path, "memory_pattern", False)
    serve_runs = {
        "as deployed": serve_rss(spec_path, source, overrides, frames),
        "ORT memory pattern off": serve_rss(spec_path, source, overrides + pattern_off, frames),
        "ORT CPU arena off": serve_rss(spec_path, source, overrides + arena_off, frames),
        "MALLOC_ARENA_MAX=2": serve_rss(spec_path, source, overrides, frames, env={"MALLOC_ARENA_MAX": "2"}),
        # the first row again: the difference between the two is the run-to-run spread a cut must beat
        "as deployed (repeat)": serve_rss(spec_path, source, overrides, frames),
        "as deployed, paced at 30 fps": serve_rss(spec_path, source, overrides, frames, pace=True),
    }
    parts = sum(float(r["delta_mb"]) for r in imports) + sum(s["arena_on"]["after_runs_mb"] for s in sessions) \
        + decoder["default_threads"] + (zmq_steps[1][1] - zmq_steps[0][1]) + frame_buffers_mb
    return {"spec": str(spec_path), "input": str(source), "frame_wh_px": [w, h], "frames": frames,
            "imports": imports, "sessions": sessions, "decoder_mb": decoder,
            "zmq_mb": {"context_and_socket": zmq_steps[1][1] - zmq_steps[0][1],
                       "after_100_messages": zmq_steps[2][1] - zmq_steps[0][1]},
            "frame_buffers": {"frames_in_flight": in_flight, "mb": frame_buffers_mb},
            "sum_of_parts_mb": parts, "serve": serve_runs}


def memory_text(result: dict[str, Any]) -> str:
    w, h = result["frame_wh_px"]
    lines = [f"memory budget of {result['spec']} on {Path(result['input']).name} ({w}x{h})", "",
             f"{'part':<66}{'MiB':>8}"]
    for row in result["imports"]:
        lines.append(f"  {row['part']:<64}{row['delta_mb']:>8.1f}")
    for s in result["sessions"]:
        on, off = s["arena_on"], s["arena_off"]
        lines.append(f"  ORT session {s['session']} (opened {on['opened_mb']:.1f}, run at {s['shapes']})"
                     .ljust(66) + f"{on['after_runs_mb']:>8.1f}   arena off: {off['after_runs_mb']:.1f}")
    d = result["decoder_mb"]
    lines.append(f"  {'video decoder, 100 frames decoded (FFmpeg default threads)':<64}{d['default_threads']:>8.1f}"
                 f"   one thread: {d['one_thread']:.1f}")
    lines.append(f"  {'ZeroMQ context + bound PUB socket':<64}{result['zmq_mb']['context_and_socket']:>8.1f}")
    fb = result["frame_buffers"]
    lines.append(f"  {'frame buffers (' + str(fb['frames_in_flight']) + ' frames in flight, computed)':<64}"
                 f"{fb['mb']:>8.1f}")
    lines.append(f"  {'sum of the parts':<64}{result['sum_of_parts_mb']:>8.1f}")
    lines += ["", f"serve --max-frames {result['frames']}, --no-pace unless paced (RSS sampled every 50 ms):"]
    for name, run in result["serve"].items():
        lines.append(f"  {name:<40} steady {run['steady_mb']:6.1f} MiB   peak {run['peak_mb']:6.1f} MiB")
    return "\n".join(lines)
