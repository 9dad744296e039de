"""Handlers of ``ims-opt train eye-state`` and ``ims-opt eval eye-state [--benchmark]`` (wired in
``toolchain/cli.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np

from ims_runtime import errors
from ims_runtime.toolchain.face_state.cli import shared_dir

DEFAULT_MODEL = "eye_state_v1"


def _recipe(args: argparse.Namespace):
    from ims_runtime.toolchain.eye_state.train import TrainRecipe

    path = Path(args.recipe)
    if not path.is_file():
        raise errors.IMSError(errors.SPEC_NOT_FOUND, f"recipe {path} does not exist",
                              "run from the repository root or pass --recipe deploy/recipes/eye-state.yaml")
    recipe = TrainRecipe.load(path)
    overrides = {k: v for k, v in (("epochs", getattr(args, "epochs", None)),
                                   ("out_dir", getattr(args, "out_dir", None))) if v is not None}
    return dataclasses.replace(recipe, **overrides), path


def train_eye_state(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.eye_state.train import train

    recipe, path = _recipe(args)
    train(recipe, shared_dir(), path, log=lambda m: print(m, flush=True))
    return 0


def _open_model(ref: str):
    from ims_runtime.backends.ort_cpu import OrtCpuConfig
    from ims_runtime.stages.eye_state import EyeStateModel

    model = EyeStateModel.open(ref, None, [OrtCpuConfig(type="ort_cpu", threads=1)])
    return model, model.model.sha256


def _teacher_combination(model_path: Path) -> dict | None:
    """The combined teacher's fitted Iris logistic, from the model's record in the manifest beside it."""
    from ims_runtime.toolchain.manifest import read_manifest

    entry = read_manifest(model_path.parent / "manifest.json").get(model_path.name, {})
    return entry.get("teacher_combination")


def eval_eye_state(args: argparse.Namespace) -> int:
    """CEW closed/open recall and balanced accuracy: a constant, each teacher, the combined teacher, the model."""
    from ims_runtime import catalog
    from ims_runtime.atomic import atomic_write_text, check_output_path
    from ims_runtime.eval import eye_state_eval as ev
    from ims_runtime.eval.eye_state_eval import CEW_IOD_RATIO, reframe
    from ims_runtime.toolchain.eye_state.teachers import (
        IRIS_INPUT_PX,
        IRIS_IOD_RATIO,
        OMZ_INPUT_PX,
        IrisEyeTeacher,
        OmzEyeTeacher,
    )
    from ims_runtime.toolchain.eye_state.train import Teacher

    cew = Path(args.cew) if args.cew else shared_dir() / "data" / "cew"
    if args.json:
        check_output_path(Path(args.json), "--json")
    patches = ev.load_cew(cew)
    if args.every > 1:
        patches = patches.subsample(args.every)
    print(f"CEW {cew}: {int((~patches.is_open).sum())} closed, {int(patches.is_open.sum())} open eye patches "
          f"(every {args.every}; patch side taken as {CEW_IOD_RATIO} x the inter-ocular distance)", flush=True)
    results: dict[str, dict] = {"constant_open": ev.evaluate(ev.constant_open(patches), patches)}

    omz = OmzEyeTeacher()
    omz_p_closed = omz.p_closed([reframe(g, 0.8, OMZ_INPUT_PX) for g in patches.grey])
    results["teacher_omz_open_closed_eye_0001"] = ev.evaluate(1 - omz_p_closed, patches)

    model_path = catalog.resolve(args.model)
    combination = _teacher_combination(model_path)
    if combination:
        iris = IrisEyeTeacher()
        left = np.array([f.endswith("LeftEyes") for f in patches.folder])
        # CEW "left" = the subject's left eye, on the image's right: the Iris model wants it mirrored
        ear = np.array([iris.aspect_ratio(reframe(g, IRIS_IOD_RATIO, IRIS_INPUT_PX), bool(m))
                        for g, m in zip(patches.grey, left)])
        teacher = Teacher(combination["omz_weight"], combination["iris_logistic_a"],
                          combination["iris_logistic_b"])
        results["teacher_mediapipe_iris"] = ev.evaluate(teacher.iris_p_open(ear), patches)
        results["teacher_combined"] = ev.evaluate(teacher.p_open(omz_p_closed, ear), patches)

    model, sha = _open_model(str(model_path))
    t0 = time.perf_counter()
    results[model_path.stem] = ev.evaluate(ev.model_p_open(model, patches), patches)
    results[model_path.stem]["sha256"] = sha
    print(f"model {model_path.name}: {len(patches.grey)} patches in {time.perf_counter() - t0:.1f} s")

    print(f"{'predictor':36s} {'closed rec':>10s} {'open rec':>9s} {'bal. acc':>9s} {'AUC':>6s}")
    for name, r in results.items():
        print(f"{name:36s} {r['closed_recall']:10.3f} {r['open_recall']:9.3f} {r['balanced_accuracy']:9.3f} "
              f"{r['auc']:6.3f}")
    if args.json:
        out = {"cew_dir": str(cew), "every": args.every, "n_closed": int((~patches.is_open).sum()),
               "n_open": int(patches.is_open.sum()), "cew_iod_ratio": CEW_IOD_RATIO, "predictors": results}
        atomic_write_text(Path(args.json), json.dumps(out, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    if args.benchmark:
        benchmark(str(model_path), args.clip, args.frames)
    return 0


def benchmark(model_ref: str, clip_arg: str | None, frames: int) -> None:
    """ORT CPU one thread: the eye stage (two crops + one batch-of-2 run) vs the face-state stage, same frames."""
    import cv2

    from ims_runtime.spec.schema import DetectorSpec, FaceStateSpec
    from ims_runtime.stages.face_detector import FaceDetector
    from ims_runtime.stages.face_state import FaceStateStage
    from ims_runtime.types import Frame

    clip = Path(clip_arg) if clip_arg else shared_dir() / "data" / "videos" / "video04.mp4"
    if not clip.is_file():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"clip {clip} does not exist", "pass --clip VIDEO")
    model, _ = _open_model(model_ref)
    detector = FaceDetector.from_spec(DetectorSpec())
    face_state = FaceStateStage.from_spec(FaceStateSpec())
    model.warmup(20)
    face_state.warmup(20)
    cap = cv2.VideoCapture(str(clip))
    eye_ms, net_ms, face_ms = [], [], []
    for index in range(frames):
        ok, image = cap.read()
        if not ok:
            break
        frame = Frame(index, 0, image)
        for face in detector.detect(frame).faces:
            t0 = time.perf_counter()
            crops = model.cropper.crop(image, face.landmarks_px)
            t1 = time.perf_counter()
            model.predict_crops(crops.grey)
            t2 = time.perf_counter()
            face_state.process(frame, face)
            t3 = time.perf_counter()
            eye_ms.append((t2 - t0) * 1e3)
            net_ms.append((t2 - t1) * 1e3)
            face_ms.append((t3 - t2) * 1e3)
    if not eye_ms:
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"no face found in {clip}", "pass a clip with a face")
    eye, net, face = (statistics.median(v) for v in (eye_ms, net_ms, face_ms))
    print(f"ORT CPU 1 thread, {clip.name}, {len(eye_ms)} faces: eye state {eye:.3f} ms per face (2 crops + network "
          f"{net:.3f} ms, batch of 2), face-state stage {face:.3f} ms per face; ratio eye/face-state {eye / face:.2f}")
