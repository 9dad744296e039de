"""The pipeline factory never builds models at run time, and every script and command agree on one cache."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO, cli, shared


def test_a_missing_artefact_is_a_coded_error_naming_the_build_command_and_nothing_is_built(tmp_path):
    """Before: replay ran `ims-opt build` in a subprocess on its own (the service's reload thread too)."""
    empty = tmp_path / "cache"
    run = cli("replay", "--spec", "deploy/specs/dev-cpu.yaml", str(shared("data", "videos", "video04.mp4")),
              "--max-frames", "2", env={"IMS_CACHE_DIR": str(empty)})
    assert run.returncode == 3, run.stderr[-1500:]
    assert "error[MODEL_NOT_FOUND]" in run.stderr and "ims-runtime models build" in run.stderr
    assert "Traceback" not in run.stderr
    assert not any(empty.rglob("*.onnx"))  # nothing was built behind the user's back


def test_scripts_and_commands_use_the_same_default_cache(tmp_path):
    """Before: scripts/setup.sh built into <checkout>/.cache while every command looked in ~/.cache."""
    env = {k: v for k, v in os.environ.items() if k != "IMS_CACHE_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    line = next(li for li in (REPO / "scripts" / "setup.sh").read_text().splitlines()
                if li.startswith("export IMS_CACHE_DIR="))
    script_dir = subprocess.run(["bash", "-c", f'{line}; echo "$IMS_CACHE_DIR"'], env=env, capture_output=True,
                                text=True, check=True).stdout.strip()
    command_dir = subprocess.run([sys.executable, "-c", "from ims_runtime import paths; print(paths.cache_dir())"],
                                 env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert script_dir == command_dir == str(tmp_path / "xdg" / "ims-runtime")
