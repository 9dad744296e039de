"""The fleet page ``DIR/index.html``: fleet KPIs, a chart, one row per recording, and the regression gate's
verdict. Same style and rules as the single-run report (no network resources; the chart beside the page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ims_runtime.atomic import atomic_output, atomic_write_text
from ims_runtime.report.build import templates
from ims_runtime.report.timelines import ALERT_COLOURS


def plot_fleet(summary: dict[str, Any], out_png: Path) -> None:
    """Alerts per hour by type, and availability / face present per recording."""
    kpis = summary["kpis"]
    done = [r for r in summary["recordings"] if r["status"] != "failed"]
    fig = Figure(figsize=(12, 3.6), dpi=100)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    types = list(kpis["alerts_per_hour"])
    left.bar(types, [kpis["alerts_per_hour"][t] for t in types],
             color=[ALERT_COLOURS.get(t, "#7f7f7f") for t in types])
    left.set_ylabel("alerts per hour (1/h)")
    left.set_title(f"Alerts per hour over {kpis['hours'] * 60:.1f} min of recordings", fontsize=9, loc="left")
    left.tick_params(axis="x", labelrotation=20, labelsize=8)
    if not types:
        left.text(0.5, 0.5, "no alert", ha="center", va="center", transform=left.transAxes)
    x = np.arange(len(done))
    right.bar(x - 0.2, [r["availability_ok_pct"] or 0 for r in done], 0.4, label="availability ok", color="#2ca02c")
    right.bar(x + 0.2, [r["face_present_pct"] or 0 for r in done], 0.4, label="face present", color="#1f77b4")
    right.set_xticks(x, [r["name"] for r in done], rotation=20, fontsize=7, ha="right")
    right.set_ylabel("share of frames (%)")
    right.set_ylim(0, 105)
    right.legend(fontsize=7, loc="lower right")
    right.set_title("Per recording", fontsize=9, loc="left")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.24, top=0.9, wspace=0.2)
    with atomic_output(out_png, "wb") as handle:
        fig.savefig(handle, format="png")


def write_fleet_page(out_dir: Path, summary: dict[str, Any], gate: dict[str, Any] | None) -> Path:
    plot_fleet(summary, out_dir / "fleet.png")
    html = templates().get_template("fleet.html.j2").render(f=summary, k=summary["kpis"], gate=gate)
    page = out_dir / "index.html"
    atomic_write_text(page, html)
    return page
