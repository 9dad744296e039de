"""``ims-runtime``: argument parsing only. Each subcommand lives in a module of :mod:`ims_runtime.commands` that
exposes ``register(subparsers)``; the handler it sets returns an exit code and raises
:class:`~ims_runtime.errors.IMSError` for expected failures, which become one clear line and the error's exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from ims_runtime import __version__, errors
from ims_runtime.atomic import Terminated

#: subcommand modules, in the order ``--help`` lists them
COMMAND_MODULES = [
    "ims_runtime.commands.validate",
    "ims_runtime.commands.models",
    "ims_runtime.commands.replay",
    "ims_runtime.commands.report",
    "ims_runtime.commands.fleet_replay",
    "ims_runtime.commands.policy_replay",
    "ims_runtime.commands.serve",
    "ims_runtime.commands.listen",
    "ims_runtime.commands.keys",
    "ims_runtime.commands.soak",
    "ims_runtime.commands.eval_detector",
    "ims_runtime.commands.bench",
]

EPILOG = """\
environment:
  IMS_MODEL_PATH   ':'-separated folders searched for input weights and models (e.g. ../shared/models)
  IMS_CACHE_DIR    where built artefacts go (default ~/.cache/ims-runtime)

examples:
  ims-runtime validate deploy/specs/dev-cpu.yaml
  ims-runtime replay --spec deploy/specs/dev-cpu.yaml ../shared/data/videos/video00.mp4 --out out.jsonl
  ims-runtime serve --spec deploy/specs/dev-cpu.yaml --source ../shared/data/videos/video00.mp4 --loop
  ims-runtime listen ipc:///tmp/ims-runtime.sock --topic driver_state
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ims-runtime", description="On-vehicle driver-monitoring inference service.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ims-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except errors.IMSError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.code.exit_code
    except KeyboardInterrupt:
        return 130
    except Terminated:  # SIGTERM inside raise_on_sigterm(): temporary files are already removed
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader of stdout went away (`… | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
