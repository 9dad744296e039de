"""``ims-runtime validate SPEC``: check a deployment spec; exit 0, or 2 listing every problem."""

from __future__ import annotations

import argparse
import sys

from ims_runtime.spec import SpecError, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a deployment spec (exit 0 if valid, 2 listing every problem)",
                       description=__doc__)
    p.add_argument("spec", help="YAML deployment spec, e.g. deploy/specs/dev-cpu.yaml")
    p.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE",
                   help="override a field before validation (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_spec(args.spec, args.set)
    except SpecError as exc:
        print(f"{exc.file}: {len(exc.problems)} problem(s) [{exc.code.code}]", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return exc.code.exit_code
    spec = loaded.spec
    stages = [name for name, value in spec.stages if value is not None]
    print(f"{args.spec}: valid (spec {spec.name!r}, stages: {', '.join(stages)}, publish {spec.publish.endpoint})")
    return 0
