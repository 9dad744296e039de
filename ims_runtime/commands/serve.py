"""``ims-runtime serve``: the daemon — build, warm up, process and publish until SIGTERM/SIGINT (exit 0);
SIGHUP re-reads the spec (a broken one is reported and the running pipeline kept). See docs/service.md."""

from __future__ import annotations

import argparse

from ims_runtime import inputs, logs
from ims_runtime.commands._common import add_spec_args, load
from ims_runtime.service.daemon import ServeOptions, Service


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the service: publish driver_state and telemetry over ZeroMQ",
                       description=__doc__)
    add_spec_args(p)
    p.add_argument("--source", help="override the spec's source: video file, image folder, /dev/videoN or N")
    p.add_argument("--loop", action="store_true", default=None, help="restart a file source at its end")
    p.add_argument("--no-pace", action="store_true", help="process file sources as fast as possible "
                   "(default: at their frame rate, like a camera)")
    p.add_argument("--max-frames", type=inputs.cli_number(1, integer=True),
                   help="stop after N frames (testing; N >= 1)")
    p.add_argument("--sysfs-root", default="/sys", help="where power and thermal probes read sysfs (testing "
                   "against recorded trees; default /sys)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    service = Service(load(args), ServeOptions(source=args.source, loop=args.loop, pace=not args.no_pace,
                                               max_frames=args.max_frames, overrides=list(args.set),
                                               sysfs_root=args.sysfs_root))
    service.install_signal_handlers()
    try:
        service.start()
        return service.run()
    finally:
        service.close()
