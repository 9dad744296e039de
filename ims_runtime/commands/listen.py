"""``ims-runtime listen ENDPOINT``: subscribe and print messages as JSON lines (for people and scripts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ims_runtime import errors, inputs, messages
from ims_runtime.publish.listen import listen


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="print published messages as JSON lines", description=__doc__)
    p.add_argument("endpoint", help="e.g. ipc:///tmp/ims-runtime.sock or tcp://127.0.0.1:5555")
    p.add_argument("--topic", action="append", choices=sorted(messages.TOPICS), default=[],
                   help="only this topic (repeatable; default: all)")
    p.add_argument("--count", type=inputs.cli_number(1, integer=True), help="exit after N messages")
    p.add_argument("--timeout", type=inputs.cli_number(0.001, 1e6),
                   help="exit after this many seconds without a message")
    p.add_argument("--pretty", action="store_true", help="indented JSON for a human")
    p.add_argument("--server-key", type=Path, help="CURVE: the service's public certificate (server.key)")
    p.add_argument("--client-key", type=Path, help="CURVE: this subscriber's certificate with its secret key "
                   "(client.key_secret, mode 0600); its public key must be in the service's authorized_clients_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.server_key is None) != (args.client_key is None):
        raise errors.IMSError(errors.PUBLISH_KEYS, "CURVE needs both --server-key and --client-key")
    curve_keys = (args.server_key, args.client_key) if args.server_key else None
    printed = listen(args.endpoint, args.topic, count=args.count, timeout_s=args.timeout, pretty=args.pretty,
                     curve_keys=curve_keys)
    return 0 if printed or args.timeout is None else 1
