"""Pieces several subcommands share: the spec arguments, and whether the optional toolchain is installed."""

from __future__ import annotations

import argparse
import importlib.util

from ims_runtime.spec import LoadedSpec, load_spec


def add_spec_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--spec", required=required, help="YAML deployment spec, e.g. deploy/specs/dev-cpu.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="DOTTED.PATH=VALUE",
                        help="override a spec field, validated like the file (repeatable), "
                             "e.g. --set stages.face_detector.score_threshold=0.7")


def load(args: argparse.Namespace) -> LoadedSpec:
    return load_spec(args.spec, args.set)


def toolchain_available() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("onnx") is not None
