"""``ims-runtime models``: per spec, which model each stage needs, where it was found, its sha256, and how to fix
a missing one. ``ims-runtime models build`` builds the catalogue artefacts the specs name (default: every shipped
spec in deploy/specs, so a fresh clone can replay each of them); ``--all`` builds every buildable catalogue
artefact, also those no spec names (e.g. ``face_state_v1_int8``, which tests and ``ims-opt`` comparisons use).
Building needs the toolchain extra; artefacts go to IMS_CACHE_DIR."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ims_runtime import catalog, errors, paths
from ims_runtime.commands._common import toolchain_available
from ims_runtime.spec import SpecError, load_spec

DEFAULT_SPEC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "specs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="per spec, the models its stages need and where they are; `models build`",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["list", "build"], default="list")
    p.add_argument("--spec", action="append", default=[],
                   help="spec(s) to check or build for (default: every deploy/specs/*.yaml of a source checkout)")
    p.add_argument("--all", action="store_true",
                   help="build: every buildable catalogue artefact, not only those the specs name")
    p.add_argument("--force", action="store_true", help="build: rebuild even if present")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class StageModel:
    """One model a spec's stage names."""

    spec: str
    stage: str
    ref: str


def spec_models(spec_paths: list[Path]) -> list[StageModel]:
    """Every (spec, stage, model reference) of the given specs, in spec then stage order. A spec that does not
    validate is reported on stderr and skipped (``ims-runtime validate`` says why in full)."""
    found: list[StageModel] = []
    for path in spec_paths:
        try:
            spec = load_spec(path).spec
        except SpecError as exc:
            print(f"skipping {path}: {exc.problems[0]}", file=sys.stderr)
            continue
        except errors.IMSError as exc:  # missing, a directory, unreadable, not UTF-8
            print(f"skipping {path}: {exc.message}", file=sys.stderr)
            continue
        for stage_name, stage in spec.stages:
            model = getattr(stage, "model", None)
            if model:
                found.append(StageModel(path.name, stage_name, model))
            eye_model = getattr(stage, "eye_model", None)  # the face-state stage's eye-crop model (issue 13)
            if eye_model:
                found.append(StageModel(path.name, f"{stage_name}.eye_model", eye_model))
    return found


def buildable_names(models: list[StageModel]) -> list[str]:
    """Catalogue names of the artefacts ``models`` name that a command builds (committed weights and paths
    outside the catalogue are not built), each once, in first-use order."""
    names: list[str] = []
    for item in models:
        artefact = catalog.lookup(item.ref)
        if artefact is not None and artefact.build_command and artefact.name not in names:
            names.append(artefact.name)
    return names


def _build(names: list[str] | None, force: bool) -> int:
    if not toolchain_available():
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, "the toolchain is not installed",
                              "pip install '.[toolchain]' (torch CPU, onnx, onnxslim)")
    if names is not None and not names:
        print("nothing to build: the specs name no buildable catalogue artefact")
        return 0
    cmd = [sys.executable, "-m", "ims_runtime.toolchain.cli", "build", *(names or []),
           *(["--force"] if force else [])]
    return subprocess.run(cmd, check=False).returncode


def run(args: argparse.Namespace) -> int:
    spec_paths = [Path(s) for s in args.spec] or sorted(DEFAULT_SPEC_DIR.glob("*.yaml"))
    models = spec_models(spec_paths)
    if args.action == "build":
        return _build(None if args.all else buildable_names(models), args.force)
    print("search path: " + " : ".join(str(p) for p in paths.model_search_path()))
    missing = 0
    current_spec = None
    for item in models:
        if item.spec != current_spec:
            current_spec = item.spec
            print(current_spec)
        try:
            path = catalog.resolve(item.ref)
            print(f"  {item.stage:<14} ok       {item.ref:<36} {path}  sha256 {paths.sha256_file(path)}")
        except errors.IMSError as exc:
            missing += 1
            print(f"  {item.stage:<14} MISSING  {item.ref:<36} — {exc.hint}")
    return 1 if missing else 0
