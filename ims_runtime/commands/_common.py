"""Pieces several subcommands share: spec arguments and building the pipeline (with auto-build of defaults)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

import structlog

from ims_runtime import catalog, errors
from ims_runtime.pipeline.pipeline import Pipeline
from ims_runtime.spec import LoadedSpec, load_spec

log = structlog.get_logger(__name__)


def add_spec_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--spec", required=required, help="YAML deployment spec, e.g. deploy/specs/dev-cpu.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE",
                        help="override a spec field, validated like the file (repeatable), "
                             "e.g. --set stages.face_detector.score_threshold=0.7")


def load(args: argparse.Namespace) -> LoadedSpec:
    return load_spec(args.spec, args.set)


def toolchain_available() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("onnx") is not None


def build_missing_default(exc: errors.IMSError) -> bool:
    """If ``exc`` is a missing *buildable* catalogue artefact and the toolchain is installed, build it.

    Runs ``ims-opt build`` in a subprocess so the runtime process itself never imports torch.
    """
    if exc.code is not errors.MODEL_NOT_FOUND or not toolchain_available():
        return False
    names = [a.name for a in catalog.CATALOG.values() if a.build_command and repr(a.name) in exc.message]
    if not names:
        return False
    log.info("building_missing_model", models=names, command="ims-opt build " + " ".join(names))
    result = subprocess.run([sys.executable, "-m", "ims_runtime.toolchain.cli", "build", *names], check=False)
    if result.returncode != 0:
        raise errors.IMSError(errors.MODEL_BUILD_FAILED, f"building {names} failed (exit {result.returncode})",
                              "run `ims-runtime models` to see what is missing")
    return True


def build_pipeline(loaded: LoadedSpec, live_speed: bool = False) -> Pipeline:
    """``live_speed``: subscribe to the vehicle speed (serve); replay runs with the speed unknown."""
    speed = None
    if live_speed and loaded.spec.policy is not None:
        from ims_runtime.pipeline.vehicle_speed import SpeedSubscriber

        cfg = loaded.spec.policy.speed
        speed = SpeedSubscriber(cfg.endpoint, cfg.topic, cfg.stale_after_s)
    try:
        return Pipeline(loaded.spec, loaded.path.parent, speed)
    except errors.IMSError as exc:
        if build_missing_default(exc):
            return Pipeline(loaded.spec, loaded.path.parent, speed)
        if speed is not None:
            speed.close()
        raise
