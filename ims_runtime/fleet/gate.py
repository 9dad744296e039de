"""Regression gate: compare a fleet run with an earlier one (another software version, FP32 vs INT8, CPU vs HTP)
recording by recording, the way openpilot's process replay guards its stack, and say which changed.

A recording *changed* when any of these holds (tolerances: :class:`Tolerances`, ``--tolerance NAME=VALUE``):

* an alert episode has no partner of the same type whose onset is within ``alert_onset_s`` (an alert appeared,
  vanished or moved);
* over the frames both runs have, the ``percentile``-th percentile of the absolute difference exceeds
  ``gaze_deg`` (gaze yaw or pitch), ``head_pose_deg`` (yaw, pitch or roll) or ``eye_openness`` (left or right);
* face presence disagrees on more than ``face_presence_pct`` % of the frames;
* the frame count differs, or the recording replayed in the baseline but failed now.

Percentiles rather than maxima: one frame where INT8 and FP32 disagree by a few degrees is noise; a shift in the
bulk of the frames is a change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ims_runtime import errors
from ims_runtime.fleet.job import RESULT_FILE, RUN_FILE, read_result
from ims_runtime.report.run_data import AlertEvent, RunSeries, alert_events, load_run


@dataclass(frozen=True)
class Tolerances:
    alert_onset_s: float = 0.5
    gaze_deg: float = 2.0
    head_pose_deg: float = 2.0
    eye_openness: float = 0.05
    face_presence_pct: float = 1.0
    percentile: float = 95.0

    @classmethod
    def parse(cls, items: list[str]) -> Tolerances:
        """``["gaze_deg=3", …]`` → tolerances; an unknown name or a bad number is a coded error."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, float] = {}
        for item in items:
            name, _, text = item.partition("=")
            try:
                if name not in names:
                    raise ValueError(f"unknown tolerance {name!r}")
                values[name] = float(text)
            except ValueError as exc:
                raise errors.IMSError(errors.SPEC_INVALID, f"--tolerance {item}: {exc}",
                                      f"use NAME=VALUE with NAME one of {', '.join(sorted(names))}") from exc
        return cls(**values)


def _match_alerts(current: list[AlertEvent], baseline: list[AlertEvent], tol_s: float) -> list[str]:
    """Reasons for every alert episode without a same-type partner within ``tol_s`` (greedy, nearest first)."""
    reasons: list[str] = []
    unmatched = list(baseline)
    for event in current:
        partners = [b for b in unmatched if b.type == event.type and abs(b.onset_s - event.onset_s) <= tol_s]
        if partners:
            unmatched.remove(min(partners, key=lambda b: abs(b.onset_s - event.onset_s)))
        else:
            reasons.append(f"alert {event.type} at {event.onset_s:.2f} s is new")
    reasons += [f"alert {b.type} at {b.onset_s:.2f} s is gone" for b in unmatched]
    return reasons


def _p_abs_diff(a: np.ndarray, b: np.ndarray, q: float) -> float | None:
    both = np.isfinite(a) & np.isfinite(b)
    return round(float(np.percentile(np.abs(a[both] - b[both]), q)), 4) if both.any() else None


def compare_runs(current: RunSeries, baseline: RunSeries, tol: Tolerances) -> dict[str, Any]:
    """``{changed, reasons, metrics}`` for one recording's two runs."""
    reasons: list[str] = []
    if current.frames != baseline.frames:
        reasons.append(f"frames {current.frames} vs baseline {baseline.frames}")
    reasons += _match_alerts(alert_events(current), alert_events(baseline), tol.alert_onset_s)
    _, ci, bi = np.intersect1d(current.frame_id, baseline.frame_id, return_indices=True)
    q = tol.percentile

    def worst(*pairs: tuple[np.ndarray, np.ndarray]) -> float | None:
        values = [v for a, b in pairs if (v := _p_abs_diff(a[ci], b[bi], q)) is not None]
        return max(values) if values else None

    metrics = {
        "frames_compared": len(ci),
        f"gaze_p{q:g}_abs_diff_deg": worst((np.degrees(current.gaze_yaw_rad), np.degrees(baseline.gaze_yaw_rad)),
                                           (np.degrees(current.gaze_pitch_rad),
                                            np.degrees(baseline.gaze_pitch_rad))),
        f"head_pose_p{q:g}_abs_diff_deg": worst((current.head_yaw_deg, baseline.head_yaw_deg),
                                                (current.head_pitch_deg, baseline.head_pitch_deg),
                                                (current.head_roll_deg, baseline.head_roll_deg)),
        f"eye_openness_p{q:g}_abs_diff": worst((current.left_open, baseline.left_open),
                                               (current.right_open, baseline.right_open)),
        "face_presence_disagree_pct": round(100.0 * float(np.mean(current.face_present[ci]
                                                                   != baseline.face_present[bi])), 3)
        if len(ci) else None,
    }
    for key, limit, what in ((f"gaze_p{q:g}_abs_diff_deg", tol.gaze_deg, "gaze"),
                             (f"head_pose_p{q:g}_abs_diff_deg", tol.head_pose_deg, "head pose"),
                             (f"eye_openness_p{q:g}_abs_diff", tol.eye_openness, "eye openness"),
                             ("face_presence_disagree_pct", tol.face_presence_pct, "face presence")):
        if metrics[key] is not None and metrics[key] > limit:
            reasons.append(f"{what}: {key} {metrics[key]:g} > {limit:g}")
    return {"changed": bool(reasons), "reasons": reasons, "metrics": metrics}


def _baseline_index(baseline_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Baseline recording folders by recording content hash and by name."""
    by_hash: dict[str, Path] = {}
    by_name: dict[str, Path] = {}
    for result_file in sorted((baseline_dir / "recordings").glob(f"*/{RESULT_FILE}")):
        result = read_result(result_file.parent) or {}
        if result.get("status") == "ok" and (result_file.parent / RUN_FILE).is_file():
            by_name[result["name"]] = result_file.parent
            by_hash.setdefault((result.get("key") or {}).get("recording_sha256", ""), result_file.parent)
    return by_hash, by_name


def run_gate(out_dir: Path, baseline_dir: Path, results: list[dict[str, Any]], tol: Tolerances) -> dict[str, Any]:
    """Compare every recording of this run with the baseline's run of the same recording (by content hash, else
    by name). Recordings the baseline lacks are listed as not compared, never as changed."""
    baseline_dir = Path(baseline_dir)
    if not (baseline_dir / "recordings").is_dir():
        raise errors.IMSError(errors.SOURCE_NOT_FOUND, f"baseline {baseline_dir} has no recordings/ folder",
                              "give the --out folder of an earlier fleet-replay run")
    by_hash, by_name = _baseline_index(baseline_dir)
    rows: list[dict[str, Any]] = []
    for result in results:
        recording_sha = (result.get("key") or {}).get("recording_sha256", "")
        base_folder = by_hash.get(recording_sha) or by_name.get(result["name"])
        row: dict[str, Any] = {"name": result["name"], "baseline": str(base_folder) if base_folder else None}
        if base_folder is None:
            row.update(compared=False, changed=False, reasons=["not in the baseline"])
        elif result["status"] == "failed":
            reason = f"failed now ({result['error']['code']}), replayed in the baseline"
            row.update(compared=True, changed=True, reasons=[reason])
        else:
            current = load_run(Path(out_dir) / "recordings" / result["name"] / RUN_FILE)
            row.update(compared=True, **compare_runs(current, load_run(base_folder / RUN_FILE), tol))
        rows.append(row)
    changed = [r["name"] for r in rows if r["changed"]]
    return {"baseline": str(baseline_dir), "tolerances": dataclasses.asdict(tol), "changed": changed,
            "compared": sum(r["compared"] for r in rows), "recordings": rows}
