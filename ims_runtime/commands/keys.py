"""``ims-runtime keys DIR NAME...``: create CURVE certificates (``NAME.key`` public, ``NAME.key_secret`` 0600).

Uses pyzmq's ``zmq.auth.create_certificates``. Typical set-up: ``keys /etc/ims-runtime/curve server hmi``, then
move ``hmi.key`` into the folder named by ``publish.curve.authorized_clients_dir`` and give ``hmi.key_secret``
and ``server.key`` to the HMI (see docs/service.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import zmq.auth

from ims_runtime import errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create CURVE key pairs for the publisher and its subscribers",
                       description=__doc__)
    p.add_argument("directory", type=Path, help="where to write the certificates (created, mode 0700)")
    p.add_argument("names", nargs="+", help="one certificate per name, e.g. server hmi")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in args.names:
        if not name or "/" in name or name.startswith("."):
            raise errors.IMSError(errors.SPEC_INVALID, f"certificate name {name!r} must be a plain file name",
                                  "e.g. server hmi")
    old_umask = os.umask(0o077)  # the secret file is never readable by others, not even for a moment
    try:
        args.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in args.names:
            public_file, secret_file = zmq.auth.create_certificates(args.directory, name)
            os.chmod(public_file, 0o644)  # public: the HMI and the service's clients folder need to read it
            print(f"{name}: public {public_file}, secret {secret_file} (0600)")
    except OSError as exc:
        raise errors.IMSError(errors.OUTPUT_UNWRITABLE, f"cannot write certificates to {args.directory}: "
                              f"{exc.strerror or exc}", "choose a writable directory") from exc
    finally:
        os.umask(old_umask)
    return 0
