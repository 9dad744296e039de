"""``ims-runtime models``: which models the specs need, where each was found, its sha256, and how to fix a
missing one. ``ims-runtime models build`` builds missing default artefacts (needs the toolchain extra)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ims_runtime import catalog, errors, paths
from ims_runtime.commands._common import toolchain_available
from ims_runtime.spec import SpecError, load_spec

DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "specs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models the specs need and where they are; `models build`",
                       description=__doc__)
    p.add_argument("action", nargs="?", choices=["list", "build"], default="list")
    p.add_argument("--spec", action="append", default=[],
                   help="spec(s) to check (default: every deploy/specs/*.yaml of a source checkout)")
    p.add_argument("--force", action="store_true", help="build: rebuild even if present")
    p.set_defaults(func=run)


def _needed(spec_paths: list[Path]) -> dict[str, list[str]]:
    """model reference → the specs that use it."""
    needed: dict[str, list[str]] = {}
    for path in spec_paths:
        try:
            spec = load_spec(path).spec
        except SpecError as exc:
            print(f"skipping {path}: {exc.problems[0]}", file=sys.stderr)
            continue
        except errors.IMSError as exc:  # missing, a directory, unreadable, not UTF-8
            print(f"skipping {path}: {exc.message}", file=sys.stderr)
            continue
        for _, stage in spec.stages:
            model = getattr(stage, "model", None)
            if model:
                needed.setdefault(model, []).append(path.name)
    return needed


def run(args: argparse.Namespace) -> int:
    spec_paths = [Path(s) for s in args.spec] or sorted(DEFAULT_SPEC_DIR.glob("*.yaml"))
    if args.action == "build":
        if not toolchain_available():
            raise errors.IMSError(errors.MODEL_BUILD_FAILED, "the toolchain is not installed",
                                  "pip install '.[toolchain]' (torch CPU, onnx, onnxslim)")
        cmd = [sys.executable, "-m", "ims_runtime.toolchain.cli", "build", *(["--force"] if args.force else [])]
        return subprocess.run(cmd, check=False).returncode
    print("search path: " + " : ".join(str(p) for p in paths.model_search_path()))
    missing = 0
    for ref, users in sorted(_needed(spec_paths).items()):
        try:
            path = catalog.resolve(ref)
            print(f"ok       {ref:<34} {path}  sha256 {paths.sha256_file(path)}  (used by {', '.join(users)})")
        except errors.IMSError as exc:
            missing += 1
            print(f"MISSING  {ref:<34} used by {', '.join(users)} — {exc.hint}")
    return 1 if missing else 0
