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
    """The deployed pipeline against ground truth / teachers on held-apart data (``ground_truth_eval``); with
    ``--crops``, the model alone against the teachers on the label cache's held-apart crops."""
    if not args.crops:
        return eval_ground_truth(args)
    return eval_teacher_crops(args)


def eval_ground_truth(args: argparse.Namespace) -> int:
    import json

    from ims_runtime import paths
    from ims_runtime.atomic import atomic_write_bytes, check_output_path
    from ims_runtime.toolchain.face_state import ground_truth_eval

    json_out = check_output_path(Path(args.json), "--json") if args.json else None
    spec = Path(args.spec)
    for path, flag, example in ((spec, "--spec", "deploy/specs/dev-cpu.yaml"),
                                (Path(args.recipe), "--recipe", "deploy/recipes/face-state.yaml")):
        if not path.is_file():
            raise errors.IMSError(errors.SPEC_NOT_FOUND, f"{flag} {path} not found",
                                  f"run from the repository root or pass e.g. {flag} {example}")
    if not Path(args.annotations).is_dir():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"--annotations {args.annotations} is not a folder",
                              "pass the folder of blink annotations, e.g. deploy/annotations/blinks")
    cew = None if args.no_cew else Path(args.cew_faces) if args.cew_faces else \
        shared_dir() / "data" / "cew_faces_closed" / "images"
    work = paths.cache_dir() / "eval" / "face_state" / spec.stem
    report = ground_truth_eval.evaluate(spec, Path(args.recipe), shared_dir(), Path(args.annotations), work, cew,
                                        args.cew_limit, args.include_trained, log=lambda m: print(m, flush=True))
    print(ground_truth_eval.format_report(report))
    if json_out is not None:
        atomic_write_bytes(json_out, (json.dumps(report, indent=2) + "\n").encode())
        print(f"wrote {json_out}")
    return 0


def eval_teacher_crops(args: argparse.Namespace) -> int:
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


def eval_blinks(args: argparse.Namespace) -> int:
    """``ims-opt eval blinks``: one replay against one blink annotation."""
    import json

    from ims_runtime.atomic import atomic_write_bytes, check_output_path
    from ims_runtime.toolchain.face_state import blink_eval
    from ims_runtime.toolchain.face_state.blink_truth import load_truth
    from ims_runtime.toolchain.face_state.replay_track import load_replay

    json_out = check_output_path(Path(args.json), "--json") if args.json else None
    track = load_replay(Path(args.replay))
    truth = load_truth(Path(args.truth))
    teacher = None
    if args.teacher:
        from ims_runtime.toolchain.face_state.blink_sheets import read_frames, teacher_closed_per_frame

        clip = Path(args.clip) if args.clip else shared_dir() / "data" / "videos" / truth.clip
        if not clip.is_file():
            raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"clip {clip} not found (needed by --teacher)",
                                  "pass --clip, or set IMS_SHARED_DIR to the folder holding data/videos")
        teacher = teacher_closed_per_frame(read_frames(clip), track)
    result = blink_eval.evaluate_replay(track, truth, args.threshold, teacher, args.tolerance_frames)
    print(f"{truth.clip}: {result['truth']['closure_episodes']} annotated closures, "
          f"{result['truth']['open_frames']} open / {result['truth']['closed_frames']} closed / "
          f"{result['truth']['downcast_frames']} downcast / {result['truth']['excluded_frames']} excluded frames; "
          f"{result['rule']}")
    print(blink_eval.format_table({Path(truth.clip).stem: result}))
    means = result["mean_openness"]
    print("mean published openness: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in means.items()
                                                    if v is not None))
    if json_out is not None:
        atomic_write_bytes(json_out, (json.dumps(result, indent=2) + "\n").encode())
        print(f"wrote {json_out}")
    return 0


def annotate_blinks_sheet(args: argparse.Namespace) -> int:
    """``ims-opt annotate blinks-sheet``: contact sheets of the driver's eyes for annotating blinks by eye."""
    from ims_runtime.atomic import check_output_path
    from ims_runtime.toolchain.face_state.blink_sheets import write_sheets

    out = Path(args.out)
    check_output_path(out / "sheet.png", "--out folder")
    clip = Path(args.clip)
    if not clip.is_file():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"clip {clip} not found", "pass a video file")
    write_sheets(clip, Path(args.replay), out, args.columns, args.rows, args.teacher,
                 frames_range=tuple(args.frames) if args.frames else None, face=args.face,
                 tile_width_px=args.tile_width)
    return 0
