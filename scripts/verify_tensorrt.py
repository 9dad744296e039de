#!/usr/bin/env python3
"""Compare an accelerator backend with ONNX Runtime CPU on a real clip — run this on the Jetson.

    python scripts/verify_tensorrt.py --spec deploy/specs/jetson-orin-trt.yaml CLIP.mp4 [--frames 50]

It opens the spec's detector model twice — with the *first* backend of ``stages.face_detector.backends``
(TensorRT in the Jetson spec; no fallback allowed) and with ``ort_cpu`` — runs both through the detector stage on
the same frames, and prints: where each ran, detection agreement (faces matched at IoU >= 0.5, median IoU, worst
score difference), raw-output differences, and the median latency of each with their ratio (same run, same
frames). Exit code 0 when the agreement tolerance holds (every CPU face with score >= 0.8 found, median IoU >= 0.9,
score difference <= 0.1 for FP16; --score-tol for INT8), 1 when it does not, and the taxonomy exit code when a
backend cannot open. Also works with the QNN spec (on the HTP simulator it checks numbers, not speed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ims_runtime import catalog, errors
from ims_runtime.backends import registered
from ims_runtime.backends.ort_cpu import OrtCpuConfig
from ims_runtime.spec.loader import load_spec
from ims_runtime.stages._retinaface_decode import iou_xyxy
from ims_runtime.stages.face_detector import FaceDetector


def read_frames(clip: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"no frames read from {clip}", "check the path and codec")
    return frames


def timed_detect(detector: FaceDetector, frames: list[np.ndarray]) -> tuple[list, list[float], list]:
    results, latencies_ms, raws = [], [], []
    for index, image in enumerate(frames):
        tensor, box = detector.letterbox(image)
        t0 = time.perf_counter()
        raw = detector.backend.run({detector.backend.inputs[0].name: tensor})
        latencies_ms.append((time.perf_counter() - t0) * 1e3)
        raws.append(raw)
        frame_wh = (image.shape[1], image.shape[0])
        results.append(detector.postprocess(raw[0][0], raw[1][0], raw[2][0], box, frame_wh))
    return results, latencies_ms, raws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--spec", type=Path, default=Path("deploy/specs/jetson-orin-trt.yaml"))
    parser.add_argument("--frames", type=int, default=50, help="frames from the start of the clip (default 50)")
    parser.add_argument("--score-tol", type=float, default=0.1, help="max |score difference| of matched faces")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec).spec.stages.face_detector
        model = catalog.resolve(spec.model, args.spec.parent)
        accel_cfg = spec.backends[0]
        accel = registered()[accel_cfg.type].open(model, accel_cfg)
        cpu = registered()["ort_cpu"].open(model, OrtCpuConfig(threads=1))
        frames = read_frames(args.clip, args.frames)
    except errors.IMSError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.code.exit_code
    on_accel, on_cpu = FaceDetector(spec, accel, "-"), FaceDetector(spec, cpu, "-")
    on_accel.warmup(3)
    on_cpu.warmup(3)
    faces_a, ms_a, raw_a = timed_detect(on_accel, frames)
    faces_c, ms_c, raw_c = timed_detect(on_cpu, frames)
    ious, score_diffs, missed = [], [], 0
    for fa, fc in zip(faces_a, faces_c):
        for face in (f for f in fc if f.score >= 0.8):
            iou = iou_xyxy(np.array([face.box_xyxy_px]), np.array([f.box_xyxy_px for f in fa]))[0] if fa else [0.0]
            best = int(np.argmax(iou))
            if iou[best] < 0.5:
                missed += 1
                continue
            ious.append(float(iou[best]))
            score_diffs.append(abs(face.score - fa[best].score))
    raw_max = [max(float(np.abs(a[k] - c[k]).max()) for a, c in zip(raw_a, raw_c)) for k in range(len(raw_a[0]))]
    report = {
        "accelerator": accel.describe(), "reference": cpu.describe(), "frames": len(frames),
        "faces_compared": len(ious), "faces_missed": missed,
        "median_iou": statistics.median(ious) if ious else None,
        "max_score_diff": max(score_diffs) if score_diffs else None,
        "raw_max_abs_diff": dict(zip([o.name for o in accel.outputs], raw_max)),
        "median_ms": {"accelerator": statistics.median(ms_a), "ort_cpu": statistics.median(ms_c)},
    }
    report["speedup_vs_ort_cpu"] = report["median_ms"]["ort_cpu"] / report["median_ms"]["accelerator"]
    ok = (missed == 0 and bool(ious) and report["median_iou"] >= 0.9 and report["max_score_diff"] <= args.score_tol)
    report["verdict"] = "PASS" if ok else "FAIL"
    print(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
