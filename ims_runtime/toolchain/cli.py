"""``ims-opt``: the offline optimisation toolchain (needs the ``toolchain`` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ims_runtime import catalog, errors, paths


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
    from ims_runtime.toolchain.quantize_qnn import CALIBRATION_CLIPS, retinaface_tensors, shared_dir

    size = tuple(args.input_size)
    weights = _require_input(catalog.CATALOG["retinaface_mnet025_fp32"].inputs[0])
    videos = [Path(v) for v in args.videos] if args.videos else \
        [shared_dir() / "data" / "videos" / clip for clip in CALIBRATION_CLIPS]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"calibration clips not found: {', '.join(missing)}",
                              "pass --videos, or set IMS_SHARED_DIR to the folder holding data/videos")
    out = Path(args.out) if args.out else paths.cache_dir() / f"retinaface_mnet025_int8_qnn_{size[0]}x{size[1]}.onnx"
    float_path = out.with_name(f"retinaface_mnet025_fp32_{size[0]}x{size[1]}.onnx")
    export_retinaface(weights, float_path, size)  # type: ignore[arg-type]
    tensors = retinaface_tensors(videos, size, per_video=args.frames_per_video)  # type: ignore[arg-type]
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
    from ims_runtime.toolchain.compile import build_qnn_context, build_tensorrt_plan

    model = Path(args.model)
    out = build_qnn_context(model, args.soc) if args.target == "qnn" else build_tensorrt_plan(model)
    print(f"wrote {out}")
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

    comp = sub.add_parser("compile", help="QNN HTP context binary or TensorRT plan from a QDQ model (cached by "
                          "toolkit version and chip)")
    comp.add_argument("target", choices=["qnn", "trt"])
    comp.add_argument("model", help="QDQ .onnx (e.g. a qnn_* variant of ims-opt run)")
    comp.add_argument("--soc", type=int, default=60, help="QNN SoC model id (default 60)")
    comp.set_defaults(func=cmd_compile)

    report = sub.add_parser("report", help="Markdown + PNG report from the recipes' latest results")
    report.add_argument("recipes", nargs="*", help="recipe names (default: every one with results in the cache)")
    report.add_argument("--out", default="reports/optimisation", help="output folder (default reports/optimisation)")
    report.set_defaults(func=cmd_report)

    evaluate = sub.add_parser("eval", help="measure a trained network on held-apart data")
    eval_sub = evaluate.add_subparsers(dest="model", required=True)
    fse = eval_sub.add_parser("face-state", help="face-state model vs the teachers on the held-apart clip")
    fse.add_argument("--recipe", default="deploy/recipes/face-state.yaml", help="recipe naming the data")
    fse.add_argument("--model", help="ONNX file (default: the recipe's output)")
    fse.add_argument("--benchmark", action="store_true",
                     help="also time the stage per face against the detector per frame (ORT CPU, 1 thread)")
    fse.add_argument("--grey", action="store_true", help="evaluate on grey copies of the held-apart crops")
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
