"""``ims-runtime replay``: recorded footage through the service's pipeline → one driver_state JSON per line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ims_runtime import inputs, logs
from ims_runtime.atomic import atomic_write_text, check_output_path, raise_on_sigterm
from ims_runtime.commands._common import add_spec_args, load
from ims_runtime.pipeline.factory import build_pipeline
from ims_runtime.pipeline.sources import open_source
from ims_runtime.publish.zmq_pub import Publisher
from ims_runtime.replay.runner import run_replay


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run recorded footage through the pipeline, write JSONL",
                       description=__doc__ + "\n\nTwo runs on one input give identical lines apart from "
                       "latency_ms and t_publish_ns.")
    add_spec_args(p)
    p.add_argument("input", help="video file or folder of images (sorted by name)")
    p.add_argument("--out", type=Path, help="JSONL output (default: none; the summary is still printed); "
                   "written to a temporary file beside it and renamed at the end (nothing partial is left on an "
                   "error, Ctrl-C or SIGTERM)")
    p.add_argument("--max-frames", type=inputs.cli_number(1, integer=True), help="stop after N frames (N >= 1)")
    p.add_argument("--publish", action="store_true", help="also publish on the spec's ZeroMQ endpoint")
    p.add_argument("--realtime", action="store_true", help="pace frames at the source's frame rate")
    p.add_argument("--summary-json", type=Path, help="write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also make the HTML report of the run in DIR (`ims-runtime report`; needs the extra "
                        "'report'); without --out the JSONL goes to DIR/driver_state.jsonl")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logs.configure("warning")
    # outputs are checked before any frame is processed: a bad --out fails in a second, not after the whole clip
    for option, path in (("--out", args.out), ("--summary-json", args.summary_json)):
        if path is not None:
            check_output_path(path, option)
    loaded = load(args)
    if args.report is not None:
        from ims_runtime.commands.report import report_builder  # the report extra, only when asked for

        report_builder("replay --report")  # fail before the replay when the extra is missing
        check_output_path(args.report / "index.html", "report page")
        args.out = args.out or args.report / "driver_state.jsonl"
    source = open_source(loaded.spec.source, args.input, fail_fast_camera=True, loop=False)
    with raise_on_sigterm():
        pipeline = build_pipeline(loaded)
        publisher = Publisher(loaded.spec.publish.endpoint, loaded.spec.publish.send_hwm_msgs) \
            if args.publish else None
        try:
            pipeline.warmup()
            summary = run_replay(pipeline, source, args.out, args.max_frames, publisher, args.realtime,
                                 progress=False if args.no_progress else None)
        finally:
            source.close()
            pipeline.close()
            if publisher is not None:
                publisher.close()
    print(summary.table(), file=sys.stderr)
    if args.summary_json:
        atomic_write_text(args.summary_json, json.dumps(summary.to_dict(), indent=2) + "\n")
    if args.report is not None:
        from ims_runtime.commands.report import make_report

        recording = Path(args.input)
        make_report(args.out, args.report, recording if recording.exists() else None, loaded)
    return 0
