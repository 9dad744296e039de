"""``ims-runtime listen ENDPOINT``: subscribe and print messages as JSON lines (for people and scripts)."""

from __future__ import annotations

import argparse

from ims_runtime import messages
from ims_runtime.publish.listen import listen


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="print published messages as JSON lines", description=__doc__)
    p.add_argument("endpoint", help="e.g. ipc:///tmp/ims-runtime.sock or tcp://127.0.0.1:5555")
    p.add_argument("--topic", action="append", choices=sorted(messages.TOPICS), default=[],
                   help="only this topic (repeatable; default: all)")
    p.add_argument("--count", type=int, help="exit after N messages")
    p.add_argument("--timeout", type=float, help="exit after this many seconds without a message")
    p.add_argument("--pretty", action="store_true", help="indented JSON for a human")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    printed = listen(args.endpoint, args.topic, count=args.count, timeout_s=args.timeout, pretty=args.pretty)
    return 0 if printed or args.timeout is None else 1
