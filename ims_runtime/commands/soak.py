"""``ims-runtime soak``: run ``serve`` on a looped recording for a while and check that RSS stays flat after
warm-up (growth < 5 MiB) and latency does not drift. Prints a JSON report; exit 0 if it holds, 1 if not.

Example (the documented long soak): ``ims-runtime soak --spec deploy/specs/dev-cpu.yaml
--source ../shared/data/videos/video01.mp4 --minutes 60``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import zmq

from ims_runtime import inputs, messages
from ims_runtime.commands._common import add_spec_args
from ims_runtime.telemetry.soak import analyse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", help="long looped replay through serve: RSS flat, no latency drift",
                       description=__doc__)
    add_spec_args(p)
    p.add_argument("--source", required=True, help="video file or image folder, looped")
    p.add_argument("--minutes", type=inputs.cli_number(0.01, 100000.0), default=60.0,
                   help="how long to run (default 60)")
    p.add_argument("--warmup-s", type=inputs.cli_number(0.0, 100000.0), default=20.0,
                   help="ignored at the start (allocator settling)")
    p.add_argument("--paced", action="store_true", help="at the recording's frame rate (default: as fast as "
                   "possible, the harder test)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ims-soak-") as tmp:
        endpoint = f"ipc://{tmp}/soak.sock"
        command = [sys.executable, "-m", "ims_runtime.cli", "serve", "--spec", args.spec, "--source", args.source,
                   "--loop", "--set", f"publish.endpoint={endpoint}", "--set", "publish.telemetry_interval_s=1",
                   *(f"--set={item}" for item in args.set), *([] if args.paced else ["--no-pace"]),
                   "--log-level", "warning"]
        proc = subprocess.Popen(command, env=os.environ.copy())
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"telemetry")
        sub.connect(endpoint)
        telemetry = []
        deadline = time.monotonic() + args.minutes * 60
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if sub.poll(500):
                    telemetry.append(messages.decode(sub.recv_multipart())[1])
        finally:
            sub.close(0)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    if proc.returncode not in (0, None) and not telemetry:
        print(f"serve exited with {proc.returncode}", file=sys.stderr)
        return 1
    report = analyse(telemetry, warmup_s=args.warmup_s)
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.ok else 1
