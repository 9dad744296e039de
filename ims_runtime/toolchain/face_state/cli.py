"""Handlers of ``ims-opt train face-state`` and ``ims-opt eval face-state`` (wired in ``toolchain/cli.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from ims_runtime import errors
from ims_runtime.toolchain.shared_data import shared_dir


def _recipe(args: argparse.Namespace):
    from ims_runtime.toolchain.face_state.train import TrainRecipe

    path = Path(args.recipe)
    if not path.is_file():
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"recipe {path} not found",
                              "run from the repository root or pass --recipe")
    recipe = TrainRecipe.load(path)
    overrides = {k: v for k, v in (("epochs", getattr(args, "epochs", None)),
                                   ("out_dir", getattr(args, "out_dir", None))) if v is not None}
    return dataclasses.replace(recipe, **overrides), path


def train_face_state(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.face_state.train import train

    recipe, path = _recipe(args)
    train(recipe, shared_dir(), path, log=lambda m: print(m, flush=True))
    return 0


def eval_face_state(args: argparse.Namespace) -> int:
    """Metrics table against the teachers on the held-apart clip; ``--benchmark`` adds the latency ratio."""
    from ims_runtime.toolchain.face_state import dataset, evaluate
    from ims_runtime.toolchain.face_state.train import evaluate_held_apart

    recipe, _ = _recipe(args)
    model = Path(args.model) if args.model else Path(recipe.out_dir) / f"{recipe.model_name}.onnx"
    faces, _, _ = dataset.build(shared_dir(), recipe.data, log=lambda m: print(m, flush=True))
    if args.grey:
        import cv2

        is_val = faces.split == "val"
        faces.crops[is_val] = [cv2.cvtColor(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
                               for c in faces.crops[is_val]]
        print("held-apart crops converted to grey (a monochrome / NIR-like camera)")
    result = evaluate_held_apart(model, faces, recipe)
    print(evaluate.format_table(result))
    if args.benchmark:
        benchmark(model, shared_dir() / recipe.data.val_videos[0])
    return 0


def benchmark(model: Path, clip: Path, frames: int = 60) -> None:
    """Face-state stage per face vs the detector per frame, ORT CPU, 1 thread each, on one real clip."""
    import cv2

    from ims_runtime.spec.schema import DetectorSpec, FaceStateSpec
    from ims_runtime.stages.face_detector import FaceDetector
    from ims_runtime.stages.face_state import FaceStateStage
    from ims_runtime.types import Frame

    detector = FaceDetector.from_spec(DetectorSpec())
    stage = FaceStateStage.from_spec(FaceStateSpec(model=str(model.resolve())))
    detector.warmup()
    stage.warmup()
    cap = cv2.VideoCapture(str(clip))
    det_ms, state_ms = [], []
    for index in range(frames):
        ok, image = cap.read()
        if not ok:
            break
        frame = Frame(index, 0, image)
        t0 = time.perf_counter()
        found = detector.detect(frame)
        det_ms.append((time.perf_counter() - t0) * 1e3)
        for face in found.faces:
            t0 = time.perf_counter()
            stage.process(frame, face)
            state_ms.append((time.perf_counter() - t0) * 1e3)
    det, state = statistics.median(det_ms), statistics.median(state_ms)
    print(f"latency, ORT CPU 1 thread, {clip.name}, {len(det_ms)} frames: detector {det:.2f} ms/frame (640x384), "
          f"face-state {state:.2f} ms/face (align + network, {len(state_ms)} faces) = {state / det:.2f}x the detector")
