"""``ims-runtime fleet-replay``: many recordings through the same deterministic replay as ``replay``, one Ray task
per recording, then fleet KPIs (DIR/summary.json), a fleet page (DIR/index.html) and, with --baseline, a
regression gate against an earlier run.

Outputs: DIR/recordings/NAME/driver_state.jsonl (identical to `replay --out` apart from timing fields) and
result.json. A rerun skips recordings whose output is current (same spec, models and recording content); a
recording that fails is reported with its error and the others complete.

Exit code: 0 all replayed and no change against the baseline; 1 the gate found a changed recording (listed, and in
DIR/regression.json); else, when a recording failed, that failure's code (5 for an unreadable video).
Needs the optional extra ``fleet`` (Ray): pip install -e '.[fleet]'. Cluster use: docs/replay.md."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ims_runtime import errors, logs
from ims_runtime.atomic import atomic_write_text, check_output_path
from ims_runtime.commands._common import add_spec_args, load
from ims_runtime.commands._extras import import_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fleet-replay", help="replay many recordings on Ray: fleet KPIs and a regression gate",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  ims-runtime fleet-replay ../shared/data/videos --spec "
                              "deploy/specs/dev-cpu.yaml --out out/fleet\n  ims-runtime fleet-replay "
                              "recordings.txt --spec deploy/specs/dev-cpu-fp32.yaml --out out/fp32 "
                              "--baseline out/fleet --address auto")
    p.add_argument("input", type=Path, help="folder of recordings (video files) or a manifest: one video file or "
                                            "image folder per line, relative to the manifest")
    add_spec_args(p)
    p.add_argument("--out", type=Path, required=True, help="output folder (summary.json, index.html, recordings/)")
    p.add_argument("--address", help="Ray cluster to join: `auto` (a `ray start` on this machine) or "
                                     "ray://HOST:10001; default: start a local Ray for this run")
    p.add_argument("--workers", type=int, help="recordings replayed at once (default: the cluster's CPUs; a local "
                                               "Ray gets this many CPUs)")
    p.add_argument("--max-frames", type=int, help="replay only the first N frames of each recording")
    p.add_argument("--baseline", type=Path, metavar="DIR", help="an earlier fleet-replay --out folder: list the "
                   "recordings whose alerts or signals changed beyond the tolerances; exit 1 if any did")
    p.add_argument("--tolerance", action="append", default=[], metavar="NAME=VALUE",
                   help="gate tolerance (repeatable): alert_onset_s, gaze_deg, head_pose_deg, eye_openness, "
                        "face_presence_pct, percentile; defaults and meaning in docs/replay.md")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.set_defaults(func=run)


def _row(result: dict[str, Any]) -> dict[str, Any]:
    """One recording in summary.json: its KPIs without the latency histograms."""
    row = {k: result[k] for k in ("name", "recording", "status") if k in result}
    if result["status"] == "failed":
        return {**row, "error": result["error"]}
    kpis = {k: v for k, v in result["kpis"].items() if k not in ("latency_histogram", "counts")}
    return {**row, **kpis, "key": result.get("key")}


def _exit_code(results: list[dict[str, Any]], gate: dict[str, Any] | None) -> int:
    if gate and gate["changed"]:
        return 1
    for result in results:
        if result["status"] == "failed":
            code = getattr(errors, result["error"]["code"], None)
            return code.exit_code if isinstance(code, errors.ErrorCode) else 1
    return 0


def run(args: argparse.Namespace) -> int:
    logs.configure("warning")
    runner = import_extra("ims_runtime.fleet.runner", "fleet", "ims-runtime fleet-replay")
    import_extra("ims_runtime.fleet.page", "fleet", "ims-runtime fleet-replay")
    from ims_runtime.fleet import gate as fleet_gate
    from ims_runtime.fleet.job import FleetConfig, spec_sha256
    from ims_runtime.fleet.kpis import fleet_kpis
    from ims_runtime.fleet.page import write_fleet_page
    from ims_runtime.fleet.recordings import list_recordings

    loaded = load(args)  # a bad spec fails here, before any cluster work
    tolerances = fleet_gate.Tolerances.parse(args.tolerance)
    recordings = list_recordings(args.input)
    summary_path = check_output_path(args.out / "summary.json", "fleet summary")
    config = FleetConfig(str(loaded.path.resolve()), tuple(args.set), str(args.out.resolve()), args.max_frames)
    print(f"fleet-replay: {len(recordings)} recordings, spec {loaded.path}, → {args.out}", file=sys.stderr)
    results, wall_s = runner.run_fleet(recordings, config, args.address, args.workers,
                                       progress=False if args.no_progress else None)
    gate = fleet_gate.run_gate(args.out, args.baseline, results, tolerances) if args.baseline else None
    models = next((r["key"]["models_sha256"] for r in results if r.get("key")), None)
    summary = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(args.input), "spec": str(loaded.path), "spec_name": loaded.spec.name,
        "overrides": list(args.set),
        "spec_sha256": spec_sha256(loaded), "models_sha256": models, "max_frames": args.max_frames,
        "kpis": fleet_kpis(results, wall_s),
        "recordings": [_row(r) for r in results],
        "gate": {k: gate[k] for k in ("baseline", "changed", "compared")} if gate else None,
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    if gate is not None:
        atomic_write_text(args.out / "regression.json", json.dumps(gate, indent=2) + "\n")
    page = write_fleet_page(args.out, summary, gate)
    kpis = summary["kpis"]
    print(f"fleet-replay: {kpis['recordings_ok']} replayed, {kpis['recordings_skipped']} skipped (unchanged), "
          f"{kpis['recordings_failed']} failed; {kpis['frames']} frames; "
          f"{kpis['throughput']['fleet_frames_per_s']} frames/s → {summary_path}, {page}", file=sys.stderr)
    if gate is not None:
        for row in gate["recordings"]:
            if row["changed"]:
                print(f"CHANGED {row['name']}: {'; '.join(row['reasons'])}", file=sys.stderr)
        print(f"regression gate: {len(gate['changed'])} of {gate['compared']} compared recordings changed "
              f"→ {args.out / 'regression.json'}", file=sys.stderr)
    return _exit_code(results, gate)
