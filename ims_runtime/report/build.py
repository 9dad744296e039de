"""Make one run's report: ``DIR/index.html`` with everything it shows beside it (``timelines.png``, the annotated
video, ``keyframes/``, ``summary.json``). Nothing on the page loads from the network, so the folder can be zipped,
archived with a release, or opened from a USB stick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from ims_runtime import __version__
from ims_runtime.atomic import atomic_write_text, check_output_path
from ims_runtime.report.run_data import Thresholds, load_run, summarize
from ims_runtime.report.timelines import plot_timelines
from ims_runtime.report.video import VideoResult, write_annotated_video


def templates() -> jinja2.Environment:
    """The page templates (``ims_runtime/report/templates``), HTML-escaped by default."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("ims_runtime.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["pct"] = lambda value: "n/a" if value is None else f"{value:.1f} %"
    env.globals["version"] = __version__
    return env


def build_report(run_jsonl: Path, out_dir: Path, video: Path | None = None,
                 thresholds: Thresholds | None = None, max_video_width_px: int = 640) -> Path:
    """Write the report of ``run_jsonl`` into ``out_dir`` and return the page's path.

    ``video``: the recording the run was made from (file or image folder); without it the page has no video.
    Each file is written atomically; the page last, so an existing ``index.html`` is never one of a half-made
    report."""
    out_dir = Path(out_dir)
    page = check_output_path(out_dir / "index.html", "report page")
    series = load_run(Path(run_jsonl))
    thresholds = thresholds or Thresholds()
    summary = summarize(series)
    timeline = plot_timelines(series, thresholds, out_dir / "timelines.png")
    if video is not None:
        clip = write_annotated_video(series, Path(video), out_dir, max_video_width_px)
    else:
        clip = VideoResult(None, None, None, 0, 1 / series.frame_period_s, 0, 0)
    record: dict[str, Any] = {**summary, "run_file": str(run_jsonl), "video": clip.file,
                              "video_codec": clip.codec, "video_frames": clip.frames}
    atomic_write_text(out_dir / "summary.json", json.dumps(record, indent=2) + "\n")
    html = templates().get_template("report.html.j2").render(
        s=summary, video=clip, timelines=timeline, run_file=Path(run_jsonl).name,
        thresholds_origin=thresholds.origin)
    atomic_write_text(page, html)
    return page
