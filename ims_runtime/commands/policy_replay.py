"""``ims-runtime policy-replay SIGNALS.jsonl``: run the temporal stage and the policy on recorded per-frame
signals, exactly as the service does, and write one JSON result per input line.

Input lines: ``t_ns``, ``face_present`` and any of ``gaze_pitch_rad``, ``gaze_yaw_rad``, ``on_road``,
``head_yaw_deg``, ``head_pitch_deg``, ``left_open``, ``right_open``, ``mouth_open``, ``speed_kmh``,
``face_confidence``, ``camera_blocked`` (see ``ims_runtime/temporal/signals.py``). Output lines: ``t_ns``,
``alerts``, ``availability``, ``fatigue``, ``distraction``. This is the contract the scenario tests pin.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ims_runtime import errors, inputs, messages
from ims_runtime.atomic import atomic_output, check_output_path, raise_on_sigterm
from ims_runtime.commands._common import load
from ims_runtime.pipeline.monitor import DriverMonitor
from ims_runtime.pipeline.vehicle_speed import ConstantSpeed, SpeedSeries
from ims_runtime.spec.schema import FatigueStageSpec, PolicySpec, Spec
from ims_runtime.temporal.signals import FrameSignals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy-replay", help="run the fatigue stage and the policy on a per-frame signals file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("signals", help="JSONL, one object of per-frame signals per line")
    p.add_argument("--spec", help="deployment spec whose stages.fatigue and policy are used (default: the "
                   "built-in defaults, fatigue model and policy on)")
    p.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE",
                   help="override a spec field (repeatable; needs --spec)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--speed-kmh", type=inputs.cli_number(0.0, inputs.SPEED_KMH_MAX),
                       help="constant vehicle speed, km/h, 0..400 (lines' speed_kmh win)")
    speed.add_argument("--speed-file", help="speed time series: JSONL {t_ns, speed_kmh} or CSV t_ns,speed_kmh")
    p.add_argument("--out", help="output JSONL (default: stdout); written to a temporary file beside it and "
                   "renamed at the end, so a failed or interrupted run leaves no partial file")
    p.set_defaults(func=run)


def default_spec() -> Spec:
    return Spec(name="policy-replay", stages={"fatigue": FatigueStageSpec()}, policy=PolicySpec())


def read_signals(path: Path) -> Iterator[FrameSignals]:
    """Each non-blank line as :class:`FrameSignals`; a line that is not JSON, not UTF-8 or has a bad value is a
    coded error naming ``file:line`` (a replay must not guess)."""
    for number, line in inputs.text_lines(path, "signals file"):
        if not line.strip():
            continue
        try:
            yield FrameSignals.from_dict(inputs.json_value(line))
        except inputs.InputRejected as exc:
            raise inputs.file_error(path, number, exc,
                                    hint="see `ims-runtime policy-replay --help` for the line format") from exc


def replay(signals: Path, out: TextIO, spec: Spec, spec_dir: Path | None = None,
           speed_kmh: float | None = None, speed_file: Path | None = None) -> int:
    """Replay ``signals`` into ``out``; returns the number of lines written."""
    if spec.policy is None and spec.stages.fatigue is None:
        raise errors.IMSError(errors.SPEC_INVALID, "the spec enables neither stages.fatigue nor policy",
                              "add them, or leave --spec out to use the defaults")
    stale_s = (spec.policy or PolicySpec()).speed.stale_after_s
    speed = SpeedSeries.from_file(speed_file, stale_s) if speed_file else ConstantSpeed(speed_kmh)
    monitor = DriverMonitor.from_spec(spec, spec_dir)
    written = 0
    try:
        for frame in read_signals(signals):
            result: dict[str, Any] = {"t_ns": frame.t_ns}
            try:
                state = monitor.update(frame, speed.speed_at(frame.t_ns))
                result.update(messages.encode_monitor(state.fatigue, state.policy))
            except ValueError as exc:  # non-increasing timestamps
                raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{signals}: {exc}",
                                      "lines must be in increasing t_ns order") from exc
            out.write(json.dumps(result, separators=(",", ":")) + "\n")
            written += 1
    finally:
        monitor.close()
    if written == 0:  # an empty replay is not a result (and must not leave an empty --out behind)
        raise errors.IMSError(errors.SOURCE_UNREADABLE, f"{signals}: no signal lines",
                              "see `ims-runtime policy-replay --help` for the line format")
    return written


def run(args: argparse.Namespace) -> int:
    # every input and output is checked before any work starts
    if args.spec:
        loaded = load(args)  # a SpecError is an IMSError: one line naming the problems, exit 2
        spec, spec_dir = loaded.spec, loaded.path.resolve().parent
    else:
        if args.set:
            raise errors.IMSError(errors.SPEC_INVALID, "--set needs --spec")
        spec, spec_dir = default_spec(), None
    path = inputs.check_readable_file(Path(args.signals), "signals file")
    speed_file = inputs.check_readable_file(Path(args.speed_file), "speed file") if args.speed_file else None
    if args.out:
        out = check_output_path(Path(args.out), "--out")
        with raise_on_sigterm(), atomic_output(out) as handle:
            n = replay(path, handle, spec, spec_dir, args.speed_kmh, speed_file)
        print(f"wrote {n} lines to {args.out}", file=sys.stderr)
    else:
        replay(path, sys.stdout, spec, spec_dir, args.speed_kmh, speed_file)
    return 0
