"""``ims-opt``: the offline optimisation toolchain (needs the ``toolchain`` extra)."""

# Each command imports its modules when it runs: most of them load torch (seconds, hundreds of MB), which
# `--help`, `report` and `compile` do not need.

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from ims_runtime import catalog, errors, paths
from ims_runtime.backends.qnn import QnnConfig
from ims_runtime.backends.tensorrt import TensorRtConfig


def _require_input(relative: str) -> Path:
    found = paths.find_file(relative)
    if found is None:
        searched = ", ".join(str(p) for p in paths.model_search_path())
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"input {relative} not found in {searched}",
                              "add the folder holding it (e.g. ../shared/models) to IMS_MODEL_PATH")
    return found


def cmd_export_retinaface(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.export import export_retinaface
    from ims_runtime.toolchain.manifest import record

    artefact = catalog.CATALOG["retinaface_mnet025_fp32"]
    weights = Path(args.weights) if args.weights else _require_input(artefact.inputs[0])
    size = tuple(args.input_size) if args.input_size else None
    default_name = artefact.filename if size is None else f"retinaface_mnet025_fp32_{size[0]}x{size[1]}.onnx"
    out = Path(args.out) if args.out else paths.cache_dir() / default_name
    export_retinaface(weights, out, size)  # type: ignore[arg-type]
    entry = record(out.parent / "manifest.json", out, recipe="ims-opt export retinaface",
                   source=str(weights), precision="fp32", input_size_wh=list(size) if size else "dynamic")
    print(f"wrote {out} ({entry['size_bytes']} B, sha256 {entry['sha256']})")
    return 0


RECIPES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "recipes"


def build_recipe_variant(recipe_name: str, variant_name: str, catalogue_name: str) -> int:
    """Build one variant of a recipe (no evaluation, no benchmark) and install it under its catalogue file name.

    This is what ``ims-runtime models build`` / CI run for a deployed artefact: one export + one PTQ, minutes on
    two cores. ``ims-opt run`` is what measures it.
    """
    from ims_runtime.atomic import atomic_write_bytes
    from ims_runtime.toolchain.manifest import record
    from ims_runtime.toolchain.recipe import load_recipe
    from ims_runtime.toolchain.runner import RecipeRun

    recipe_path = RECIPES_DIR / f"{recipe_name}.yaml"
    recipe = load_recipe(recipe_path)
    variant = next((v for v in recipe.variants if v.name == variant_name), None)
    if variant is None:
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"recipe {recipe_path} has no variant {variant_name!r}",
                              "fix the catalogue entry or the recipe")
    model, facts = RecipeRun(recipe, recipe_path).build(variant)
    out = paths.cache_dir() / catalog.CATALOG[catalogue_name].filename
    atomic_write_bytes(out, model.read_bytes())
    entry = record(paths.cache_dir() / "manifest.json", out, recipe=f"{recipe_path.name}:{variant_name}",
                   built_from=model.name, facts=facts)
    print(f"wrote {out} ({entry['size_bytes']} B, sha256 {entry['sha256']})")
    return 0


def cmd_quantize_qnn_retinaface(args: argparse.Namespace) -> int:
    """Static-shape RetinaFace → INT8 QDQ for QNN HTP, calibrated on real frames (see toolchain/quantize_qnn.py)."""
    from ims_runtime.toolchain.export import export_retinaface
    from ims_runtime.toolchain.manifest import record
    from ims_runtime.toolchain.quantize import quantize_qnn
    from ims_runtime.toolchain.quantize_qnn import CALIBRATION_CLIPS, qnn_calibration_tensors
    from ims_runtime.toolchain.shared_data import videos_dir

    size = tuple(args.input_size)
    weights = _require_input(catalog.CATALOG["retinaface_mnet025_fp32"].inputs[0])
    videos = [Path(v) for v in args.videos] if args.videos else \
        [videos_dir() / clip for clip in CALIBRATION_CLIPS]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"calibration clips not found: {', '.join(missing)}",
                              "pass --videos, or set IMS_SHARED_DIR to the folder holding data/videos")
    out = Path(args.out) if args.out else paths.cache_dir() / f"retinaface_mnet025_int8_qnn_{size[0]}x{size[1]}.onnx"
    float_path = out.with_name(f"retinaface_mnet025_fp32_{size[0]}x{size[1]}.onnx")
    export_retinaface(weights, float_path, size)  # type: ignore[arg-type]
    tensors = qnn_calibration_tensors(videos, size, per_video=args.frames_per_video)  # type: ignore[arg-type]
    quantize_qnn(float_path, out, tensors)
    entry = record(out.parent / "manifest.json", out, recipe="ims-opt quantize-qnn retinaface",
                   source=str(float_path), precision="int8", input_size_wh=list(size),
                   quantization="QNN QDQ u8 activations / s8 per-channel weights, MinMax",
                   calibration=[v.name for v in videos], calibration_inputs=len(tensors))
    print(f"wrote {out} ({entry['size_bytes']} B, sha256 {entry['sha256']})")
    return 0


BUILDERS = {
    "retinaface_mnet025_fp32": lambda: cmd_export_retinaface(
        argparse.Namespace(weights=None, out=None, input_size=None)),
    "retinaface_mnet025_int8": lambda: build_recipe_variant("detector", "int8_deploy", "retinaface_mnet025_int8"),
    "face_state_v1_int8": lambda: build_recipe_variant("face-state-opt", "int8_minmax", "face_state_v1_int8"),
    "face_state_v1_int8_qnn": lambda: build_recipe_variant("face-state-opt", "qnn_w8a8", "face_state_v1_int8_qnn"),
    "face_state_v2_int8_qnn": lambda: build_recipe_variant("face-state-v2-opt", "qnn_w8a8", "face_state_v2_int8_qnn"),
    "retinaface_mnet025_fp32_640x384": lambda: cmd_export_retinaface(
        argparse.Namespace(weights=None, out=None, input_size=(640, 384))),
    "retinaface_mnet025_int8_qnn_320x192": lambda: cmd_quantize_qnn_retinaface(
        argparse.Namespace(input_size=(320, 192), videos=None, out=None, frames_per_video=6)),
}


def cmd_build(args: argparse.Namespace) -> int:
    """Build the named catalogue artefacts (default: every buildable one that is missing)."""
    names = args.names or [n for n, a in catalog.CATALOG.items() if a.build_command]
    for name in names:
        artefact = catalog.CATALOG.get(name)
        if artefact is None or name not in BUILDERS:
            raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"no builder for {name!r}",
                                  f"buildable: {', '.join(sorted(BUILDERS))}")
        existing = paths.find_file(artefact.filename)
        if existing is not None and not args.force:
            print(f"{name}: up to date ({existing})")
            continue
        BUILDERS[name]()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.recipe import load_recipe
    from ims_runtime.toolchain.runner import RecipeRun

    recipe = load_recipe(Path(args.recipe))
    summary = RecipeRun(recipe, Path(args.recipe)).run(only=args.only)
    print(f"results: {paths.cache_dir() / 'opt' / recipe.name / 'results.json'} "
          f"(skipped unchanged steps: {len(summary['skipped'])})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.report import write_report

    out = write_report(Path(args.out), args.recipes)
    print(f"wrote {out}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile with the runtime's own backend, into the cache entry its first load looks up."""
    from ims_runtime.toolchain.compile import compile_qnn_context, compile_tensorrt_plan

    model = Path(args.model)
    if not model.is_file():
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"model {model} does not exist",
                              "pass a QDQ .onnx, e.g. a qnn_* variant written by `ims-opt run`")
    if args.target == "qnn":
        out, status = compile_qnn_context(model, QnnConfig(soc_model=args.soc, htp_arch=args.htp_arch))
    else:
        out, status = compile_tensorrt_plan(model, TensorRtConfig(precision=args.precision))
    print(f"{'compiled' if status == 'built' else 'already in the cache'}: {out}")
    return 0


def cmd_train_fatigue(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.fatigue.train import train_fatigue

    recipe = Path(args.recipe)
    if not recipe.is_file():
        raise errors.IMSError(errors.SPEC_NOT_FOUND, f"recipe {recipe} does not exist",
                              "e.g. --recipe deploy/recipes/fatigue.yaml")
    train_fatigue(recipe, Path(args.out) if args.out else None)
    return 0


def cmd_train_face_state(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.face_state.cli import train_face_state

    return train_face_state(args)


def cmd_eval_face_state(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.face_state.cli import eval_face_state

    return eval_face_state(args)


def cmd_train_eye_state(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.eye_state.cli import train_eye_state

    return train_eye_state(args)


def cmd_eval_eye_state(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.eye_state.cli import eval_eye_state

    return eval_eye_state(args)


def cmd_eval_blinks(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.face_state.cli import eval_blinks

    return eval_blinks(args)


def cmd_annotate_blinks_sheet(args: argparse.Namespace) -> int:
    from ims_runtime.toolchain.face_state.cli import annotate_blinks_sheet

    return annotate_blinks_sheet(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ims-opt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    export = sub.add_parser("export", help="export a network to ONNX")
    export_sub = export.add_subparsers(dest="model", required=True)
    rf = export_sub.add_parser("retinaface", help="RetinaFace-MobileNet0.25 from the official weights")
    rf.add_argument("--weights", help="mobilenet0.25_Final.pth (default: found on IMS_MODEL_PATH)")
    rf.add_argument("--out", help="output .onnx (default: the cache directory)")
    rf.add_argument("--input-size", nargs=2, type=int, metavar=("W", "H"),
                    help="fixed input size in pixels (default: dynamic height/width)")
    rf.set_defaults(func=cmd_export_retinaface)

    qq = sub.add_parser("quantize-qnn", help="INT8 QDQ model for Qualcomm HTP (static shapes, real-frame calibration)")
    qq_sub = qq.add_subparsers(dest="model", required=True)
    qrf = qq_sub.add_parser("retinaface", help="RetinaFace-MobileNet0.25 at a fixed input size")
    qrf.add_argument("--input-size", nargs=2, type=int, metavar=("W", "H"), default=(320, 192),
                     help="fixed input size in pixels, multiples of 32 (default 320 192)")
    qrf.add_argument("--videos", nargs="+", help="calibration clips (default: video00/video01 of the shared data)")
    qrf.add_argument("--frames-per-video", type=int, default=6, help="calibration frames per clip (default 6)")
    qrf.add_argument("--out", help="output .onnx (default: the cache directory)")
    qrf.set_defaults(func=cmd_quantize_qnn_retinaface)

    train = sub.add_parser("train", help="train one of the project's own models from a recipe")
    train_sub = train.add_subparsers(dest="model", required=True)
    fatigue = train_sub.add_parser("fatigue", help="temporal fatigue classifier (1-D CNN) → ONNX + manifest")
    fatigue.add_argument("--recipe", default="deploy/recipes/fatigue.yaml", help="training recipe (YAML)")
    fatigue.add_argument("--out", help="output .onnx (default: the recipe's `out`, i.e. models/)")
    fatigue.set_defaults(func=cmd_train_fatigue)
    fs = train_sub.add_parser("face-state", help="the face-state network, distilled from the teachers")
    fs.add_argument("--recipe", default="deploy/recipes/face-state.yaml", help="training recipe (YAML)")
    fs.add_argument("--epochs", type=int, help="override the recipe's epoch count (quick checks)")
    fs.add_argument("--out-dir", help="override the recipe's output folder")
    fs.set_defaults(func=cmd_train_face_state)
    es = train_sub.add_parser("eye-state", help="the eye-state network on eye crops, distilled from the OMZ "
                              "open-closed-eye and MediaPipe Iris teachers")
    es.add_argument("--recipe", default="deploy/recipes/eye-state.yaml", help="training recipe (YAML)")
    es.add_argument("--epochs", type=int, help="override the recipe's epoch count (quick checks)")
    es.add_argument("--out-dir", help="override the recipe's output folder (default models/)")
    es.set_defaults(func=cmd_train_eye_state)

    build = sub.add_parser("build", help="build catalogue artefacts that are missing (idempotent)")
    build.add_argument("names", nargs="*", help="catalogue names (default: all buildable)")
    build.add_argument("--force", action="store_true", help="rebuild even if present")
    build.set_defaults(func=cmd_build)

    run = sub.add_parser("run", help="build, evaluate and benchmark every variant of a recipe (skips unchanged steps)")
    run.add_argument("recipe", help="deploy/recipes/<model>.yaml")
    run.add_argument("--only", nargs="+", metavar="VARIANT", help="only these variants (plus fp32, the yardstick)")
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="QNN HTP context binary or TensorRT plan from a QDQ model, compiled by the "
                          "runtime's backend into the cache entry its first load looks up (keyed by model, SDK "
                          "version, chip and options)")
    comp.add_argument("target", choices=["qnn", "trt"])
    comp.add_argument("model", help="QDQ .onnx (e.g. a qnn_* variant of ims-opt run)")
    qnn = QnnConfig.model_fields  # the defaults and choices are the spec's: the same options give the same cache key
    comp.add_argument("--soc", type=int, default=qnn["soc_model"].default,
                      help="qnn: SoC model id, as qnn_htp soc_model in a spec (default %(default)s = SA8255P/QCS8255 "
                      "class)")
    comp.add_argument("--htp-arch", type=int, default=qnn["htp_arch"].default,
                      choices=get_args(get_args(qnn["htp_arch"].annotation)[0]),
                      help="qnn: Hexagon HTP architecture, as qnn_htp htp_arch in a spec (default %(default)s)")
    comp.add_argument("--precision", default="int8_qdq",
                      choices=get_args(TensorRtConfig.model_fields["precision"].annotation),
                      help="trt: as tensorrt precision in a spec (default %(default)s: INT8 from the model's Q/DQ "
                      "nodes, FP16 for the float layers)")
    comp.set_defaults(func=cmd_compile)

    report = sub.add_parser("report", help="Markdown + PNG report from the recipes' latest results")
    report.add_argument("recipes", nargs="*", help="recipe names (default: every one with results in the cache)")
    report.add_argument("--out", default="reports/optimisation", help="output folder (default reports/optimisation)")
    report.set_defaults(func=cmd_report)

    evaluate = sub.add_parser("eval", help="measure a trained network on held-apart data")
    eval_sub = evaluate.add_subparsers(dest="model", required=True)
    fse = eval_sub.add_parser(
        "face-state", help="the deployed face-state vs ground truth (blinks, closed-eye faces) and the teachers "
        "(head pose, gaze) on held-apart clips",
        description="Runs the spec's pipeline on every shared clip the recipe did not train on (head pose and gaze "
        "against the OMZ teachers: no ground truth exists) and on every annotated clip (blinks against "
        "deploy/annotations/blinks), and on data/cew_faces_closed (all eyes closed). Baselines beside every "
        "figure. --crops: the older model-only comparison with the teachers on the label cache's crops.")
    fse.add_argument("--recipe", default="deploy/recipes/face-state.yaml",
                     help="recipe naming the training clips (those are not held apart)")
    fse.add_argument("--spec", default="deploy/specs/dev-cpu.yaml", help="deployment spec to evaluate")
    fse.add_argument("--annotations", default="deploy/annotations/blinks", help="folder of blink annotations")
    fse.add_argument("--cew-faces", help="closed-eye face images (default: $IMS_SHARED_DIR/data/cew_faces_closed/"
                     "images)")
    fse.add_argument("--cew-limit", type=int, help="only the first N closed-eye faces (quick checks)")
    fse.add_argument("--no-cew", action="store_true", help="skip the closed-eye faces")
    fse.add_argument("--json", help="also write the whole report as JSON here")
    fse.add_argument("--include-trained", action="store_true",
                     help="also compare pose/gaze on the training clips (marked *; checks the harness, not a result)")
    fse.add_argument("--crops", action="store_true",
                     help="instead: the model alone vs the teachers on the held-apart crops of the label cache")
    fse.add_argument("--model", help="--crops: ONNX file (default: the recipe's output)")
    fse.add_argument("--benchmark", action="store_true",
                     help="--crops: also time the stage per face against the detector per frame (ORT CPU, 1 thread)")
    fse.add_argument("--grey", action="store_true", help="--crops: evaluate on grey copies of the held-apart crops")
    fse.set_defaults(func=cmd_eval_face_state)
    ese = eval_sub.add_parser("eye-state", help="eye state on labelled eye patches (CEW layout): closed/open recall "
                              "and balanced accuracy of a constant, the teachers and the model")
    ese.add_argument("--cew", help="folder with closedLeftEyes, closedRightEyes, openLeftEyes, openRightEyes "
                     "(default: $IMS_SHARED_DIR/data/cew)")
    ese.add_argument("--json", help="write every figure to this JSON file")
    ese.add_argument("--model", default="eye_state_v1", help="eye-state model: catalogue name or .onnx path "
                     "(default eye_state_v1)")
    ese.add_argument("--every", type=int, default=1, help="use every Nth patch of each folder (quick checks)")
    ese.add_argument("--benchmark", action="store_true", help="also time the eye stage per face against the "
                     "face-state stage (ORT CPU, 1 thread, same frames)")
    ese.add_argument("--clip", help="clip for --benchmark (default: $IMS_SHARED_DIR/data/videos/video04.mp4)")
    ese.add_argument("--frames", type=int, default=60, help="frames for --benchmark (default 60)")
    ese.set_defaults(func=cmd_eval_eye_state)
    bl = eval_sub.add_parser(
        "blinks", help="a replay's eyes.closed / openness vs blink ground truth (episodes, false/min, recalls)",
        description="Scores the published eyes.closed, openness below --threshold, an always-open baseline and "
        "(--teacher) the OMZ open/closed-eye teacher per frame against an ims-blinks/1 annotation. A true closure "
        "is found when a predicted closed run overlaps it widened by --tolerance-frames each side.")
    bl.add_argument("--replay", required=True, help="JSONL from `ims-runtime replay --out`")
    bl.add_argument("--truth", required=True, help="annotation, e.g. deploy/annotations/blinks/video00.json")
    bl.add_argument("--json", help="also write the figures as JSON here")
    bl.add_argument("--threshold", type=float, default=0.25,
                    help="openness below this counts as closed (default 0.25, the specs' eye_closed_below)")
    bl.add_argument("--tolerance-frames", type=int, default=1, help="episode matching tolerance (default 1)")
    bl.add_argument("--teacher", action="store_true", help="also score the OMZ open-closed-eye-0001 teacher")
    bl.add_argument("--clip", help="--teacher: the video (default: the annotation's clip under $IMS_SHARED_DIR)")
    bl.set_defaults(func=cmd_eval_blinks)

    annotate = sub.add_parser("annotate", help="helpers for making ground truth by eye")
    annotate_sub = annotate.add_subparsers(dest="what", required=True)
    sheet = annotate_sub.add_parser(
        "blinks-sheet", help="contact sheets of the driver's eyes (PNG) for marking closed frames",
        description="Tiles a levelled both-eye strip of the driver face (from a replay's landmarks) of every frame "
        "with its frame number and the driver box's centre x (a jump = another face). --teacher prints the OMZ "
        "teacher's closed probability and frames it red above 0.5: a proposal to look at, not a label.")
    sheet.add_argument("clip", help="the video the replay was made from")
    sheet.add_argument("--replay", required=True, help="JSONL from `ims-runtime replay --out`")
    sheet.add_argument("--out", required=True, help="folder for the PNG sheets")
    sheet.add_argument("--teacher", action="store_true", help="print the OMZ teacher's closed probability")
    sheet.add_argument("--frames", nargs=2, type=int, metavar=("FIRST", "LAST"), help="only these frames")
    sheet.add_argument("--face", action="store_true", help="square tiles with brows to mouth (context)")
    sheet.add_argument("--columns", type=int, default=10, help="tiles per row (default 10)")
    sheet.add_argument("--rows", type=int, default=10, help="rows per sheet (default 10)")
    sheet.add_argument("--tile-width", type=int, default=176, help="tile width in pixels (default 176)")
    sheet.set_defaults(func=cmd_annotate_blinks_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except errors.IMSError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.code.exit_code


if __name__ == "__main__":
    sys.exit(main())
