"""``ims-runtime report``: one run's driver_state JSONL → a self-contained HTML report for a person: a summary
table, aligned timelines (gaze against the road zone, head pose, eyes, fatigue, distraction timers, alerts and
availability, latency) and the annotated video of the recording, where clicking a timeline seeks the video.

Needs the optional extra ``report`` (matplotlib, PyAV, Jinja2): pip install -e '.[report]'."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ims_runtime import logs
from ims_runtime.commands._common import add_spec_args, load
from ims_runtime.commands._extras import import_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report of a replay: summary, timelines, annotated video",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  ims-runtime replay --spec deploy/specs/dev-cpu.yaml CLIP --out run.jsonl\n"
                              "  ims-runtime report run.jsonl --video CLIP --spec deploy/specs/dev-cpu.yaml "
                              "--out out/report\n  (or in one go: ims-runtime replay ... --report out/report)")
    p.add_argument("run", type=Path, help="driver_state JSONL written by `ims-runtime replay --out`")
    p.add_argument("--video", type=Path, help="the recording the run was made from (video file or image folder); "
                                              "without it the page has no video")
    add_spec_args(p, required=False)
    p.add_argument("--out", type=Path, required=True, help="report folder: index.html and the files it shows")
    p.add_argument("--max-video-width", type=int, default=640, metavar="PX",
                   help="annotated video width in pixels (smaller recordings keep their size; default 640)")
    p.set_defaults(func=run)


def report_builder(feature: str = "ims-runtime report"):
    """The report's build module; a coded error naming the extra when it is not installed (check this before long
    work, e.g. a replay)."""
    return import_extra("ims_runtime.report.build", "report", feature)


def make_report(run_jsonl: Path, out_dir: Path, video: Path | None, loaded_spec=None,
                max_video_width_px: int = 640) -> Path:
    """Build the report (importing the ``report`` extra only now); ``loaded_spec``: a LoadedSpec whose policy
    limits are drawn on the timelines, or None for the schema's defaults."""
    build = report_builder()
    thresholds = build.Thresholds.from_spec(loaded_spec.spec, loaded_spec.path.name) if loaded_spec \
        else build.Thresholds()
    page = build.build_report(run_jsonl, out_dir, video, thresholds, max_video_width_px)
    print(f"report: {page}", file=sys.stderr)
    return page


def run(args: argparse.Namespace) -> int:
    logs.configure("warning")
    loaded = load(args) if args.spec else None
    make_report(args.run, args.out, args.video, loaded, args.max_video_width)
    return 0
